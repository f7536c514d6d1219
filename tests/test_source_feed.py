from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
from feedgen.feed import FeedGenerator
from httpserver import LoopbackServer

from digest.config import SourceConfig
from digest.errors import SourceError
from digest.fetch import Fetcher
from digest.models import Link
from digest.sources import fetch_papers
from digest.sources.arxiv import parse_listing
from digest.sources.feed import decode_tex, fetch_days, parse_feed

ARXIV_LISTING = Path(__file__).parent / "fixtures" / "arxiv" / "rss"
TRUNCATED = ARXIV_LISTING / "atom_cs.AI_2025-08-20_truncated.xml"
MONDAY = dt.date(2026, 1, 5)
TUESDAY = dt.date(2026, 1, 6)
EST = dt.timezone(dt.timedelta(hours=-5))


def repaired_listing() -> bytes:
    data = TRUNCATED.read_bytes()
    return data[: data.rindex(b"</entry>") + len(b"</entry>")] + b"\n</feed>\n"


def generator() -> FeedGenerator:
    fg = FeedGenerator()
    fg.id("https://blog.example.org/")
    fg.title("Reading group picks")
    fg.link(href="https://blog.example.org/", rel="alternate")
    fg.description("Papers we read")
    return fg


def add(
    fg: FeedGenerator,
    title: str,
    *,
    guid: str | None = None,
    link: str | None = None,
    summary: str | None = None,
    when: dt.datetime | None = None,
    authors: tuple[str, ...] = (),
) -> None:
    fe = fg.add_entry(order="append")
    fe.title(title)
    if guid:
        fe.id(guid)
    if link:
        fe.link(href=link)
    if summary:
        fe.summary(summary, type="html")
        if not link:  # Atom wants a link or content
            fe.content(summary, type="html")
    if when:
        fe.published(when)
        fe.updated(when)
    for name in authors:
        fe.author({"name": name, "email": "x@example.org"})


def week_feed() -> FeedGenerator:
    fg = generator()
    monday = dt.datetime(2026, 1, 5, 9, 30, tzinfo=dt.UTC)
    add(
        fg,
        "Sparse attention, revisited",
        guid="https://blog.example.org/posts/17",
        link="https://blog.example.org/posts/17",
        summary="<p>We <b>revisit</b> sparse attention &amp; find <i>surprises</i>.</p>",
        when=monday,
        authors=("Ada Lovelace",),
    )
    add(
        fg,
        "A paper from arXiv",
        guid="tag:blog.example.org,2026:18",
        link="https://arxiv.org/abs/2601.01234v2",
        summary="Plain text abstract.",
        when=monday + dt.timedelta(hours=2),
    )
    # Late Monday evening in New York is already Tuesday in UTC.
    add(
        fg,
        "Posted late",
        guid="tag:blog.example.org,2026:19",
        summary="Text.",
        when=dt.datetime(2026, 1, 5, 21, 0, tzinfo=EST),
    )
    return fg


def source_for(server: LoopbackServer, path: str = "/feed.xml") -> SourceConfig:
    return SourceConfig(kind="feed", name="blog", base_url="", url=f"{server.url}{path}")


# --- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", ["rss", "atom"])
def test_rss_and_atom_feeds_give_the_same_papers(flavour: str) -> None:
    fg = week_feed()
    data = fg.rss_str() if flavour == "rss" else fg.atom_str()
    papers = parse_feed(data, day=MONDAY, url="https://blog.example.org/feed")
    assert [paper.id for paper in papers] == [
        "https://blog.example.org/posts/17",
        "2601.01234",
        "tag:blog.example.org,2026:19",
    ]
    first, from_arxiv, late = papers
    assert first.title == "Sparse attention, revisited"
    assert first.abstract == "We revisit sparse attention & find surprises."
    assert first.url == "https://blog.example.org/posts/17"
    assert first.authors == ("Ada Lovelace",)
    assert first.published == dt.datetime(2026, 1, 5, 9, 30, tzinfo=dt.UTC)
    assert first.day == MONDAY and first.source == "feed"
    assert first.links == ()
    assert from_arxiv.abstract == "Plain text abstract."
    assert from_arxiv.links == (
        Link("arXiv", "https://arxiv.org/abs/2601.01234"),
        Link("PDF", "https://arxiv.org/pdf/2601.01234"),
    )
    assert late.day == TUESDAY  # the UTC date
    assert late.url == ""


