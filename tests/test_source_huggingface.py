from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from httpserver import LoopbackServer, Reply, replies, serve_hf_api

from digest.config import SourceConfig
from digest.errors import SourceError
from digest.fetch import Fetcher
from digest.models import Link
from digest.sources import fetch_papers
from digest.sources.huggingface import fetch_day, parse_api, parse_day_page, parse_paper_page

HF = Path(__file__).parent / "fixtures" / "hf"
API_FILES = sorted((HF / "api").glob("*.json")) + sorted((HF / "api-month").glob("*.json"))
DAY_PAGE = HF / "html" / "daily_2024-08-01.html"
PAPER_PAGE = HF / "html" / "paper_2509.24002_bs4-prettified.html"
API_PATTERN = "daily_papers_date_{date}.json"


def day_of(file: Path) -> dt.date:
    return dt.date.fromisoformat(file.stem[-10:])


def load(file: Path) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(file.read_bytes())
    return items


def as_bytes(items: list[dict[str, Any]]) -> bytes:
    return json.dumps(items).encode()


def minimal_item(**paper: Any) -> dict[str, Any]:
    return {"paper": {"id": "2601.00001", "title": "A title", "summary": "Text."} | paper}


def source_for(server: LoopbackServer) -> SourceConfig:
    return SourceConfig(kind="huggingface", name="hf-test", base_url=server.url)


# --- parsing the captures ---------------------------------------------------------------


@pytest.mark.parametrize("file", API_FILES, ids=lambda file: f"{file.parent.name}/{file.name}")
def test_every_api_capture_parses_into_complete_papers(file: Path) -> None:
    items = load(file)
    papers = parse_api(file.read_bytes(), day=day_of(file), url=str(file))
    assert len(papers) == len(items)
    assert [paper.id for paper in papers] == [item["paper"]["id"] for item in items]
    for paper in papers:
        assert paper.arxiv_id == paper.id
        assert paper.title and paper.abstract and paper.authors
        assert "\n" not in paper.title and "\n" not in paper.abstract
        assert paper.day == day_of(file)
        assert paper.source == "huggingface"
        assert paper.url == f"https://huggingface.co/papers/{paper.id}"
        assert paper.links[:2] == (
            Link("arXiv", f"https://arxiv.org/abs/{paper.id}"),
            Link("PDF", f"https://arxiv.org/pdf/{paper.id}"),
        )
        assert paper.published is not None and paper.published.tzinfo is not None


def hidden_on_day_page() -> set[str]:
    node = BeautifulSoup(DAY_PAGE.read_bytes(), "lxml").select_one('[data-target="DailyPapers"]')
    assert node is not None
    items = json.loads(str(node["data-props"]))["dailyPapers"]
    return {a["name"] for item in items for a in item["paper"]["authors"] if a["hidden"]}


def test_the_api_and_the_html_page_of_the_same_day_give_the_same_papers() -> None:
    day = dt.date(2024, 8, 1)
    from_api = parse_api((HF / "api" / API_PATTERN.format(date=day)).read_bytes(), day=day)
    from_page = parse_day_page(DAY_PAGE.read_bytes(), day=day)
    assert (len(from_api), len(from_page)) == (11, 13)
    page_by_id = {paper.id: paper for paper in from_page}
    assert {paper.id for paper in from_api} <= set(page_by_id)
    # Between the two captures HF hid one author of one paper; hidden authors are left out.
    hidden = hidden_on_day_page()
    assert hidden
    for paper in from_api:
        other = page_by_id[paper.id]
        assert (other.title, other.abstract) == (paper.title, paper.abstract)
        assert other.authors == tuple(name for name in paper.authors if name not in hidden)
        assert other.day == paper.day == day
    assert sum(page_by_id[p.id].authors != p.authors for p in from_api) == 1
    # captured hours apart: the votes moved on
    assert any(page_by_id[paper.id].upvotes != paper.upvotes for paper in from_api)


