from __future__ import annotations

import datetime as dt
import html
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
from httpserver import LoopbackServer, Reply, arxiv_api_answer, replies

from digest.config import DEFAULT_BASE_URLS, SourceConfig
from digest.errors import SourceError
from digest.fetch import Fetcher
from digest.ids import strip_version
from digest.models import Link, Paper
from digest.sources import fetch_papers
from digest.sources.arxiv import (
    API_PAUSE,
    LISTING_PAUSE,
    fetch_days,
    fetch_ids,
    listing_url,
    parse_api,
    parse_listing,
    parse_listing_page,
    parse_recent_page,
    query_api,
    recent_url,
)

ARXIV = Path(__file__).parent / "fixtures" / "arxiv"
CAPTURES = sorted(path for path in ARXIV.rglob("*") if path.is_file())
CURRENT_API = ARXIV / "api" / "2026-04-12_search_all_testing_start0_max10.xml"
LEGACY_API = ARXIV / "api" / "legacy_2016-10-09_search_au_del_maestro.xml"
EMPTY_API = ARXIV / "api" / "2026-04-12_id_list_0000.0000_empty.xml"
ERROR_API = ARXIV / "api" / "2026-04-12_id_list_abc_error_http400.xml"
TRUNCATED = ARXIV / "rss" / "atom_cs.AI_2025-08-20_truncated.xml"
LIST_PAGE = ARXIV / "html" / "list_astro-ph_recent_2024-11-22.html"
ANNOUNCED = dt.date(2025, 8, 20)  # the day of the cs.AI listing capture

NS = {
    "atom": "http://www.w3.org/2005/Atom",
    "arxiv": "http://arxiv.org/schemas/atom",
    "dc": "http://purl.org/dc/elements/1.1/",
}
for prefix, uri in NS.items():
    ET.register_namespace("" if prefix == "atom" else prefix, uri)

# How each capture is read: parser, and either the error it must raise or None (it parses).
EXPECTED: dict[str, tuple[str, str | None]] = {
    "api/2026-04-12_id_list_0000.0000_empty.xml": ("api", None),
    "api/2026-04-12_id_list_abc_error_http400.xml": (
        "api",
        "the arXiv API answered with an error: incorrect id format for abc",
    ),
    "api/2026-04-12_search_all_testing_start0_max10.xml": ("api", None),
    "api/legacy_2016-10-09_search_au_del_maestro.xml": ("api", None),
    "html/list_astro-ph_recent_2024-11-22.html": ("listing", "not an RSS or Atom feed"),
    "rss/atom_cs.AI_2025-08-20_truncated.xml": ("listing", "truncated or malformed feed"),
}
PARSERS = {"api": parse_api, "listing": parse_listing}


def repaired() -> bytes:
    """The truncated capture cut at its last complete entry, as SOURCES.md suggests."""
    data = TRUNCATED.read_bytes()
    return data[: data.rindex(b"</entry>") + len(b"</entry>")] + b"\n</feed>\n"


def collapse(text: str | None) -> str:
    return " ".join((text or "").split())


def entries(data: bytes) -> list[ET.Element]:
    return ET.fromstring(data).findall("atom:entry", NS)


def listing(selected: list[ET.Element]) -> bytes:
    """A listing holding the given entries of the repaired capture, under its own header."""
    root = ET.fromstring(repaired())
    for entry in root.findall("atom:entry", NS):
        root.remove(entry)
    root.extend(selected)
    return ET.tostring(root, xml_declaration=True, encoding="utf-8")


def listing_id(entry: ET.Element) -> str:
    link = entry.find("atom:link[@rel='alternate']", NS)
    assert link is not None
    return link.attrib["href"].rsplit("/abs/", 1)[1]


def source_for(server: LoopbackServer, *categories: str) -> SourceConfig:
    return SourceConfig(kind="arxiv", name="arxiv-test", base_url=server.url, categories=categories)


# --- every capture ------------------------------------------------------------------------