def test_an_arxiv_id_in_the_guid_keys_the_paper_too() -> None:
    fg = generator()
    add(fg, "One", guid="oai:arXiv.org:2508.13167v1", summary="x")
    add(fg, "Two", guid="arXiv:2508.13171", summary="y")
    add(fg, "Three", guid="https://arxiv.org/abs/hep-th/9901001v3", summary="z")
    papers = parse_feed(fg.rss_str(), day=MONDAY)
    assert [paper.id for paper in papers] == ["2508.13167", "2508.13171", "hep-th/9901001"]
    assert all(paper.arxiv_id == paper.id for paper in papers)


def test_without_a_guid_the_link_is_the_id_and_without_both_the_text_is() -> None:
    fg = generator()
    add(fg, "Linked", link="https://example.org/a", summary="A.")
    add(fg, "Bare", summary="Nothing but text.")
    add(fg, "Bare", summary="Other text.")
    first = parse_feed(fg.rss_str(), day=MONDAY)
    again = parse_feed(fg.rss_str(), day=TUESDAY)
    assert first[0].id == "https://example.org/a"
    assert first[1].id.startswith("sha1:") and first[1].id != first[2].id
    assert [paper.id for paper in again] == [paper.id for paper in first]  # stable across runs


def test_undated_entries_belong_to_the_requested_day() -> None:
    fg = generator()
    add(fg, "Undated", guid="u-1", summary="x")
    [paper] = parse_feed(fg.rss_str(), day=TUESDAY)
    assert (paper.day, paper.published) == (TUESDAY, None)


def test_links_that_are_not_http_are_dropped() -> None:
    fg = generator()
    add(fg, "Sneaky", guid="s-1", link="javascript:alert(1)", summary="x")
    [paper] = parse_feed(fg.rss_str(), day=MONDAY)
    assert paper.url == ""


def test_a_relative_link_is_resolved_against_the_feed_address() -> None:
    fg = generator()
    add(fg, "Relative", guid="r-1", link="/posts/20", summary="x")
    [paper] = parse_feed(fg.rss_str(), day=MONDAY, url="https://blog.example.org/feeds/all.xml")
    assert paper.url == "https://blog.example.org/posts/20"


def test_an_empty_feed_is_no_papers() -> None:
    assert parse_feed(generator().rss_str(), day=MONDAY) == []
    assert parse_feed(generator().atom_str(), day=MONDAY) == []


def test_the_arxiv_atom_listing_read_as_a_plain_feed_gives_the_arxiv_sources_papers() -> None:
    data = repaired_listing()
    day = dt.date(2025, 8, 20)
    as_feed = parse_feed(data, day=day)
    as_arxiv = parse_listing(data, day=day)
    assert len(as_feed) == 86
    for paper, same in zip(as_feed, as_arxiv, strict=True):
        assert (paper.id, paper.title, paper.abstract) == (same.id, same.title, same.abstract)
        assert (paper.authors, paper.links, paper.day) == (same.authors, same.links, same.day)
        assert paper.source == "feed"


def test_a_cut_off_feed_still_gives_the_entries_read_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="digest.sources.feed"):
        papers = parse_feed(TRUNCATED.read_bytes(), day=dt.date(2025, 8, 20), url="https://t")
    assert len(papers) == TRUNCATED.read_bytes().count(b"<entry>")  # 86 and a partial one
    assert "https://t: line " in caplog.text and "no element found" in caplog.text


def test_a_feed_with_a_wrong_declared_encoding_is_read_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fg = generator()
    add(fg, "Café au lait", guid="c-1", summary="Zoë's crème brûlée.")
    data = fg.rss_str(encoding="UTF-8").replace(b"encoding='UTF-8'", b"encoding='us-ascii'")
    assert b"us-ascii" in data
    with caplog.at_level(logging.WARNING, logger="digest.sources.feed"):
        [paper] = parse_feed(data, day=MONDAY, url="https://x/feed")
    assert (paper.title, paper.abstract) == ("Café au lait", "Zoë's crème brûlée.")
    assert "declared as us-ascii" in caplog.text


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"Service temporarily unavailable", "not a readable feed (line "),
        (b"<rss><channel><title>A feed cut off</ti", "not a readable feed (line "),
        (b"<html><body><p>Moved</p></body></html>", "not an RSS or Atom feed"),
        (b"", "not an RSS or Atom feed"),
    ],
)
def test_a_body_with_no_readable_entries_is_an_error(body: bytes, problem: str) -> None:
    with pytest.raises(SourceError) as caught:
        parse_feed(body, day=MONDAY, url="https://x/feed")
    assert caught.value.problem.startswith(problem)
    assert caught.value.url == "https://x/feed"