def test_a_single_paper_page_is_not_a_day_page() -> None:
    with pytest.raises(SourceError) as caught:
        parse_day_page(PAPER_PAGE.read_bytes(), day=dt.date(2025, 10, 1), url="https://x/p")
    assert caught.value.problem == "no DailyPapers data on the page"
    assert caught.value.url == "https://x/p"


def test_day_page_props_may_use_the_2026_top_level_keys() -> None:
    props = {
        "authLight": {},
        "dateString": "2026-01-05",
        "periodType": "day",
        "isTrending": False,
        "dailyPapers": [minimal_item()],
    }
    escaped = json.dumps(props).replace("&", "&amp;").replace('"', "&quot;")
    page = f'<main><div data-target="DailyPapers" data-props="{escaped}"></div></main>'
    papers = parse_day_page(page.encode(), day=dt.date(2026, 1, 5))
    assert [paper.id for paper in papers] == ["2601.00001"]


def test_items_without_a_listing_time_take_the_requested_day() -> None:
    file = HF / "api" / API_PATTERN.format(date="2024-05-27")
    assert all("submittedOnDailyAt" not in item["paper"] for item in load(file))
    asked = dt.date(2024, 5, 28)
    assert {paper.day for paper in parse_api(file.read_bytes(), day=asked)} == {asked}


def test_the_listing_time_decides_the_day_when_present() -> None:
    file = HF / "api" / API_PATTERN.format(date="2026-08-21")
    papers = parse_api(file.read_bytes(), day=dt.date(2026, 8, 24))
    assert {paper.day for paper in papers} == {dt.date(2026, 8, 21)}


def test_a_2026_item_maps_every_field() -> None:
    file = HF / "api" / API_PATTERN.format(date="2026-08-21")
    item = load(file)[0]
    raw = item["paper"]
    paper = parse_api(file.read_bytes(), day=dt.date(2026, 8, 21))[0]
    assert paper.id == raw["id"]
    assert paper.title == " ".join(item["title"].split())
    assert paper.abstract == " ".join(raw["summary"].split())
    assert paper.authors == tuple(a["name"] for a in raw["authors"] if not a["hidden"])
    assert paper.upvotes == raw["upvotes"] and paper.upvotes > 0
    assert paper.comments == item["numComments"]
    assert paper.published == dt.datetime.fromisoformat(raw["publishedAt"])
    assert paper.ai_summary == raw["ai_summary"]
    assert paper.ai_keywords == tuple(raw["ai_keywords"])
    assert paper.github_repo == raw["githubRepo"]
    assert paper.project_page == raw["projectPage"]
    assert paper.thumbnail == item["thumbnail"]
    assert paper.organization == item["organization"]["fullname"]
    assert paper.links[2:] == (
        Link("Code", raw["githubRepo"]),
        Link("Project page", raw["projectPage"]),
    )


def test_the_oldest_shape_takes_its_thumbnail_from_media_url() -> None:
    file = HF / "api" / API_PATTERN.format(date="2024-05-27")
    papers = parse_api(file.read_bytes(), day=dt.date(2024, 5, 27))
    assert [paper.thumbnail for paper in papers] == [item["mediaUrl"] for item in load(file)]


def test_the_short_lived_submitter_organization_key_is_read() -> None:
    file = HF / "api" / API_PATTERN.format(date="2025-09-30")
    items = load(file)
    papers = parse_api(file.read_bytes(), day=dt.date(2025, 9, 30))
    expected = [
        " ".join((item.get("submitterOrganization") or {}).get("fullname", "").split()) or None
        for item in items
    ]
    assert any(expected)
    assert [paper.organization for paper in papers] == expected


# --- odd and hostile items --------------------------------------------------------------


def test_hidden_authors_are_left_out() -> None:
    authors = [{"name": "Shown", "hidden": False}, {"name": "Secret", "hidden": True}]
    [paper] = parse_api(as_bytes([minimal_item(authors=authors)]), day=dt.date(2026, 1, 5))
    assert paper.authors == ("Shown",)