def test_every_capture_has_a_documented_outcome() -> None:
    assert {path.relative_to(ARXIV).as_posix() for path in CAPTURES} == set(EXPECTED)


@pytest.mark.parametrize("file", CAPTURES, ids=lambda file: file.relative_to(ARXIV).as_posix())
def test_every_capture_parses_or_fails_with_its_documented_error(file: Path) -> None:
    parser, error = EXPECTED[file.relative_to(ARXIV).as_posix()]
    parse = PARSERS[parser]
    if error is None:
        papers = parse(file.read_bytes(), day=ANNOUNCED, url="https://x/feed")
        assert [paper.id for paper in papers] == [
            strip_version(str(entry.findtext("atom:id", "", NS)).rsplit("/abs/", 1)[1])
            for entry in entries(file.read_bytes())
        ]
        return
    with pytest.raises(SourceError) as caught:
        parse(file.read_bytes(), day=ANNOUNCED, url="https://x/feed")
    assert caught.value.problem.startswith(error)
    assert caught.value.url == "https://x/feed"
    assert caught.value.source == "arxiv"


# --- the export API -----------------------------------------------------------------------


@pytest.mark.parametrize("file", [LEGACY_API, CURRENT_API], ids=["legacy-2016", "current-2026"])
def test_both_api_formats_give_papers_with_id_title_abstract_and_authors(file: Path) -> None:
    raw = entries(file.read_bytes())
    papers = parse_api(file.read_bytes(), day=dt.date(2026, 4, 12))
    assert len(papers) == len(raw) == 10
    for paper, entry in zip(papers, raw, strict=True):
        published = dt.datetime.fromisoformat(str(entry.findtext("atom:published", "", NS)))
        assert paper.title == collapse(entry.findtext("atom:title", "", NS))
        assert paper.abstract == collapse(entry.findtext("atom:summary", "", NS))
        assert paper.abstract and "\n" not in paper.abstract
        assert paper.authors == tuple(
            collapse(name.text) for name in entry.findall("atom:author/atom:name", NS)
        )
        assert paper.authors
        assert paper.published == published and paper.published.tzinfo is not None
        assert paper.day == published.date()
        assert paper.source == "arxiv"
        assert paper.arxiv_id == paper.id and not paper.id.endswith(("v1", "v2", "v3"))
        assert paper.url == f"https://arxiv.org/abs/{paper.id}"
        assert paper.links == (
            Link("arXiv", f"https://arxiv.org/abs/{paper.id}"),
            Link("PDF", f"https://arxiv.org/pdf/{paper.id}"),
        )


def test_an_api_answer_without_entries_is_no_papers() -> None:
    assert parse_api(EMPTY_API.read_bytes(), day=dt.date(2026, 4, 12)) == []


def test_the_api_error_over_http_400_names_the_source_the_url_and_arxivs_message(
    server: LoopbackServer, fetcher: Fetcher
) -> None:
    server.serve_bytes("/api/query", ERROR_API.read_bytes(), status=400)
    with pytest.raises(SourceError) as caught:
        query_api(fetcher, {"id_list": "abc"}, day=dt.date(2026, 4, 12), base_url=server.url)
    error = caught.value
    assert error.source == "arxiv"
    assert error.url == f"{server.url}/api/query?id_list=abc"
    assert error.problem == "HTTP 400: the arXiv API answered with an error: " + collapse(
        entries(ERROR_API.read_bytes())[0].findtext("atom:summary", "", NS)
    )
    assert len(server.requests) == 1  # a 400 is an answer, not something to retry


def test_an_http_400_that_is_not_arxivs_error_feed_still_fails_clearly(
    server: LoopbackServer, fetcher: Fetcher
) -> None:
    server.serve_bytes("/api/query", b"<html>Bad Request</html>", status=400)
    with pytest.raises(SourceError) as caught:
        query_api(fetcher, {"id_list": "abc"}, day=dt.date(2026, 4, 12), base_url=server.url)
    assert caught.value.problem.startswith("HTTP 400: not an RSS or Atom feed")


