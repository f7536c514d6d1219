"""Hugging Face Daily Papers: the JSON API, with the day's HTML page as a fallback.

Both carry the same item objects (the page embeds them in the `DailyPapers` component's
`data-props`), so one mapping turns either into Papers. Items changed shape between 2024
and 2026 (see research/page-formats.md §4.3), so only `paper.id` and a title are required;
every other field is read if present and of the expected type, and dropped otherwise.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from bs4 import BeautifulSoup

from digest.config import SourceConfig
from digest.errors import FetchError, SourceError
from digest.fetch import Fetcher
from digest.ids import is_arxiv_id, strip_version
from digest.models import Link, Paper

log = logging.getLogger(__name__)

SOURCE = "huggingface"
PUBLIC_SITE = "https://huggingface.co"
PAGE_SIZE = 50  # the API's default: asking for more risks a silent cap that looks like a short page
_MAX_PAGES = 50  # a runaway guard: a real day holds a few dozen papers


def parse_api(content: bytes, *, day: dt.date, url: str = "") -> list[Paper]:
    """Papers from one `/api/daily_papers` response: a bare JSON array of items.

    `day` is the requested day, used for items too old to carry `submittedOnDailyAt`.
    """
    try:
        data = json.loads(content)
    except ValueError as exc:
        raise SourceError(SOURCE, url, f"the response is not JSON ({exc})") from exc
    if not isinstance(data, list):
        raise SourceError(
            SOURCE, url, f"expected a JSON list of papers, got a JSON {_json_type(data)}"
        )
    return _papers(data, day=day, url=url)


def parse_day_page(content: bytes, *, day: dt.date, url: str = "") -> list[Paper]:
    """Papers from a `/papers/date/YYYY-MM-DD` HTML page, read from its hydration JSON.

    The visible cards lost the abstract and authors in 2025; the `DailyPapers` props still
    hold the same items as the API. A real HTML parser reads the attribute, because the
    serialization (quotes, attribute order, entities) varies.
    """
    props = _hydration_props(content, "DailyPapers", url)
    items = props.get("dailyPapers") if isinstance(props, dict) else None
    if not isinstance(items, list):
        raise SourceError(SOURCE, url, "DailyPapers data-props has no dailyPapers list")
    return _papers(items, day=day, url=url)


def _hydration_props(content: bytes, target: str, url: str) -> Any:
    """The JSON props of the Svelte component `target` (`data-target`/`data-props`),
    read with a real HTML parser: the attribute's quoting and order vary."""
    node = BeautifulSoup(content, "lxml").select_one(f'[data-target="{target}"]')
    if node is None:
        raise SourceError(SOURCE, url, f"no {target} data on the page")
    raw = node.get("data-props")
    if not isinstance(raw, str):
        raise SourceError(SOURCE, url, f"the {target} element has no data-props")
    try:
        props = json.loads(raw)
    except ValueError as exc:
        raise SourceError(SOURCE, url, f"{target} data-props is not JSON ({exc})") from exc
    return props


def parse_paper_page(content: bytes, *, url: str = "") -> Paper:
    """The paper of a `/papers/<id>` page, read from the `PaperContent` hydration props.

    Its `paper` object has the API item's `paper` shape, so the same mapping applies; the
    day is `submittedOnDailyAt`, or the arXiv publication date for a paper never listed.
    """
    props = _hydration_props(content, "PaperContent", url)
    inner = props.get("paper") if isinstance(props, dict) else None
    if not isinstance(inner, dict):
        raise SourceError(SOURCE, url, "PaperContent data-props has no paper object")
    listed = _datetime(inner.get("submittedOnDailyAt")) or _datetime(inner.get("publishedAt"))
    if listed is None:
        raise SourceError(SOURCE, url, "the paper has neither submittedOnDailyAt nor publishedAt")
    comments = props.get("comments")
    item = {
        "paper": inner,
        "submitterOrganization": props.get("submitterOrganization"),
        "numComments": len(comments) if isinstance(comments, list) else None,
    }
    paper = _paper(item, index=0, day=listed.date(), url=url)
    if paper is None:
        raise SourceError(SOURCE, url, "the paper was withdrawn")
    return paper


def fetch_day(
    fetcher: Fetcher, source: SourceConfig, day: dt.date, *, page_size: int = PAGE_SIZE
) -> list[Paper]:
    """Every paper listed on `day`, from the API or, if that fails, the day's HTML page.

    An empty list is a normal answer (weekends, holidays). If both ways fail, the
    `SourceError` names the API request that failed and what the fallback ran into.
    """
    base = source.base_url.rstrip("/")
    try:
        return _fetch_api(fetcher, base, day, page_size)
    except FetchError as exc:
        if exc.status is None:  # the host did not answer: its HTML page will not either
            raise SourceError(source.name, exc.url, exc.problem) from exc
        api_url, api_problem = exc.url, exc.problem
    except SourceError as exc:
        api_url, api_problem = exc.url, exc.problem
    page_url = f"{base}/papers/date/{day.isoformat()}"
    log.warning("%s: %s: %s; trying %s", source.name, api_url, api_problem, page_url)
    try:
        response = fetcher.get(page_url)
        papers = parse_day_page(response.content, day=day, url=response.url)
    except (FetchError, SourceError) as exc:
        raise SourceError(
            source.name, api_url, f"{api_problem}; HTML fallback {page_url}: {exc.problem}"
        ) from exc
    return _unique(papers)


