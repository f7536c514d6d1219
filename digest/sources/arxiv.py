"""arXiv: the per-category announcement listings (Atom) and the export API.

A day's papers come from the listings (`rss.arxiv.org/atom/<cat>`): one request per
category returns the latest announcement with abstracts and authors. The export API
(`export.arxiv.org/api/query`) answers questions about given papers (liked ids, say); it
asks for 3 s between calls, so its batches are paced through an injected `sleep`. A day
missed before the latest announcement (an outage) is caught up from the HTML listing of
the category's last five announcements (`arxiv.org/list/<cat>/recent`), which names its
papers by day, and the API, which gives their abstracts.

Both speak Atom with arXiv's own namespace; feedparser keeps those fields
(`arxiv_announce_type`, `arxiv_primary_category`) and reports well-formedness errors, which
matter here: a feed cut off mid-entry must fail, not lose the rest of the day silently.
See research/page-formats.md §6 and §7.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs, quote, urljoin, urlsplit

from bs4 import BeautifulSoup, Tag

from digest.config import SourceConfig
from digest.errors import FetchError, SourceError
from digest.fetch import Fetcher
from digest.ids import arxiv_id_from_url, is_arxiv_id, strip_version
from digest.models import Link, Paper
from digest.sources.feed import (
    author_names,
    entry_arxiv_id,
    entry_text,
    feed_problem,
    is_malformed,
    is_replacement,
    read_feed,
    strip_preamble,
    utc_datetime,
)
from digest.sources.pages import read_page

log = logging.getLogger(__name__)

SOURCE = "arxiv"
API_URL = "https://export.arxiv.org"
LISTING_URL = "https://rss.arxiv.org"
PAGES_URL = "https://arxiv.org"  # the HTML listings
API_PAUSE = 3.0  # seconds between API calls, as arXiv's API terms ask
LISTING_PAUSE = 1.0  # between category listings: not required, but cheap politeness
API_BATCH = 100
RECENT_SHOW = 2000  # entries per page of a recent listing (a busy day has under 1,000)

# Hosts of arXiv's own API; their listings live on rss.arxiv.org.
_ARXIV_HOSTS = frozenset({"arxiv.org", "www.arxiv.org", "export.arxiv.org"})
_ERROR_ID = re.compile(r"^https?://arxiv\.org/api/errors\b")


def parse_api(content: bytes, *, day: dt.date, url: str = "") -> list[Paper]:
    """Papers from one export API response (the 2016 and the current format alike).

    Each paper's day is its `published` date (first version); `day` is only the fallback
    for an entry without one. arXiv reports a bad query as a one-entry feed titled "Error"
    (served with HTTP 400); that becomes a `SourceError` carrying arXiv's message.
    """
    entries = _entries(content, url)
    for entry in entries:
        if _ERROR_ID.match(_raw(entry.get("id"))):
            message = entry_text(entry, "summary") or entry_text(entry, "title") or "no message"
            raise SourceError(SOURCE, url, f"the arXiv API answered with an error: {message}")
    return [
        _paper(entry, index=index, day=day, url=url, listing=False)
        for index, entry in enumerate(entries)
    ]


def parse_listing(content: bytes, *, day: dt.date, url: str = "") -> list[Paper]:
    """New and cross-listed papers of one category listing; replacements are left out.

    Each paper's day is its announcement day (the `published` date in arXiv's own time
    zone), or `day` for an entry without one. The listing shows only the latest
    announcement, so a caller wanting `day` keeps the papers whose day equals it.
    """
    entries = _entries(content, url)
    return [
        _paper(entry, index=index, day=day, url=url, listing=True)
        for index, entry in enumerate(entries)
        if not is_replacement(entry)  # a new version of a paper announced before
    ]


def listing_url(base_url: str, category: str) -> str:
    """Where `category`'s Atom listing is, for a source whose `base_url` is `base_url`.

    The rule: arXiv's API hosts (`export.arxiv.org`, the default, and `arxiv.org`) map to
    their listing host `https://rss.arxiv.org`; any other base URL (a mirror, a test
    server) serves both the API (`/api/query`) and the listings (`/atom/<cat>`) itself.
    """
    return f"{_served_by(base_url, LISTING_URL)}/atom/{quote(category, safe='.-')}"


def fetch_days(
    fetcher: Fetcher,
    source: SourceConfig,
    days: Sequence[dt.date],
    *,
    complete: Collection[dt.date] = (),
    pause: float = LISTING_PAUSE,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Paper]:
    """The papers announced on any of `days` in any of the source's categories, each once.

    One request per category gives its latest announcement. A weekday before it that is
    not `complete` (fetched with papers by an earlier run) was missed, by an outage of
    arXiv or of ours: its papers come from the category's listing of its last five
    announcements, and their abstracts from the export API (`catch_up`). Weekends and
    holidays have no announcement; a day not yet announced gives nothing until it is.
    """
    wanted = set(days)
    found: dict[str, Paper] = {}
    for number, category in enumerate(source.categories):
        if number:
            sleep(pause)
        url = listing_url(source.base_url, category)
        papers = read_page(
            fetcher, source, url, lambda content, at: parse_listing(content, day=max(days), url=at)
        )
        listed = sorted({paper.day for paper in papers})
        latest = listed[-1] if listed else None
        missed = sorted(
            day
            for day in wanted - set(complete) - set(listed)
            if day.weekday() < 5 and (latest is None or day < latest)
        )
        if missed:
            sleep(pause)
            papers += catch_up(fetcher, source, category, missed, sleep=sleep)
        elif papers and not wanted & set(listed):
            log.info(
                "%s: %s lists %s, not %s", source.name, url, _join(listed), _join(sorted(wanted))
            )
        for paper in papers:
            if paper.day in wanted:
                found.setdefault(paper.id, paper)
    return list(found.values())


def catch_up(
    fetcher: Fetcher,
    source: SourceConfig,
    category: str,
    days: Sequence[dt.date],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Paper]:
    """The papers of `category` announced on `days`, no longer in its latest listing.

    The recent listing (`recent_url`) names its days, where each starts among its
    entries and how many it shows of how many: a day shown in part is asked for from
    its start. Its entries carry no abstracts; the export API gives them, by id. A day
    older than the recent listing cannot be caught up: it is logged.
    """
    page = _recent_page(fetcher, source, category, 0)
    chosen: list[Paper] = []
    for day in days:
        if day not in page.starts:
            continue  # no announcement that day, or too long ago (below)
        if day in page.whole:
            chosen += page.days[day]
            continue
        sleep(LISTING_PAUSE)
        more = _recent_page(fetcher, source, category, page.starts[day])
        if day not in more.whole:
            url = recent_url(source.base_url, category, page.starts[day])
            raise SourceError(source.name, url, f"the listing shows only part of {day}")
        chosen += more.days[day]
    if page.starts and (lost := [day for day in days if day < min(page.starts)]):
        log.warning(
            "%s: %s was not fetched on %s and arXiv lists only the days since %s: their "
            "papers are not caught up",
            source.name,
            category,
            _join(lost),
            min(page.starts),
        )
    if not chosen:
        return []
    sleep(API_PAUSE)  # after another category's calls too
    full = {
        paper.id: paper
        for paper in fetch_ids(
            fetcher, [p.id for p in chosen], day=days[-1], base_url=source.base_url, sleep=sleep
        )
    }
    # The announcement day is the listing's; title, abstract and authors the API's.
    return [replace(full.get(p.id, p), day=p.day) for p in chosen]


def recent_url(base_url: str, category: str, skip: int = 0) -> str:
    """Where `category`'s listing of its last five announcements is, from entry `skip` on
    (`arxiv.org/list/<cat>/recent`; other base URLs serve it themselves, as with
    `listing_url`)."""
    listing = f"{_served_by(base_url, PAGES_URL)}/list/{quote(category, safe='.-')}/recent"
    return f"{listing}?skip={skip}&show={RECENT_SHOW}"


def _served_by(base_url: str, arxiv_host: str) -> str:
    """Where a source with `base_url` finds what arXiv serves from `arxiv_host`: there,
    for arXiv's own hosts; a mirror or a test server serves everything itself."""
    host = (urlsplit(base_url).hostname or "").lower()
    return arxiv_host if host in _ARXIV_HOSTS else base_url.rstrip("/")