def test_withdrawn_papers_are_dropped() -> None:
    items = [minimal_item(withdrawnAt="2026-01-06T00:00:00Z"), minimal_item(id="2601.00002")]
    papers = parse_api(as_bytes(items), day=dt.date(2026, 1, 5))
    assert [paper.id for paper in papers] == ["2601.00002"]


def test_a_versioned_id_is_keyed_without_its_version() -> None:
    [paper] = parse_api(as_bytes([minimal_item(id="2601.00001v3")]), day=dt.date(2026, 1, 5))
    assert paper.id == "2601.00001"
    assert paper.url == "https://huggingface.co/papers/2601.00001"


def test_links_that_are_not_http_are_dropped() -> None:
    item = minimal_item(
        githubRepo="javascript:alert(1)",
        projectPage="data:text/html,<script>alert(1)</script>",
    ) | {"thumbnail": "file:///etc/passwd"}
    [paper] = parse_api(as_bytes([item]), day=dt.date(2026, 1, 5))
    assert (paper.github_repo, paper.project_page, paper.thumbnail) == (None, None, None)
    assert [link.label for link in paper.links] == ["arXiv", "PDF"]


def test_fields_of_the_wrong_type_are_ignored_rather_than_trusted() -> None:
    item = minimal_item(
        upvotes="many", authors="Ada", ai_keywords="mamba", publishedAt=12, githubRepo=["x"]
    ) | {"numComments": None, "organization": "acme"}
    [paper] = parse_api(as_bytes([item]), day=dt.date(2026, 1, 5))
    assert (paper.upvotes, paper.comments, paper.authors, paper.ai_keywords) == (0, 0, (), ())
    assert (paper.published, paper.github_repo, paper.organization) == (None, None, None)


def test_an_item_without_a_paper_id_is_a_layout_error() -> None:
    item = minimal_item()
    del item["paper"]["id"]
    with pytest.raises(SourceError) as caught:
        parse_api(as_bytes([minimal_item(id="2601.00002"), item]), day=dt.date(2026, 1, 5))
    assert caught.value.source == "huggingface"
    assert "paper.id" in caught.value.problem
    assert "item 1" in caught.value.problem


def test_an_item_without_any_title_is_a_layout_error() -> None:
    item = minimal_item()
    del item["paper"]["title"]
    with pytest.raises(SourceError) as caught:
        parse_api(as_bytes([item]), day=dt.date(2026, 1, 5))
    assert "title" in caught.value.problem


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<html>Service down</html>", "not JSON"),
        (b'{"error": "Invalid date"}', "expected a JSON list"),
        (b'["2601.00001"]', "not an object"),
    ],
)
def test_a_body_that_is_not_a_list_of_items_is_an_error(body: bytes, problem: str) -> None:
    with pytest.raises(SourceError) as caught:
        parse_api(body, day=dt.date(2026, 1, 5), url="https://hf/api")
    assert problem in caught.value.problem
    assert caught.value.url == "https://hf/api"


def test_an_empty_list_is_a_day_without_papers() -> None:
    assert parse_api(b"[]", day=dt.date(2026, 1, 3)) == []


# --- fetching over HTTP -----------------------------------------------------------------


def test_a_day_is_fetched_from_the_api_in_one_request(
    server: LoopbackServer, fetcher: Fetcher
) -> None:
    serve_hf_api(server, HF / "api-month")
    papers = fetch_day(fetcher, source_for(server), dt.date(2026, 1, 5))
    assert [paper.id for paper in papers] == [
        item["paper"]["id"] for item in load(HF / "api-month" / "2026-01-05.json")
    ]
    assert [request.query for request in server.requests] == [
        {"date": "2026-01-05", "limit": "50", "p": "0"}
    ]
    assert all(paper.url.startswith("https://huggingface.co/papers/") for paper in papers)


def test_a_day_without_papers_is_an_empty_list(server: LoopbackServer, fetcher: Fetcher) -> None:
    serve_hf_api(server, HF / "api-month")
    assert fetch_day(fetcher, source_for(server), dt.date(2026, 1, 3)) == []
    assert len(server.requests) == 1