def test_papers_are_fetched_by_id_in_batches_a_polite_pause_apart(
    server: LoopbackServer, fetcher: Fetcher
) -> None:
    server.serve_file("/api/query", CURRENT_API, content_type="application/atom+xml")
    pauses: list[float] = []
    ids = ["2202.12139v1", "2202.12139", "1201.4869", "2301.00001"]
    papers = fetch_ids(
        fetcher, ids, day=dt.date(2026, 4, 12), base_url=server.url, batch=2, sleep=pauses.append
    )
    assert [request.query for request in server.requests] == [
        {"id_list": "2202.12139,1201.4869", "max_results": "2"},
        {"id_list": "2301.00001", "max_results": "1"},
    ]
    assert pauses == [API_PAUSE] and API_PAUSE >= 3
    assert len(papers) == 20  # the loopback server answers every query with the capture


# --- the announcement listings ------------------------------------------------------------


def test_the_truncated_listing_fails_instead_of_returning_a_partial_day() -> None:
    with pytest.raises(SourceError) as caught:
        parse_listing(TRUNCATED.read_bytes(), day=ANNOUNCED, url="https://rss/atom/cs.AI")
    assert caught.value.problem.startswith("truncated or malformed feed (line ")
    assert "no element found" in caught.value.problem


def test_the_repaired_listing_gives_every_new_and_cross_listed_paper() -> None:
    raw = entries(repaired())
    kinds = [entry.findtext("arxiv:announce_type", "", NS) for entry in raw]
    assert set(kinds) == {"new", "cross"}
    papers = parse_listing(repaired(), day=ANNOUNCED)
    assert len(papers) == len(raw) == 86
    for paper, entry in zip(papers, raw, strict=True):
        assert paper.id == listing_id(entry)
        assert paper.title == collapse(entry.findtext("atom:title", "", NS))
        summary = collapse(entry.findtext("atom:summary", "", NS))
        assert summary.startswith(f"arXiv:{paper.id}v")
        assert paper.abstract and summary.endswith(paper.abstract)
        assert "Announce Type" not in paper.abstract
        creators = str(entry.findtext("dc:creator", "", NS))
        assert len(paper.authors) == creators.count(",") + 1
        assert all("\\" not in name and "{" not in name for name in paper.authors)
        assert paper.day == ANNOUNCED
        assert paper.published == dt.datetime.fromisoformat(
            str(entry.findtext("atom:published", "", NS))
        )
        assert paper.url == f"https://arxiv.org/abs/{paper.id}"


def test_tex_accents_in_author_names_become_unicode() -> None:
    papers = {paper.id: paper for paper in parse_listing(repaired(), day=ANNOUNCED)}
    with_tex = {
        listing_id(entry): str(entry.findtext("dc:creator", "", NS))
        for entry in entries(repaired())
        if "\\" in str(entry.findtext("dc:creator", "", NS))
    }
    assert with_tex
    for paper_id, creators in with_tex.items():
        assert "\\" in creators
        assert all(name.isprintable() for name in papers[paper_id].authors)
    names = {name for paper in papers.values() for name in paper.authors}
    assert {"Paulo André Lima de Castro", "Anders Søgaard", "Hendrik Kraß"} <= names


def test_replacements_are_not_new_papers() -> None:
    raw = entries(repaired())
    for entry, kind in zip(raw[:2], ["replace", "replace-cross"], strict=True):
        node = entry.find("arxiv:announce_type", NS)
        assert node is not None
        node.text = kind
    papers = parse_listing(listing(raw), day=ANNOUNCED)
    assert [paper.id for paper in papers] == [listing_id(entry) for entry in raw[2:]]