def test_a_body_that_names_a_local_file_is_not_read_from_disk(tmp_path: Path) -> None:
    local = tmp_path / "feed.xml"
    local.write_bytes(week_feed().rss_str())
    with pytest.raises(SourceError):
        parse_feed(str(local).encode(), day=MONDAY)


@pytest.mark.parametrize(
    ("tex", "text"),
    [
        ("Paulo Andr\\'e Lima", "Paulo André Lima"),
        ("Nikola Pi\\v{z}urica", "Nikola Pižurica"),
        ('J\\"org Deigm\\"oller', "Jörg Deigmöller"),
        ("Jan Jakub\\r{u}v", "Jan Jakubův"),
        ("Mikol\\'a\\v{s} Janota", "Mikoláš Janota"),
        ("Hendrik Kra{\\ss}", "Hendrik Kraß"),
        ("Anders S{\\o}gaard", "Anders Søgaard"),
        ("In\\`es Blin", "Inès Blin"),
        ("Rodr\\'{\\i}guez", "Rodríguez"),
        ("Fran\\c{c}ois", "François"),
        ("\\L ukasz", "Łukasz"),
        ("Ada \\emph{Lovelace}", "Ada \\emph{Lovelace}"),
    ],
)
def test_tex_accents_are_decoded_and_other_commands_left_alone(tex: str, text: str) -> None:
    assert decode_tex(tex) == text


# --- fetching over HTTP -------------------------------------------------------------------


def test_fetch_day_keeps_the_entries_of_that_day(server: LoopbackServer, fetcher: Fetcher) -> None:
    fg = week_feed()
    add(fg, "Undated", guid="u-1", summary="x")
    server.serve_bytes("/feed.xml", fg.rss_str(), headers={"Content-Type": "application/rss+xml"})
    monday = fetch_days(fetcher, source_for(server), [MONDAY])
    tuesday = fetch_days(fetcher, source_for(server), [TUESDAY])
    assert [paper.id for paper in monday] == [
        "https://blog.example.org/posts/17",
        "2601.01234",
        "u-1",
    ]
    assert [paper.id for paper in tuesday] == ["tag:blog.example.org,2026:19", "u-1"]
    assert [paper.day for paper in tuesday] == [TUESDAY, TUESDAY]


def test_an_entry_repeated_in_the_feed_is_returned_once(
    server: LoopbackServer, fetcher: Fetcher
) -> None:
    fg = week_feed()
    add(fg, "A paper from arXiv (updated)", guid="https://arxiv.org/abs/2601.01234v3", summary="x")
    server.serve_bytes("/feed.xml", fg.atom_str())
    papers = fetch_days(fetcher, source_for(server), [MONDAY])
    assert [paper.title for paper in papers if paper.id == "2601.01234"] == ["A paper from arXiv"]


def test_a_feed_that_is_not_xml_names_the_source_the_url_and_the_problem(
    server: LoopbackServer, fetcher: Fetcher
) -> None:
    server.serve_bytes("/feed.xml", b"Service temporarily unavailable")
    with pytest.raises(SourceError) as caught:
        fetch_days(fetcher, source_for(server), [MONDAY])
    assert str(caught.value).startswith(
        f"source blog: {server.url}/feed.xml: not a readable feed (line "
    )
    assert caught.value.problem.endswith(": syntax error)")


def test_a_missing_feed_is_a_source_error(server: LoopbackServer, fetcher: Fetcher) -> None:
    with pytest.raises(SourceError) as caught:
        fetch_days(fetcher, source_for(server, "/gone.xml"), [MONDAY])
    assert caught.value.source == "blog"
    assert caught.value.problem == "HTTP 404 Not Found"


def test_fetch_papers_dispatches_feed_sources(server: LoopbackServer, fetcher: Fetcher) -> None:
    server.serve_bytes("/feed.xml", week_feed().atom_str())
    papers = fetch_papers(fetcher, source_for(server), [MONDAY])
    assert {paper.source for paper in papers} == {"feed"}
    assert len(papers) == 2