def test_a_full_page_of_fifty_items_fetches_the_next_page(
    server: LoopbackServer, fetcher: Fetcher
) -> None:
    serve_hf_api(server, HF / "api", pattern=API_PATTERN)
    day = dt.date(2025, 9, 30)
    papers = fetch_day(fetcher, source_for(server), day, page_size=50)
    assert len(papers) == 50
    assert [(r.query["p"], r.query["limit"]) for r in server.requests] == [("0", "50"), ("1", "50")]


def test_a_day_longer_than_a_page_is_read_across_pages_without_duplicates(
    server: LoopbackServer, fetcher: Fetcher, tmp_path: Path
) -> None:
    items = load(HF / "api-month" / "2026-01-12.json") + load(HF / "api-month" / "2026-01-13.json")
    (tmp_path / "2026-01-12.json").write_text(json.dumps(items))
    serve_hf_api(server, tmp_path)
    papers = fetch_day(fetcher, source_for(server), dt.date(2026, 1, 12), page_size=20)
    assert [paper.id for paper in papers] == [item["paper"]["id"] for item in items]
    assert [r.query["p"] for r in server.requests] == ["0", "1", "2"]


def test_a_server_that_ignores_the_page_number_does_not_loop_forever(
    server: LoopbackServer, fetcher: Fetcher
) -> None:
    page = as_bytes([minimal_item(id=f"2601.0000{n}") for n in range(5)])
    server.serve_bytes("/api/daily_papers", page)
    papers = fetch_day(fetcher, source_for(server), dt.date(2026, 1, 5), page_size=5)
    assert len(papers) == 5
    assert len(server.requests) == 2


def test_an_api_failure_falls_back_to_the_day_page(
    server: LoopbackServer, fetcher: Fetcher
) -> None:
    server.route("/api/daily_papers", replies(Reply(500)))
    server.serve_file("/papers/date/2024-08-01", DAY_PAGE, content_type="text/html")
    papers = fetch_day(fetcher, source_for(server), dt.date(2024, 8, 1))
    assert len(papers) == 13
    assert server.paths() == ["/api/daily_papers"] * 2 + ["/papers/date/2024-08-01"]


def test_an_api_answer_that_is_not_json_falls_back_to_the_day_page(
    server: LoopbackServer, fetcher: Fetcher
) -> None:
    server.serve_bytes("/api/daily_papers", b"<html>maintenance</html>")
    server.serve_file("/papers/date/2024-08-01", DAY_PAGE, content_type="text/html")
    papers = fetch_day(fetcher, source_for(server), dt.date(2024, 8, 1))
    assert len(papers) == 13


def test_when_both_fail_the_error_names_the_source_the_url_and_both_problems(
    server: LoopbackServer, fetcher: Fetcher
) -> None:
    server.route("/api/daily_papers", replies(Reply(503)))
    server.serve_file("/papers/date/2026-01-05", PAPER_PAGE, content_type="text/html")
    with pytest.raises(SourceError) as caught:
        fetch_day(fetcher, source_for(server), dt.date(2026, 1, 5))
    api_url = f"{server.url}/api/daily_papers?date=2026-01-05&limit=50&p=0"
    error = caught.value
    assert error.source == "hf-test"
    assert error.url == api_url
    assert str(error).startswith(f"source hf-test: {api_url}: HTTP 503 Service Unavailable")
    assert f"HTML fallback {server.url}/papers/date/2026-01-05" in error.problem
    assert "no DailyPapers data on the page" in error.problem


def test_fetch_papers_dispatches_on_the_source_kind(
    server: LoopbackServer, fetcher: Fetcher
) -> None:
    serve_hf_api(server, HF / "api-month")
    papers = fetch_papers(fetcher, source_for(server), [dt.date(2026, 1, 2)])
    assert len(papers) == len(load(HF / "api-month" / "2026-01-02.json"))