def _recent_page(fetcher: Fetcher, source: SourceConfig, category: str, skip: int) -> Recent:
    url = recent_url(source.base_url, category, skip)
    return read_page(fetcher, source, url, lambda content, at: parse_recent_page(content, url=at))


def query_api(
    fetcher: Fetcher,
    params: Mapping[str, str | int],
    *,
    day: dt.date,
    base_url: str = API_URL,
    name: str = SOURCE,
) -> list[Paper]:
    """One export API call. HTTP 400 carries arXiv's explanation, so its body is read."""
    url = f"{base_url.rstrip('/')}/api/query"
    try:
        response = fetcher.get(url, params, ok_statuses=(200, 400))
    except FetchError as exc:
        raise SourceError(name, exc.url, exc.problem) from exc
    status = "" if response.status == 200 else f"HTTP {response.status}: "
    try:
        papers = parse_api(response.content, day=day, url=response.url)
    except SourceError as exc:
        raise SourceError(name, exc.url, status + exc.problem) from exc
    if status:
        raise SourceError(name, response.url, status + "no error message in the answer")
    return papers


def fetch_ids(
    fetcher: Fetcher,
    ids: Iterable[str],
    *,
    day: dt.date,
    base_url: str = API_URL,
    batch: int = API_BATCH,
    pause: float = API_PAUSE,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Paper]:
    """The papers with the given arXiv ids, in batches `pause` seconds apart.

    `day` is the fallback day of an entry without a date (see `parse_api`).
    """
    wanted = list(dict.fromkeys(strip_version(paper_id) for paper_id in ids))
    papers: list[Paper] = []
    for start in range(0, len(wanted), batch):
        if start:
            sleep(pause)
        chunk = wanted[start : start + batch]
        params: dict[str, str | int] = {"id_list": ",".join(chunk), "max_results": len(chunk)}
        papers += query_api(fetcher, params, day=day, base_url=base_url)
    return papers