def _fetch_api(fetcher: Fetcher, base: str, day: dt.date, page_size: int) -> list[Paper]:
    """Pages `p=0,1,…` until a short page: the API gives no total and no next link."""
    url = f"{base}/api/daily_papers"
    found: dict[str, Paper] = {}
    for page in range(_MAX_PAGES):
        params: dict[str, str | int] = {"date": day.isoformat(), "limit": page_size, "p": page}
        response = fetcher.get(url, params)
        papers = parse_api(response.content, day=day, url=response.url)
        new = [paper for paper in papers if paper.id not in found]
        found.update((paper.id, paper) for paper in new)
        if len(papers) < page_size:
            break
        if not new:  # a server that ignores `p` would repeat the first page forever
            log.warning("%s returned no new papers; stopping", response.url)
            break
    else:
        log.warning("%s: stopped after %d pages of %d", url, _MAX_PAGES, page_size)
    return list(found.values())


def _unique(papers: Iterable[Paper]) -> list[Paper]:
    """First occurrence of each id: pages may show a card twice (desktop and mobile)."""
    unique: dict[str, Paper] = {}
    for paper in papers:
        unique.setdefault(paper.id, paper)
    return list(unique.values())


def _papers(items: list[Any], *, day: dt.date, url: str) -> list[Paper]:
    papers = []
    for index, item in enumerate(items):
        paper = _paper(item, index=index, day=day, url=url)
        if paper is not None:
            papers.append(paper)
    return papers


def _paper(item: Any, *, index: int, day: dt.date, url: str) -> Paper | None:
    """One item → Paper, or None for a withdrawn paper. A missing id or title is a layout
    change, not a quirk of one paper, so it stops the source rather than skipping."""
    where = f"item {index}"
    if not isinstance(item, dict):
        raise SourceError(SOURCE, url, f"{where} is a JSON {_json_type(item)}, not an object")
    inner = item.get("paper")
    if not isinstance(inner, dict):
        raise SourceError(SOURCE, url, f"{where} has no paper object")
    raw_id = _text(inner.get("id"))
    if raw_id is None:
        raise SourceError(SOURCE, url, f"{where} has no paper.id")
    stripped = strip_version(raw_id)
    paper_id = stripped if is_arxiv_id(stripped) else raw_id
    title = _text(item.get("title")) or _text(inner.get("title"))
    if title is None:
        raise SourceError(SOURCE, url, f"{where} ({paper_id}) has no title")
    if item.get("withdrawnAt") or inner.get("withdrawnAt"):
        log.info("skipping withdrawn paper %s", paper_id)
        return None

    github_repo = _http_url(inner.get("githubRepo"))
    project_page = _http_url(inner.get("projectPage"))
    links = []
    if is_arxiv_id(paper_id):
        links += [
            Link("arXiv", f"https://arxiv.org/abs/{paper_id}"),
            Link("PDF", f"https://arxiv.org/pdf/{paper_id}"),
        ]
    if github_repo:
        links.append(Link("Code", github_repo))
    if project_page:
        links.append(Link("Project page", project_page))

    listed = _datetime(inner.get("submittedOnDailyAt"))
    return Paper(
        id=paper_id,
        title=title,
        abstract=_text(inner.get("summary")) or _text(item.get("summary")) or "",
        day=listed.date() if listed else day,
        source=SOURCE,
        url=f"{PUBLIC_SITE}/papers/{quote(paper_id, safe='/.-')}",
        authors=_authors(inner.get("authors")),
        upvotes=_count(inner.get("upvotes")),
        comments=_count(item.get("numComments")),
        published=_datetime(inner.get("publishedAt")),
        ai_summary=_text(inner.get("ai_summary")),
        ai_keywords=_texts(inner.get("ai_keywords")),
        github_repo=github_repo,
        project_page=project_page,
        thumbnail=_http_url(item.get("thumbnail")) or _http_url(item.get("mediaUrl")),
        organization=_organization(item, inner),
        links=tuple(links),
    )


def _text(value: Any) -> str | None:
    """Whitespace collapsed (arXiv hard-wraps titles and abstracts); None if empty."""
    if not isinstance(value, str):
        return None
    return " ".join(value.split()) or None


def _texts(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(text for text in map(_text, value) if text)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _datetime(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _http_url(value: Any) -> str | None:
    """Only absolute http(s) URLs: these end up as links in emails and feeds."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in value):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    return value if parts.scheme.lower() in ("http", "https") and parts.hostname else None


def _authors(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    names = []
    for author in value:
        if isinstance(author, dict) and author.get("hidden") is not True:
            name = _text(author.get("name"))
            if name:
                names.append(name)
    return tuple(names)


def _organization(item: Mapping[str, Any], inner: Mapping[str, Any]) -> str | None:
    # `submitterOrganization` was the name for a few days in 2025-09/10.
    for org in (
        item.get("organization"),
        item.get("submitterOrganization"),
        inner.get("organization"),
    ):
        if isinstance(org, dict):
            name = _text(org.get("fullname")) or _text(org.get("name"))
            if name:
                return name
    return None


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")