def test_the_rss_2_variant_of_a_listing_gives_the_same_papers() -> None:
    raw = entries(repaired())
    channel = ET.Element("channel")
    ET.SubElement(channel, "title").text = "cs.AI updates on arXiv.org"
    for entry in raw:
        item = ET.SubElement(channel, "item")
        ET.SubElement(item, "title").text = entry.findtext("atom:title", "", NS)
        ET.SubElement(item, "link").text = f"https://arxiv.org/abs/{listing_id(entry)}"
        # An RSS description is HTML: plain text ("<think> tags") goes in escaped.
        summary = html.escape(str(entry.findtext("atom:summary", "", NS)))
        ET.SubElement(item, "description").text = summary
        guid = ET.SubElement(item, "guid", isPermaLink="false")
        guid.text = entry.findtext("atom:id", "", NS)
        # RSS dates are RFC 822: "Wed, 20 Aug 2025 00:00:00 -0400"
        published = dt.datetime.fromisoformat(str(entry.findtext("atom:published", "", NS)))
        ET.SubElement(item, "pubDate").text = published.strftime("%a, %d %b %Y %H:%M:%S %z")
        kind = ET.SubElement(item, f"{{{NS['arxiv']}}}announce_type")
        kind.text = entry.findtext("arxiv:announce_type", "", NS)
        ET.SubElement(item, f"{{{NS['dc']}}}creator").text = entry.findtext("dc:creator", "", NS)
    rss = ET.Element("rss", version="2.0")
    rss.append(channel)
    data = ET.tostring(rss, xml_declaration=True, encoding="utf-8")

    def key(paper: Paper) -> tuple[object, ...]:
        return (paper.id, paper.title, paper.abstract, paper.authors, paper.day)

    from_rss = parse_listing(data, day=ANNOUNCED)
    from_atom = parse_listing(repaired(), day=ANNOUNCED)
    assert [key(paper) for paper in from_rss] == [key(paper) for paper in from_atom]


def test_listings_of_the_arxiv_hosts_come_from_rss_arxiv_org_and_others_from_the_base() -> None:
    default = SourceConfig(kind="arxiv", name="a", base_url=DEFAULT_BASE_URLS["arxiv"])
    assert listing_url(default.base_url, "cs.CL") == "https://rss.arxiv.org/atom/cs.CL"
    assert listing_url("https://arxiv.org/", "q-bio.NC") == "https://rss.arxiv.org/atom/q-bio.NC"
    assert listing_url("http://127.0.0.1:8080/", "cs.CL") == "http://127.0.0.1:8080/atom/cs.CL"


def test_a_day_is_fetched_from_the_category_listing(
    server: LoopbackServer, fetcher: Fetcher
) -> None:
    server.serve_bytes("/atom/cs.AI", repaired(), headers={"Content-Type": "application/atom+xml"})
    pauses: list[float] = []
    papers = fetch_days(fetcher, source_for(server, "cs.AI"), [ANNOUNCED], sleep=pauses.append)
    assert [paper.id for paper in papers] == [listing_id(entry) for entry in entries(repaired())]
    assert server.paths() == ["/atom/cs.AI"]
    assert pauses == []  # one category, one request: nothing to wait for


def test_a_listing_that_shows_another_announcement_gives_no_papers_for_the_day(
    server: LoopbackServer, fetcher: Fetcher
) -> None:
    server.serve_bytes("/atom/cs.AI", repaired())
    source = source_for(server, "cs.AI")
    assert fetch_days(fetcher, source, [ANNOUNCED + dt.timedelta(days=1)]) == []  # not yet
    before = ANNOUNCED - dt.timedelta(days=1)
    assert fetch_days(fetcher, source, [before], complete=[before]) == []  # had before
    assert server.paths() == ["/atom/cs.AI", "/atom/cs.AI"]


def test_a_paper_listed_in_two_categories_is_returned_once(
    server: LoopbackServer, fetcher: Fetcher
) -> None:
    raw = entries(repaired())
    server.serve_bytes("/atom/cs.AI", listing(raw[:60]))
    server.serve_bytes("/atom/cs.LG", listing(raw[40:]))  # 20 papers in both
    pauses: list[float] = []
    papers = fetch_days(
        fetcher, source_for(server, "cs.AI", "cs.LG"), [ANNOUNCED], pause=0.25, sleep=pauses.append
    )
    assert [paper.id for paper in papers] == [listing_id(entry) for entry in raw]
    assert server.paths() == ["/atom/cs.AI", "/atom/cs.LG"]
    assert pauses == [0.25]