def test_fetch_papers_refuses_a_kind_it_does_not_know_yet(fetcher: Fetcher) -> None:
    source = SourceConfig(kind="gopher", name="old-school", url="gopher://example.org/")
    with pytest.raises(SourceError) as caught:
        fetch_papers(fetcher, source, [dt.date(2026, 1, 5)])
    assert caught.value.source == "old-school"
    assert "not supported yet" in caught.value.problem


# --- the single-paper page ----------------------------------------------------------------


def paper_page_props() -> dict[str, Any]:
    soup = BeautifulSoup(PAPER_PAGE.read_bytes(), "lxml")
    node = soup.select_one('[data-target="PaperContent"]')
    assert node is not None
    props: dict[str, Any] = json.loads(str(node["data-props"]))
    return props


def test_a_paper_page_gives_its_paper_from_the_hydration_props() -> None:
    # BeautifulSoup's prettify() re-serialized this capture: single-quoted props, raw quotes.
    assert b"data-props='{" in PAPER_PAGE.read_bytes()
    props = paper_page_props()
    raw = props["paper"]
    paper = parse_paper_page(PAPER_PAGE.read_bytes(), url="https://hf/papers/x")
    assert paper.id == raw["id"]
    assert paper.title == " ".join(raw["title"].split())
    assert paper.abstract == " ".join(raw["summary"].split())
    assert paper.authors == tuple(a["name"] for a in raw["authors"] if not a.get("hidden"))
    assert paper.day == dt.datetime.fromisoformat(raw["submittedOnDailyAt"]).date()
    assert paper.published == dt.datetime.fromisoformat(raw["publishedAt"])
    assert paper.upvotes == raw["upvotes"] and paper.upvotes > 0
    assert paper.comments == len(props["comments"])
    assert (paper.github_repo, paper.project_page) == (raw["githubRepo"], raw["projectPage"])
    assert paper.ai_summary == raw["ai_summary"]
    assert paper.ai_keywords == tuple(raw["ai_keywords"])
    assert paper.organization == props["submitterOrganization"]["fullname"]
    assert paper.url == f"https://huggingface.co/papers/{raw['id']}"
    assert paper.source == "huggingface"


def test_a_paper_page_as_the_server_escapes_it_gives_the_same_paper() -> None:
    escaped = json.dumps(paper_page_props()).replace("&", "&amp;").replace('"', "&quot;")
    page = f'<div data-target="PaperContent" data-props="{escaped}" class="x"></div>'
    assert parse_paper_page(page.encode()) == parse_paper_page(PAPER_PAGE.read_bytes())


def test_a_paper_never_listed_takes_its_publication_day() -> None:
    props = paper_page_props()
    del props["paper"]["submittedOnDailyAt"]
    escaped = json.dumps(props).replace("&", "&amp;").replace('"', "&quot;")
    page = f'<div data-target="PaperContent" data-props="{escaped}"></div>'
    paper = parse_paper_page(page.encode())
    assert paper.day == dt.datetime.fromisoformat(props["paper"]["publishedAt"]).date()


@pytest.mark.parametrize(
    ("page", "problem"),
    [
        (DAY_PAGE.read_bytes(), "no PaperContent data on the page"),
        (b'<div data-target="PaperContent"></div>', "the PaperContent element has no data-props"),
        (b'<div data-target="PaperContent" data-props="{oops"></div>', "is not JSON"),
        (b'<div data-target="PaperContent" data-props="[]"></div>', "has no paper object"),
        (
            b'<div data-target="PaperContent" data-props=\'{"paper": {"id": "2601.00001"}}\'>',
            "neither submittedOnDailyAt nor publishedAt",
        ),
    ],
    ids=["day-page", "no-props", "not-json", "no-paper", "no-date"],
)
def test_a_paper_page_without_usable_props_is_an_error(page: bytes, problem: str) -> None:
    with pytest.raises(SourceError) as caught:
        parse_paper_page(page, url="https://hf/papers/x")
    assert problem in caught.value.problem
    assert caught.value.url == "https://hf/papers/x"
