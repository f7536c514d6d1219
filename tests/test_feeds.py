"""The public Atom/RSS feeds and the private Atom feed: valid, stable, dated by the data."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import feedparser
import pytest
from helpers import month_papers
from lxml import etree

from digest.errors import DigestError
from digest.feeds import (
    EntryText,
    public_feeds,
    subscriber_feed,
    write_atomic,
    write_atomic_many,
)
from digest.models import Digest, Interests, Match, Paper, Subscriber

BASE = "https://papers.example.org"
FEED_PATH = "feeds/private/tok123.atom"


@pytest.fixture(scope="module")
def monday() -> list[Paper]:
    return month_papers("2026-01-05")


@pytest.fixture(scope="module")
def tuesday() -> list[Paper]:
    return month_papers("2026-01-06")


def parse(data: bytes) -> Any:
    parsed = feedparser.parse(data)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return parsed


def midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def updated(parsed: Any) -> dt.datetime:
    stamp = parsed.feed.updated_parsed
    return dt.datetime(*stamp[:6], tzinfo=dt.UTC)


def digest_for(papers: list[Paper], day: dt.date, key: str) -> Digest:
    who = Subscriber(slug="ada", email="ada@example.org", interests=Interests(keywords=("x",)))
    matches = tuple(Match(p, 1.0, ("title: agent", "abstract: world model")) for p in papers)
    return Digest(who, key, day, matches)


def test_public_feeds_are_valid_atom_and_rss(monday: list[Paper]) -> None:
    atom, rss = public_feeds(monday, title="Trending papers", base_url=BASE)
    parsed_atom, parsed_rss = parse(atom), parse(rss)
    assert parsed_atom.version == "atom10"
    assert parsed_rss.version == "rss20"
    assert len(parsed_atom.entries) == len(monday) == len(parsed_rss.entries)
    first = parsed_atom.entries[0]
    assert first.title == monday[0].title
    assert first.link == monday[0].url
    assert "Authors: " in first.summary and "<" not in first.summary
    assert first.summary_detail.type == "text/plain"
    assert [a.name for a in first.authors][:3] == list(monday[0].authors[:3])


def test_entries_are_newest_day_first_whatever_the_input_order(
    monday: list[Paper], tuesday: list[Paper]
) -> None:
    atom, rss = public_feeds(monday + tuesday, title="T", base_url=BASE)
    for parsed in (parse(atom), parse(rss)):
        ids = [entry.id for entry in parsed.entries]
        expected = [f"tag:papers.example.org,2026:paper/{p.id}" for p in tuesday + monday]
        assert ids == expected


def test_entry_ids_are_tag_uris_and_rss_guids_are_not_permalinks(monday: list[Paper]) -> None:
    _, rss = public_feeds(monday[:2], title="T", base_url=BASE)
    parsed = parse(rss)
    assert [entry.id for entry in parsed.entries] == [
        f"tag:papers.example.org,2026:paper/{paper.id}" for paper in monday[:2]
    ]
    assert all(entry.guidislink is False for entry in parsed.entries)
    assert b'isPermaLink="false"' in rss


def test_two_builds_of_the_same_papers_are_byte_identical(monday: list[Paper]) -> None:
    first = public_feeds(monday, title="T", base_url=BASE)
    assert public_feeds(list(monday), title="T", base_url=BASE) == first
    digests = [digest_for(monday[:3], dt.date(2026, 1, 5), "2026-01-05")]
    private = subscriber_feed(digests, title="T", base_url=BASE, feed_path=FEED_PATH)
    assert subscriber_feed(digests, title="T", base_url=BASE, feed_path=FEED_PATH) == private


def test_feed_dates_come_from_the_papers_days_never_from_the_clock(
    monday: list[Paper], tuesday: list[Paper]
) -> None:
    atom, rss = public_feeds(monday, title="T", base_url=BASE)
    assert updated(parse(atom)) == midnight(dt.date(2026, 1, 5))
    assert b"<lastBuildDate>Mon, 05 Jan 2026 00:00:00 +0000</lastBuildDate>" in rss
    entry = parse(atom).entries[0]
    assert entry.updated == entry.published == "2026-01-05T00:00:00+00:00"
    later_atom, later_rss = public_feeds([*monday, tuesday[0]], title="T", base_url=BASE)
    assert updated(parse(later_atom)) == midnight(dt.date(2026, 1, 6))
    assert b"<lastBuildDate>Tue, 06 Jan 2026 00:00:00 +0000</lastBuildDate>" in later_rss


def test_an_empty_feed_is_dated_at_the_epoch() -> None:
    atom, rss = public_feeds([], title="T", base_url=BASE)
    assert updated(parse(atom)) == dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    assert parse(rss).entries == []


def test_self_links_point_at_each_file_and_the_rss_channel_link_at_the_site(
    monday: list[Paper],
) -> None:
    atom, rss = public_feeds(monday[:1], title="T", base_url=BASE + "/")
    parsed_atom, parsed_rss = parse(atom), parse(rss)
    atom_links = {link.rel: link.href for link in parsed_atom.feed.links}
    assert atom_links == {"self": f"{BASE}/feeds/papers.atom", "alternate": BASE}
    assert parsed_rss.feed.link == BASE
    assert b'<atom:link href="https://papers.example.org/feeds/papers.rss" rel="self"' in rss


def test_hostile_titles_with_control_characters_still_parse(monday: list[Paper]) -> None:
    hostile = dataclasses.replace(
        monday[0],
        title="Bad\x00\x08\x0b\x0c title\r\nwith\x1b <b>tags</b> & \ufffe\uffff\ud800 more",
        abstract="Abstract\x01 with \x7f controls & <script>x</script>.",
        authors=("Eve\x00", "\x0b"),
    )
    atom, rss = public_feeds([hostile], title="T\x00itle", base_url=BASE)
    for data in (atom, rss):
        entry = parse(data).entries[0]
        assert entry.title == "Bad title with <b>tags</b> & more"
    digest = digest_for([hostile], dt.date(2026, 1, 5), "2026-01-05")
    private = subscriber_feed([digest], title="T", base_url=BASE, feed_path=FEED_PATH)
    assert parse(private).entries[0].title == "Bad title with <b>tags</b> & more"


def test_an_unsafe_paper_url_becomes_no_link_and_the_entry_stays_valid(
    monday: list[Paper],
) -> None:
    paper = dataclasses.replace(monday[0], url="javascript:alert(1)")
    atom, _ = public_feeds([paper], title="T", base_url=BASE)
    assert b"javascript:" not in atom
    assert parse(atom).entries[0].content[0].value.startswith(monday[0].abstract[:30])


def test_the_private_feed_lists_each_digests_papers_newest_digest_first_with_reasons(
    monday: list[Paper], tuesday: list[Paper]
) -> None:
    older = digest_for(monday[:2], dt.date(2026, 1, 5), "2026-01-05")
    newer = digest_for(tuesday[:3], dt.date(2026, 1, 6), "2026-01-06")
    data = subscriber_feed(
        [older, newer], title="Papers for Ada", base_url=BASE, feed_path=FEED_PATH
    )
    parsed = parse(data)
    assert parsed.version == "atom10"
    tag = "tag:papers.example.org,2026:feeds/private/tok123.atom"
    assert [entry.id for entry in parsed.entries] == [
        *(f"{tag}/2026-01-06/{p.id}" for p in tuesday[:3]),
        *(f"{tag}/2026-01-05/{p.id}" for p in monday[:2]),
    ]
    assert parsed.entries[0].updated == "2026-01-06T00:00:00+00:00"
    assert parsed.entries[-1].updated == "2026-01-05T00:00:00+00:00"
    assert updated(parsed) == midnight(dt.date(2026, 1, 6))
    assert "Why: title: agent; abstract: world model" in parsed.entries[0].content[0].value
    assert {link.rel: link.href for link in parsed.feed.links}["self"] == f"{BASE}/{FEED_PATH}"
    assert parsed.feed.id == tag


def test_feeds_need_a_base_url_with_a_host(monday: list[Paper]) -> None:
    with pytest.raises(DigestError, match="base_url"):
        public_feeds(monday, title="T", base_url="papers")


def test_write_atomic_leaves_identical_bytes_and_their_mtime_alone(tmp_path: Path) -> None:
    path = tmp_path / "feeds" / "papers.atom"
    assert write_atomic(path, b"<feed/>") is True
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    assert write_atomic(path, b"<feed/>") is False
    assert path.stat().st_mtime_ns == 1_000_000_000
    assert write_atomic(path, b"<feed>new</feed>") is True
    assert path.read_bytes() == b"<feed>new</feed>"
    assert path.stat().st_mtime_ns != 1_000_000_000
    assert sorted(p.name for p in path.parent.iterdir()) == ["papers.atom"]


def test_write_atomic_keeps_the_file_readable_by_the_web_server(tmp_path: Path) -> None:
    path = tmp_path / "papers.rss"
    write_atomic(path, b"a")
    assert path.stat().st_mode & 0o777 == 0o644
    path.chmod(0o640)
    write_atomic(path, b"b")
    assert path.stat().st_mode & 0o777 == 0o640


def test_many_files_written_at_once_are_complete_and_only_changed_ones_are_touched(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "feeds" / "private"
    first = {
        folder / f"tok{n:04d}.atom": f"<feed>{n}</feed>".encode() * (n + 1) for n in range(300)
    }
    assert write_atomic_many(first.items()) == list(first)
    for path, data in first.items():
        assert path.read_bytes() == data
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    second = dict(first)
    changed = [path for n, path in enumerate(first) if n % 7 == 0]
    for path in changed:
        second[path] = b"<feed>new</feed>"
    assert write_atomic_many(iter(second.items())) == changed  # any iterable, even a generator
    for path, data in second.items():
        assert path.read_bytes() == data
        kept = path not in changed
        assert (path.stat().st_mtime_ns == 1_000_000_000) is kept
    assert write_atomic_many(second.items()) == []
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in first)


def test_a_batch_spans_folders_and_keeps_each_files_mode(tmp_path: Path) -> None:
    public = tmp_path / "feeds" / "papers.atom"
    page = tmp_path / "archive" / "2026-01-05.html"
    write_atomic_many([(public, b"a"), (page, b"b")])
    page.chmod(0o640)
    assert write_atomic_many([(public, b"a2"), (page, b"b2")]) == [public, page]
    assert (public.read_bytes(), page.read_bytes()) == (b"a2", b"b2")
    assert public.stat().st_mode & 0o777 == 0o644
    assert page.stat().st_mode & 0o777 == 0o640


def test_a_path_given_twice_in_a_batch_gets_the_last_bytes(tmp_path: Path) -> None:
    path = tmp_path / "papers.atom"
    write_atomic(path, b"old")
    assert write_atomic_many([(path, b"new"), (path, b"old")]) == []
    assert path.read_bytes() == b"old"
    assert write_atomic_many([(path, b"one"), (path, b"two")]) == [path]
    assert path.read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["papers.atom"]


def test_a_batch_that_fails_midway_replaces_nothing_and_leaves_no_temp_files(
    tmp_path: Path,
) -> None:
    done = tmp_path / "a.atom"
    write_atomic(done, b"old")

    def items() -> Iterator[tuple[Path, bytes]]:
        yield done, b"new"
        yield tmp_path / "b.atom", b"b"
        raise OSError("disk full")  # as if rendering or writing the third file failed

    with pytest.raises(OSError, match="disk full"):
        write_atomic_many(items())
    assert done.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.atom"]


def test_a_reader_polling_during_a_batch_sees_each_file_old_or_new_never_partial(
    tmp_path: Path,
) -> None:
    paths = [tmp_path / f"tok{n}.atom" for n in range(20)]
    old, new = b"o" * 200_000, b"n" * 300_000
    write_atomic_many((path, old) for path in paths)
    seen: set[bytes] = set()
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            for path in paths:
                seen.add(path.read_bytes())

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        for _ in range(2):
            write_atomic_many((path, new) for path in paths)
            write_atomic_many((path, old) for path in paths)
    finally:
        stop.set()
        reader.join()
    assert seen <= {old, new}
    assert seen


def test_private_feeds_sharing_an_entry_text_cache_are_the_same_bytes(
    monday: list[Paper], tuesday: list[Paper]
) -> None:
    digests = [
        [
            digest_for(monday[n : n + 3], dt.date(2026, 1, 5), f"2026-01-05/{n}"),
            digest_for(tuesday[n : n + 2], dt.date(2026, 1, 6), f"2026-01-06/{n}"),
        ]
        for n in range(0, 12, 2)
    ]
    texts: dict[Paper, EntryText] = {}
    for feed in digests:
        shared = subscriber_feed(feed, title="T", base_url=BASE, feed_path=FEED_PATH, texts=texts)
        alone = subscriber_feed(feed, title="T", base_url=BASE, feed_path=FEED_PATH)
        assert shared == alone
    assert len(texts) == len({m.paper for feed in digests for d in feed for m in d.matches})


def test_the_private_feed_is_the_xml_an_xml_writer_makes_of_it_hostile_text_included(
    monday: list[Paper],
) -> None:
    hostile = dataclasses.replace(
        monday[0],
        title="<b>\"Q\" & 'A'</b> > ]]> \r\nx",
        ai_summary='<img src=x onerror="alert(2)"> &amp; \t done.',
        authors=("Eve <eve@evil.test>", "A & B", "\u202e"),
        url='https://x.example/?a=1&b="2"<',
    )
    bare = dataclasses.replace(monday[1], url="javascript:x", authors=(), abstract="")
    who = Subscriber(slug="m", email="m@example.org", interests=Interests(keywords=("x",)))
    matches = (
        Match(hostile, 1.0, ("title: <script> & co",)),
        Match(bare, 0.5, ()),
    )
    digest = Digest(who, "2026-W02&<x>", dt.date(2026, 1, 5), matches)
    data = subscriber_feed([digest], title="Mal & <Eve>", base_url=BASE, feed_path=FEED_PATH)
    # The feed is written by hand: it must be, to the byte, what lxml writes for its tree
    # (escaping and layout alike, the layout made afresh from a tree without blank text).
    tree = etree.fromstring(data, etree.XMLParser(remove_blank_text=True))
    again = etree.tostring(tree, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    assert again == data
    assert_valid_atom(data)
    parsed = parse(data)
    assert parsed.feed.title == "Mal & <Eve>"
    first, second = parsed.entries
    assert first.title == "<b>\"Q\" & 'A'</b> > ]]> x"
    assert first.link == 'https://x.example/?a=1&b="2"<'
    assert [author.name for author in first.authors] == ["Eve <eve@evil.test>", "A & B"]
    assert first.content[0].value.endswith("Why: title: <script> & co")
    assert first.summary.startswith('<img src=x onerror="alert(2)"> &amp; done.')
    assert first.id == f"tag:papers.example.org,2026:{FEED_PATH}/2026-W02&%3Cx%3E/{hostile.id}"
    assert tree.findall(f"{ATOM}entry")[1].find(f"{ATOM}link") is None
    assert second.content[0].value == second.summary == bare.id  # no text, no reasons


SCHEMA = Path(__file__).parent / "fixtures" / "schemas" / "atom.rng"
ATOM = "{http://www.w3.org/2005/Atom}"


def assert_valid_atom(data: bytes) -> None:
    """RFC 4287: the RELAX NG schema of its Appendix B (libxml2, as xmllint runs it) and
    the two rules the schema states only as Schematron annotations."""
    schema = etree.RelaxNG(etree.parse(str(SCHEMA)))
    document = etree.fromstring(data)
    assert schema.validate(document), schema.error_log.last_error
    feed_has_author = document.find(f"{ATOM}author") is not None
    for entry in document.iter(f"{ATOM}entry"):
        assert feed_has_author or entry.find(f"{ATOM}author") is not None
        links = entry.findall(f"{ATOM}link")
        alternate = [link for link in links if link.get("rel", "alternate") == "alternate"]
        assert alternate or entry.find(f"{ATOM}content") is not None


def test_the_schema_refuses_what_rfc_4287_forbids(monday: list[Paper]) -> None:
    atom, _ = public_feeds(monday[:2], title="T", base_url=BASE)
    assert_valid_atom(atom)
    broken = [
        atom.replace(b"<updated>2026-01-05T00:00:00+00:00</updated>", b"<updated>Monday</updated>"),
        atom.replace(b"<id>tag:papers.example.org,2026:feeds/papers</id>", b""),
        atom.replace(b"<entry>", b"<entry><bogus/>", 1),
    ]
    schema = etree.RelaxNG(etree.parse(str(SCHEMA)))
    for data in broken:
        assert data != atom
        assert not schema.validate(etree.fromstring(data))


def test_public_and_private_atom_feeds_validate_against_rfc_4287(
    monday: list[Paper], tuesday: list[Paper]
) -> None:
    atom, _ = public_feeds(monday + tuesday, title="Trending papers", base_url=BASE)
    assert_valid_atom(atom)
    digests = [
        digest_for(monday[:2], dt.date(2026, 1, 5), "2026-01-05"),
        digest_for(tuesday[:3], dt.date(2026, 1, 6), "2026-01-06"),
    ]
    assert_valid_atom(subscriber_feed(digests, title="T", base_url=BASE, feed_path=FEED_PATH))
    no_link = dataclasses.replace(monday[0], url="javascript:alert(1)", authors=())
    assert_valid_atom(public_feeds([no_link], title="T", base_url=BASE)[0])
    assert_valid_atom(public_feeds([], title="T", base_url=BASE)[0])


def test_rss_descriptions_are_html_with_paper_text_escaped_once_more(
    monday: list[Paper],
) -> None:
    hostile = dataclasses.replace(
        monday[0],
        title="<script>alert(1)</script> & co",
        ai_summary='<img src=x onerror="alert(2)"> Fast & small.',
        authors=("Eve <eve@evil.test>",),
    )
    _, rss = public_feeds([hostile], title="T", base_url=BASE)
    description = etree.fromstring(rss).find("channel/item/description")
    assert description is not None and description.text is not None
    # The description is HTML: the paper's markup is text inside it, not tags.
    assert description.text == (
        "<p>&lt;img src=x onerror=&quot;alert(2)&quot;&gt; Fast &amp; small.</p>"
        "<p>Authors: Eve &lt;eve@evil.test&gt;</p>"
    )
    entry = parse(rss).entries[0]
    assert entry.title == "<script>alert(1)</script> & co"
    assert "<img" not in entry.summary and "&lt;img src=x" in entry.summary


def test_a_one_megabyte_abstract_emoji_and_non_latin_names_make_a_small_valid_entry(
    monday: list[Paper],
) -> None:
    paper = dataclasses.replace(
        monday[0],
        title="Ærøskøbing: 大规模模型 🚀 👩\u200d🔬 for العربية",
        abstract="A sentence that goes on for quite a while here. " * 21_000,
        ai_summary=None,
        authors=("李雷", "Анна Каренина", "محمد", "Zoë\u202e Ådá"),
    )
    assert len(paper.abstract) > 1_000_000
    atom, rss = public_feeds([paper], title="T", base_url=BASE)
    private = subscriber_feed(
        [digest_for([paper], dt.date(2026, 1, 5), "2026-01-05")],
        title="T",
        base_url=BASE,
        feed_path=FEED_PATH,
    )
    for data in (atom, rss, private):
        assert len(data) < 5_000
        entry = parse(data).entries[0]
        assert entry.title == paper.title
    names = [author.name for author in parse(atom).entries[0].authors]
    assert names == ["李雷", "Анна Каренина", "محمد", "Zoë Ådá"]
    assert_valid_atom(atom)
    assert_valid_atom(private)