def test_a_truncated_listing_over_http_names_the_source_and_the_url(
    server: LoopbackServer, fetcher: Fetcher
) -> None:
    server.serve_bytes("/atom/cs.AI", repaired())
    server.serve_file("/atom/cs.LG", TRUNCATED, content_type="application/atom+xml")
    with pytest.raises(SourceError) as caught:
        fetch_days(
            fetcher, source_for(server, "cs.AI", "cs.LG"), [ANNOUNCED], sleep=lambda _s: None
        )
    assert caught.value.source == "arxiv-test"
    assert caught.value.url == f"{server.url}/atom/cs.LG"
    assert "truncated or malformed feed" in caught.value.problem


def test_a_listing_the_server_cannot_give_is_a_source_error(
    server: LoopbackServer, fetcher: Fetcher
) -> None:
    server.route("/atom/cs.AI", replies(Reply(503)))
    with pytest.raises(SourceError) as caught:
        fetch_days(fetcher, source_for(server, "cs.AI"), [ANNOUNCED])
    assert str(caught.value).startswith(
        f"source arxiv-test: {server.url}/atom/cs.AI: HTTP 503 Service Unavailable"
    )


def test_fetch_papers_dispatches_arxiv_sources(server: LoopbackServer, fetcher: Fetcher) -> None:
    server.serve_bytes("/atom/cs.AI", repaired())
    papers = fetch_papers(fetcher, source_for(server, "cs.AI"), [ANNOUNCED])
    assert len(papers) == len(entries(repaired()))
    assert {paper.source for paper in papers} == {"arxiv"}


# --- HTML listing pages ---------------------------------------------------------------


NEW_PAGE = """<html><body><div id='dlpage'><h1>Astrophysics</h1>
<h3>Showing new listings for Friday, 22 November 2024</h3>
<dl id='articles'><h3>New submissions (showing 1 of 1 entries)</h3>
<dt><a name='item1'>[1]</a>
<a href ="/abs/2411.00001" title="Abstract" id="2411.00001">arXiv:2411.00001</a></dt>
<dd><div class='meta'><div class='list-title mathjax'><span class='descriptor'>Title:</span>
 A new   survey of galaxies</div>
<div class='list-authors'><a href='/a/1'>Ana P&eacute;rez</a>, <a href='/a/2'>Li Wei</a></div>
<p class='mathjax'>We survey
 galaxies.</p></div></dd></dl>
<dl id='articles'><h3>Replacement submissions (showing 1 of 1 entries)</h3>
<dt><a href ="/abs/2401.00002" title="Abstract" id="2401.00002">arXiv:2401.00002</a> (replaced)</dt>
<dd><div class='meta'><div class='list-title mathjax'><span class='descriptor'>Title:</span>
 An old paper</div></div></dd></dl></div></body></html>"""


def test_the_recent_html_listing_gives_every_paper_under_its_days_heading() -> None:
    papers = parse_listing_page(LIST_PAGE.read_bytes(), day=dt.date(2024, 11, 22))
    days = Counter(paper.day for paper in papers)
    assert days == {
        dt.date(2024, 11, 22): 75,
        dt.date(2024, 11, 21): 67,
        dt.date(2024, 11, 20): 94,
        dt.date(2024, 11, 19): 101,
        dt.date(2024, 11, 18): 60,
    }
    first = papers[0]
    assert first.id == "2411.14419"
    assert first.title.startswith("Combining summary statistics with simulation-based inference")
    assert first.authors == ("Benoit Semelin", "Romain Mériot", "Ashutosh Mishra", "David Cornu")
    assert all(paper.id and paper.title for paper in papers)


def test_the_new_html_listing_as_served_keeps_abstracts_and_drops_replacements() -> None:
    [paper] = parse_listing_page(NEW_PAGE.encode(), day=dt.date(2024, 11, 23))
    assert (paper.id, paper.day) == ("2411.00001", dt.date(2024, 11, 22))
    assert paper.title == "A new survey of galaxies"
    assert paper.abstract == "We survey galaxies."
    assert paper.authors == ("Ana Pérez", "Li Wei")