# --- entries ------------------------------------------------------------------------------


def _entries(content: bytes, url: str) -> list[Any]:
    """The feed's entries, or a `SourceError` if the bytes are not a complete Atom feed."""
    parsed = read_feed(content)
    problem = feed_problem(parsed)
    if not parsed.get("version"):
        because = f" ({problem})" if problem else ""
        raise SourceError(SOURCE, url, f"not an RSS or Atom feed{because}")
    if is_malformed(parsed):
        raise SourceError(SOURCE, url, f"truncated or malformed feed ({problem})")
    if problem:  # a wrong declared encoding, say: the entries are fine
        log.warning("%s: %s; parsed anyway", url, problem)
    entries: list[Any] = parsed.get("entries") or []
    return entries


def _paper(entry: Mapping[str, Any], *, index: int, day: dt.date, url: str, listing: bool) -> Paper:
    """One entry → Paper. A missing id or title is a format change, not a quirk of one
    paper, so it stops the source rather than skipping the entry."""
    arxiv_id = entry_arxiv_id(entry)
    if arxiv_id is None:
        raise SourceError(SOURCE, url, f"entry {index} has no arXiv id")
    title = entry_text(entry, "title")
    if not title:
        raise SourceError(SOURCE, url, f"entry {index} ({arxiv_id}) has no title")
    # The ISO form keeps arXiv's own offset, whose date is the announcement day; RSS 2.0
    # dates (RFC 822) only come parsed to UTC.
    published = _datetime(entry.get("published")) or utc_datetime(entry.get("published_parsed"))
    abs_url = f"https://arxiv.org/abs/{arxiv_id}"
    return Paper(
        id=arxiv_id,
        title=title,
        abstract=strip_preamble(entry_text(entry, "summary")),
        day=published.date() if published else day,
        source=SOURCE,
        url=abs_url,
        authors=author_names(entry, split=listing),
        published=published,
        links=(Link("arXiv", abs_url), Link("PDF", f"https://arxiv.org/pdf/{arxiv_id}")),
    )


