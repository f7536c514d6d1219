"""Any RSS 2.0 or Atom feed (`kind = "feed"`, `url = …`), read with feedparser.

Feeds in the wild are often slightly broken (a wrong declared encoding, a stray `&`), and
feedparser's lenient parse still recovers their entries, so a feed with entries is used
despite a parse problem (with a warning); only a feed with nothing readable is an error.

Ids must be stable across runs and sources: an arXiv paper is keyed by its arXiv id even
when it comes from someone's blog feed, so it merges with the arXiv and Hugging Face
sightings of the same paper. The arXiv source reads its listings through this module too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import re
import unicodedata
import warnings
import xml.sax
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser
from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning

from digest.config import SourceConfig
from digest.errors import SourceError
from digest.fetch import Fetcher
from digest.ids import arxiv_id_from_url, is_arxiv_id, strip_version
from digest.models import Link, Paper
from digest.sources.pages import read_page

log = logging.getLogger(__name__)

SOURCE = "feed"

_ARXIV_PREFIX = re.compile(r"^(?:oai:arxiv\.org:|arxiv:)", re.IGNORECASE)
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_BLOCKS = frozenset({
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
    "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main",
    "nav", "ol", "p", "pre", "section", "table", "td", "th", "tr", "ul",
})  # fmt: skip
# arXiv's listings open each summary with "arXiv:2508.13167v1 Announce Type: new \nAbstract:".
_PREAMBLE = re.compile(r"^\s*arXiv:\S+\s+Announce Type:\s*(\S+)\s*(?:Abstract:\s*)?", re.DOTALL)


def read_feed(content: bytes) -> Any:
    """feedparser's result for `content` (a `FeedParserDict`).

    Always handed a stream: feedparser tries plain bytes as a file name first, so a body
    such as `/etc/passwd` would otherwise be read from the local disk.
    """
    return feedparser.parse(io.BytesIO(content))


def feed_problem(parsed: Mapping[str, Any]) -> str:
    """What feedparser found wrong, in one line; "" for a clean parse."""
    if not parsed.get("bozo"):
        return ""
    exc = parsed.get("bozo_exception")
    if isinstance(exc, xml.sax.SAXParseException):
        return f"line {exc.getLineNumber()}, column {exc.getColumnNumber()}: {exc.getMessage()}"
    return str(exc) or type(exc).__name__


def is_malformed(parsed: Mapping[str, Any]) -> bool:
    """True when the XML is not well-formed (cut off, say), not just oddly encoded."""
    return bool(parsed.get("bozo")) and isinstance(
        parsed.get("bozo_exception"), xml.sax.SAXException
    )


def parse_feed(content: bytes, *, day: dt.date, url: str = "") -> list[Paper]:
    """Every entry of an RSS or Atom feed as a Paper.

    Each paper's day is the entry's published (else updated) date in UTC, or `day` for an
    entry without a date.
    """
    parsed = read_feed(content)
    entries: list[Any] = parsed.get("entries") or []
    problem = feed_problem(parsed)
    if not entries:
        if problem:
            raise SourceError(SOURCE, url, f"not a readable feed ({problem})")
        if not parsed.get("version"):
            raise SourceError(SOURCE, url, "not an RSS or Atom feed")
        return []
    if problem:
        log.warning("%s: %s; using the %d entries read anyway", url, problem, len(entries))
    # arXiv's own feeds also announce new versions of old papers: those are not news.
    return [_paper(entry, day=day, base=url) for entry in entries if not is_replacement(entry)]


def fetch_days(fetcher: Fetcher, source: SourceConfig, days: Sequence[dt.date]) -> list[Paper]:
    """The feed's entries dated on any of `days` (undated entries count as the last of
    them), each id once. A feed shows its latest entries whatever the day, so one request
    serves a whole catch-up window."""
    url = source.url or ""
    wanted = set(days)
    papers = read_page(
        fetcher, source, url, lambda content, at: parse_feed(content, day=max(days), url=at)
    )
    found: dict[str, Paper] = {}
    for paper in papers:
        if paper.day in wanted:
            found.setdefault(paper.id, paper)
    return list(found.values())


# --- entries ------------------------------------------------------------------------------


def entry_arxiv_id(entry: Mapping[str, Any]) -> str | None:
    """The version-less arXiv id in the entry's link or id (`…/abs/2508.13426v1`,
    `oai:arXiv.org:2508.13426v1`, `arXiv:2508.13426`), if there is one."""
    for key in ("link", "id"):
        value = _raw(entry.get(key)).strip()
        found = arxiv_id_from_url(value) or strip_version(_ARXIV_PREFIX.sub("", value))
        if is_arxiv_id(found):
            return found
    return None


def announce_type(entry: Mapping[str, Any]) -> str | None:
    """arXiv's announce type of a listing entry ("new", "cross", "replace", …); None for an
    entry that is not from an arXiv listing."""
    kind = _text(entry.get("arxiv_announce_type"))
    if kind is None:  # the summary's opening carries it too
        found = _PREAMBLE.match(_raw(entry.get("summary")))
        kind = found.group(1) if found else None
    return kind.lower() if kind else None


def is_replacement(entry: Mapping[str, Any]) -> bool:
    """True for an arXiv listing entry announcing a new version of an older paper."""
    return (announce_type(entry) or "").startswith("replace")


def strip_preamble(text: str) -> str:
    """An arXiv listing summary without its "arXiv:… Announce Type: … Abstract:" opening."""
    return _PREAMBLE.sub("", text, count=1)


def author_names(entry: Mapping[str, Any], *, split: bool) -> tuple[str, ...]:
    """The entry's author names. arXiv writes all of them in one `dc:creator`, comma
    separated and in TeX (`Andr\\'e`); `split` says the entry is such a one."""
    names: list[str] = []
    authors = entry.get("authors")
    for author in authors if isinstance(authors, list) else []:
        if isinstance(author, Mapping):
            name = _raw(author.get("name"))
            for part in name.split(",") if split else [name]:
                cleaned = _text(decode_tex(part))
                if cleaned:
                    names.append(cleaned)
    return tuple(names)


def _paper(entry: Mapping[str, Any], *, day: dt.date, base: str) -> Paper:
    arxiv_id = entry_arxiv_id(entry)
    href = _raw(entry.get("link")).strip()
    link = _http_url(urljoin(base, href)) if href else None  # relative to the feed
    title = entry_text(entry, "title")
    abstract = strip_preamble(entry_text(entry, "summary") or _content_text(entry))
    paper_id = arxiv_id or _text(entry.get("id")) or link or _digest_id(title, abstract)
    published = utc_datetime(entry.get("published_parsed")) or utc_datetime(
        entry.get("updated_parsed")
    )
    links: tuple[Link, ...] = ()
    if arxiv_id:
        link = link or f"https://arxiv.org/abs/{arxiv_id}"
        links = (
            Link("arXiv", f"https://arxiv.org/abs/{arxiv_id}"),
            Link("PDF", f"https://arxiv.org/pdf/{arxiv_id}"),
        )
    return Paper(
        id=paper_id,
        title=title or link or paper_id,
        abstract=abstract,
        day=published.date() if published else day,
        source=SOURCE,
        url=link or "",
        authors=author_names(entry, split=announce_type(entry) is not None),
        published=published,
        links=links,
    )


def entry_text(entry: Mapping[str, Any], key: str) -> str:
    """`title` or `summary` as plain text: feedparser leaves HTML in HTML-typed fields."""
    detail = entry.get(f"{key}_detail")
    kind = detail.get("type") if isinstance(detail, Mapping) else None
    value = _raw(entry.get(key))
    return _html_text(value) if kind in _HTML_TYPES else _text(value) or ""


def _content_text(entry: Mapping[str, Any]) -> str:
    content = entry.get("content")
    if isinstance(content, list) and content and isinstance(content[0], Mapping):
        kind = content[0].get("type")
        value = _raw(content[0].get("value"))
        return _html_text(value) if kind in _HTML_TYPES else _text(value) or ""
    return ""


def _html_text(html: str) -> str:
    if "<" not in html and "&" not in html:
        return _text(html) or ""
    with warnings.catch_warnings():  # a summary that is just a URL is still a summary
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        soup = BeautifulSoup(html, "html.parser")
    # Blocks are separated by a space; inline markup is not ("<i>word</i>." stays "word.").
    for tag in soup.find_all(_BLOCKS):
        tag.insert_before(" ")
        tag.insert_after(" ")
    return _text(soup.get_text()) or ""


def _digest_id(title: str, abstract: str) -> str:
    """The last resort for an entry with no id and no link: its text, hashed."""
    return "sha1:" + hashlib.sha1(f"{title}\n{abstract}".encode()).hexdigest()


def utc_datetime(value: Any) -> dt.datetime | None:
    """A feedparser `…_parsed` date (a UTC `struct_time`) as an aware datetime."""
    try:
        year, month, day, hour, minute, second = value[:6]
        return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)
    except (TypeError, ValueError):
        return None


def _http_url(value: Any) -> str | None:
    """Only absolute http(s) URLs: these end up as links in emails and feeds."""
    text = _raw(value).strip()
    if not text or any(ord(char) < 0x21 or ord(char) == 0x7F for char in text):
        return None
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    return text if parts.scheme.lower() in ("http", "https") and parts.hostname else None


def _raw(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _text(value: Any) -> str | None:
    return " ".join(_raw(value).split()) or None


# --- TeX accents in author names -----------------------------------------------------------

_COMBINING = {
    "'": "\u0301", "`": "\u0300", "^": "\u0302", '"': "\u0308", "~": "\u0303", "=": "\u0304",
    ".": "\u0307", "u": "\u0306", "v": "\u030c", "H": "\u030b", "c": "\u0327", "k": "\u0328",
    "r": "\u030a", "d": "\u0323", "b": "\u0331",
}  # fmt: skip
_LETTERS = {
    "ss": "ß", "o": "ø", "O": "Ø", "aa": "å", "AA": "Å", "ae": "æ", "AE": "Æ",
    "oe": "œ", "OE": "Œ", "l": "ł", "L": "Ł", "i": "ı", "j": "ȷ",
}  # fmt: skip
_BASE = r"(?:\\[ij](?![A-Za-z])|[A-Za-z])"
_ACCENT = re.compile(
    r"\\(?:([\'`^\"~=.])\s*|([urvHckdb])(?:\s+|(?=\{)))"
    rf"(?:\{{\s*({_BASE})\s*\}}|({_BASE}))"
)
_LETTER = re.compile(r"\\(ss|aa|AA|ae|AE|oe|OE|o|O|l|L|i|j)(?![A-Za-z])\s*")
# A brace group without a command before it ("{\\o}", now "{ø}"); "\\emph{x}" keeps its braces.
_GROUP = re.compile(r"(\\[A-Za-z]+\s*)?\{([^{}\\]*)\}")


def decode_tex(text: str) -> str:
    """Simple TeX accents as Unicode: `Andr\\'e` → André, `Pi\\v{z}urica` → Pižurica,
    `S{\\o}gaard` → Søgaard. Anything else is left as written."""
    if "\\" not in text:
        return text

    def accent(found: re.Match[str]) -> str:
        base = found.group(3) or found.group(4)
        return base[-1] + _COMBINING[found.group(1) or found.group(2)]

    decoded = _ACCENT.sub(accent, text)
    decoded = _LETTER.sub(lambda found: _LETTERS[found.group(1)], decoded)
    decoded = _GROUP.sub(
        lambda found: found.group(0) if found.group(1) else found.group(2), decoded
    )
    return unicodedata.normalize("NFC", decoded)