def test_a_page_without_a_listing_is_a_layout_error() -> None:
    with pytest.raises(SourceError, match="no dl#articles listing"):
        parse_listing_page(b"<html><body><p>We moved.</p></body></html>", day=dt.date(2024, 11, 22))


# --- days missed: the recent listing and the API ------------------------------------------

RECENT_DAYS = {  # the recent capture's days: where each starts, how many entries
    dt.date(2024, 11, 22): (0, 75),
    dt.date(2024, 11, 21): (75, 67),
    dt.date(2024, 11, 20): (142, 94),
    dt.date(2024, 11, 19): (236, 101),
    dt.date(2024, 11, 18): (337, 60),
}
LATEST = dt.date(2024, 11, 22)  # a Friday


def announced_on(day: dt.date) -> bytes:
    """The repaired listing as if announced on `day` (an astro-ph listing, say)."""
    raw = entries(repaired())
    for entry in raw:
        published = entry.find("atom:published", NS)
        assert published is not None
        published.text = f"{day.isoformat()}T00:00:00-05:00"
    return listing(raw)


def test_the_recent_listing_says_where_each_day_starts_and_which_it_shows_whole() -> None:
    page = parse_recent_page(LIST_PAGE.read_bytes(), url="https://arxiv.org/list/astro-ph/recent")
    assert {day: len(papers) for day, papers in page.days.items()} == {
        day: count for day, (_, count) in RECENT_DAYS.items()
    }
    assert page.starts == {day: start for day, (start, _) in RECENT_DAYS.items()}
    assert page.whole == set(RECENT_DAYS)
    assert recent_url("https://export.arxiv.org", "astro-ph", 75) == (
        "https://arxiv.org/list/astro-ph/recent?skip=75&show=2000"
    )


def test_days_missed_before_the_latest_listing_are_caught_up_with_their_abstracts(
    server: LoopbackServer, fetcher: Fetcher
) -> None:
    server.serve_bytes("/atom/astro-ph", announced_on(LATEST))
    server.serve_file("/list/astro-ph/recent", LIST_PAGE, content_type="text/html")
    recent = parse_recent_page(LIST_PAGE.read_bytes())
    withdrawn = recent.days[dt.date(2024, 11, 21)][0].id  # the API does not answer for it
    server.route("/api/query", lambda request: arxiv_api_answer(request, leave_out=withdrawn))
    pauses: list[float] = []
    # The 19th was fetched with papers before; the 20th and 21st were missed (an outage).
    days = [dt.date(2024, 11, d) for d in (19, 20, 21, 22)]
    papers = fetch_days(
        fetcher,
        source_for(server, "astro-ph"),
        days,
        complete=[days[0]],
        sleep=pauses.append,
    )
    by_day = Counter(paper.day for paper in papers)
    assert by_day == {LATEST: len(entries(repaired())), days[1]: 94, days[2]: 67}
    caught = [paper for paper in papers if paper.day in days[1:3]]
    assert [p.id for p in caught] == [p.id for d in days[1:3] for p in recent.days[d]]
    for paper in caught:
        if paper.id == withdrawn:  # as the listing gave it: title and authors, no abstract
            assert paper.abstract == "" and paper.title
        else:
            assert (paper.title, paper.abstract) == (
                f"Title of {paper.id}",
                f"Abstract of {paper.id}.",
            )
    assert server.paths() == ["/atom/astro-ph", "/list/astro-ph/recent", "/api/query", "/api/query"]
    assert [len(r.query["id_list"].split(",")) for r in server.requests[2:]] == [100, 61]
    assert pauses == [LISTING_PAUSE, API_PAUSE, API_PAUSE]