def _raw(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _datetime(value: Any) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(_raw(value).strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _join(days: Sequence[dt.date]) -> str:
    return ", ".join(day.isoformat() for day in days)


# --- the HTML listing pages (`arxiv.org/list/<cat>/new`, `/recent`, `/pastweek`) ---------

_SECTION_DAY = re.compile(r"(?:\w+, )?(\d{1,2}) (\w+) (\d{4})")
_SHOWING = re.compile(r"showing (\d+) of (\d+) entries")
_SKIPPED_SECTIONS = ("replacement",)


def parse_listing_page(content: bytes, *, day: dt.date, url: str = "") -> list[Paper]:
    """Papers of an HTML listing page, 2024+ layout (research/page-formats.md §5).

    Each `dl#articles` is one section: a day on `/recent` and `/pastweek` ("Fri, 22 Nov
    2024 (showing 75 of 75 entries)"), or new / cross / replacement submissions on `/new`
    (under "Showing new listings for Friday, 22 November 2024"). Replacements are left
    out. Only `/new` carries abstracts; elsewhere `abstract` is empty. An HTML parser, not
    regexes: the server quotes attributes with single quotes, saved pages with double.
    """
    soup = BeautifulSoup(content, "lxml")
    papers: dict[str, Paper] = {}
    for _, _, listed in _sections(soup, day, url):
        for paper in listed:
            papers.setdefault(paper.id, paper)
    return list(papers.values())


@dataclass(frozen=True)
class Recent:
    """A page of a category's recent listing: its papers by announcement day, the days
    it shows whole, and where each of the listing's days starts among its entries."""

    days: Mapping[dt.date, list[Paper]]
    whole: frozenset[dt.date]
    starts: Mapping[dt.date, int]


def parse_recent_page(content: bytes, *, url: str = "") -> Recent:
    """A page of `/list/<cat>/recent` (see `parse_listing_page`): the listing links each
    of its days with its `skip` ("Thu, 21 Nov 2024" → `?skip=75`), and each day's heading
    says how many of its entries the page shows."""
    soup = BeautifulSoup(content, "lxml")
    days: dict[dt.date, list[Paper]] = {}
    whole: set[dt.date] = set()
    unknown = dt.date.min
    for label, day, listed in _sections(soup, unknown, url):
        if day == unknown:
            raise SourceError(SOURCE, url, f"a section of the listing without a day ({label})")
        days.setdefault(day, []).extend(listed)
        if (shown := _SHOWING.search(label)) and shown[1] == shown[2]:
            whole.add(day)
    starts: dict[dt.date, int] = {}
    for link in soup.select("a[href*='skip=']"):
        linked = _day_in(link.get_text(" ", strip=True), unknown)
        skip = parse_qs(urlsplit(str(link.get("href"))).query).get("skip", [""])[0]
        if linked != unknown and skip.isdigit():
            starts.setdefault(linked, int(skip))
    return Recent(days, frozenset(whole), starts)


def _sections(
    soup: BeautifulSoup, day: dt.date, url: str
) -> Iterator[tuple[str, dt.date, list[Paper]]]:
    """Each listing section but replacements: its heading, its day (else the page's, else
    `day`) and its papers."""
    sections = soup.select("dl#articles")
    if not sections:
        raise SourceError(SOURCE, url, "no dl#articles listing on the page")
    page_day = _day_in(soup.find(string=re.compile(r"Showing new listings for")), day)
    for section in sections:
        heading = section.find("h3") or section.find_previous("h3")
        label = heading.get_text(" ", strip=True) if heading else ""
        if any(word in label.lower() for word in _SKIPPED_SECTIONS):
            continue
        section_day = _day_in(label, page_day)
        yield (
            label,
            section_day,
            [_listed_paper(t, section_day, url) for t in section.find_all("dt")],
        )


def _day_in(text: object, default: dt.date) -> dt.date:
    found = _SECTION_DAY.search(str(text or ""))
    if not found:
        return default
    try:
        return dt.datetime.strptime(" ".join(found.groups()), "%d %b %Y").date()
    except ValueError:
        try:
            return dt.datetime.strptime(" ".join(found.groups()), "%d %B %Y").date()
        except ValueError:
            return default


def _listed_paper(term: Tag, day: dt.date, url: str) -> Paper:
    link = term.find("a", attrs={"title": "Abstract"})
    href = link.get("href") if isinstance(link, Tag) else None
    arxiv_id = strip_version(str(link.get("id") or "")) if isinstance(link, Tag) else ""
    if not is_arxiv_id(arxiv_id) and isinstance(href, str):
        arxiv_id = arxiv_id_from_url(urljoin("https://arxiv.org/", href)) or ""
    details = term.find_next_sibling("dd")
    if not is_arxiv_id(arxiv_id) or not isinstance(details, Tag):
        text = term.get_text(" ", strip=True)[:60]
        raise SourceError(SOURCE, url, f"a listing entry without an arXiv id ({text})")
    title_node = details.select_one("div.list-title")
    if title_node is None:
        raise SourceError(SOURCE, url, f"listing entry {arxiv_id} has no title")
    for descriptor in title_node.select("span.descriptor"):
        descriptor.decompose()
    abstract = details.select_one("p.mathjax")
    return Paper(
        id=arxiv_id,
        title=" ".join(title_node.get_text(" ").split()),
        abstract=" ".join(abstract.get_text(" ").split()) if abstract else "",
        day=day,
        source=SOURCE,
        url=f"https://arxiv.org/abs/{arxiv_id}",
        authors=tuple(a.get_text(" ", strip=True) for a in details.select("div.list-authors a")),
        links=(
            Link("arXiv", f"https://arxiv.org/abs/{arxiv_id}"),
            Link("PDF", f"https://arxiv.org/pdf/{arxiv_id}"),
        ),
    )