def test_a_day_had_before_weekends_and_days_to_come_ask_nothing_more(
    server: LoopbackServer, fetcher: Fetcher
) -> None:
    server.serve_bytes("/atom/astro-ph", announced_on(LATEST))
    days = [dt.date(2024, 11, d) for d in (16, 17, 21, 22, 23)]  # Sat, Sun, ..., Sat
    papers = fetch_days(fetcher, source_for(server, "astro-ph"), days, complete=[days[2]])
    assert {paper.day for paper in papers} == {LATEST}
    assert server.paths() == ["/atom/astro-ph"]


def test_a_day_the_recent_page_shows_in_part_is_asked_for_from_where_it_starts(
    server: LoopbackServer, fetcher: Fetcher
) -> None:
    def page(shown: int, start: int) -> Reply:
        items = "".join(
            f"""<dt><a href="/abs/2411.{n:05d}" title="Abstract" id="2411.{n:05d}">x</a></dt>
<dd><div class='list-title mathjax'>Paper {n}</div></dd>"""
            for n in range(start, start + shown)
        )
        return Reply(
            body=f"""<html><body><ul>
<li><a href="/list/astro-ph/recent?skip=0&amp;show=2">Fri, 22 Nov 2024</a></li>
<li><a href="/list/astro-ph/recent?skip=2&amp;show=2">Thu, 21 Nov 2024</a></li></ul>
<dl id='articles'><h3>Thu, 21 Nov 2024 (showing {shown} of 3 entries )</h3>{items}</dl>
</body></html>""".encode()
        )

    server.route("/list/astro-ph/recent", lambda _r: page(1, 2), query={"skip": "0"})
    server.route("/list/astro-ph/recent", lambda _r: page(3, 2), query={"skip": "2"})
    server.serve_bytes("/atom/astro-ph", announced_on(LATEST))
    server.route("/api/query", arxiv_api_answer)
    missed = dt.date(2024, 11, 21)
    papers = fetch_days(
        fetcher, source_for(server, "astro-ph"), [missed, LATEST], sleep=lambda _s: None
    )
    assert sorted(p.id for p in papers if p.day == missed) == [
        "2411.00002",
        "2411.00003",
        "2411.00004",
    ]
    assert [r.query.get("skip") for r in server.requests if "recent" in r.path] == ["0", "2"]

    server.route("/list/astro-ph/recent", lambda _r: page(1, 2), query={"skip": "2"})
    server.requests.clear()
    with pytest.raises(SourceError) as caught:
        fetch_days(fetcher, source_for(server, "astro-ph"), [missed, LATEST], sleep=lambda _s: None)
    assert caught.value.url.endswith("/list/astro-ph/recent?skip=2&show=2000")
    assert "shows only part of 2024-11-21" in caught.value.problem


def test_a_day_older_than_the_recent_listing_is_logged_and_the_rest_still_fetched(
    server: LoopbackServer, fetcher: Fetcher, caplog: pytest.LogCaptureFixture
) -> None:
    server.serve_bytes("/atom/astro-ph", announced_on(LATEST))
    server.serve_file("/list/astro-ph/recent", LIST_PAGE, content_type="text/html")
    old = dt.date(2024, 11, 14)  # a Thursday, a week before the recent listing's first day
    with caplog.at_level("WARNING"):
        papers = fetch_days(fetcher, source_for(server, "astro-ph"), [old, LATEST])
    assert {paper.day for paper in papers} == {LATEST}
    assert "/api/query" not in server.paths()
    assert "2024-11-14" in caplog.text and "not caught up" in caplog.text


def test_a_recent_listing_the_server_cannot_give_fails_the_source_by_name_and_url(
    server: LoopbackServer, fetcher: Fetcher
) -> None:
    server.serve_bytes("/atom/astro-ph", announced_on(LATEST))
    server.route("/list/astro-ph/recent", replies(Reply(503)))
    with pytest.raises(SourceError) as caught:
        fetch_days(
            fetcher,
            source_for(server, "astro-ph"),
            [dt.date(2024, 11, 21), LATEST],
            sleep=lambda _s: None,
        )
    assert caught.value.source == "arxiv-test"
    assert caught.value.url == f"{server.url}/list/astro-ph/recent?skip=0&show=2000"
