"""Paper text made safe and short for every output: email parts, headers, feeds, web pages.

Paper text comes from the web and is treated as hostile. Every string is cleaned of control
and bidi characters and bounded in length before it reaches a template, a header or a feed;
only absolute http(s) URLs become links. Escaping is left to the output (Jinja autoescape,
the XML writer, the email header encoder): these functions never produce markup.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from urllib.parse import urlsplit

from digest.models import Paper

SUMMARY_CHARS = 300
TITLE_CHARS = 300
MAX_URL_CHARS = 500
_SCAN_CHARS = 20_000  # enough raw text for any summary; a 1 MB abstract is never scanned whole

# Control characters (C0, DEL, C1), line/paragraph separators, bidi marks, embeddings,
# overrides and isolates ("Trojan Source"), lone surrogates (they cannot be encoded) and the
# XML non-characters. Zero-width joiners stay: emoji sequences and Indic scripts need them.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
    "\ud800-\udfff\ufeff\ufffe\uffff]"
)
_SPACES = re.compile(r"\s+")
_ANY_SPACE = re.compile(r"\s")
_PLAIN_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]+)?(?:[/?#][!-~]*)?")
_ABBREVIATIONS = frozenset(
    [
        *("e.g.", "i.e.", "al.", "cf.", "vs.", "etc.", "fig.", "figs.", "eq.", "eqs."),
        *("sec.", "ref.", "approx.", "resp.", "no.", "vol.", "dr.", "mr."),
    ]
)
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?= )")


def clean_text(value: str) -> str:
    """Text safe for any output: no control or bidi characters, single spaces."""
    return _SPACES.sub(" ", _UNSAFE.sub(" ", value)).strip()


def truncate(value: str, limit: int) -> str:
    """Cut at a word boundary so the result, "…" included, is at most `limit` characters."""
    if len(value) <= limit:
        return value
    head = value[: limit - 1]
    if " " in head[limit // 2 :]:
        head = head.rsplit(" ", 1)[0]
    return head.rstrip(" ,;:.") + "…"


def clean_header_text(value: str, limit: int = 150) -> str:
    """Scraped text made fit for a header: one line, no controls, bounded.

    CR/LF would let a title add header fields; bidi overrides would let it disguise itself.
    An RFC 2047 encoded word in the text ("=?utf-8?b?DQpCY2M6…?=") would be decoded by the
    header parser after this cleaning, CR/LF included (Python before 3.11.10 then writes
    them out as they are): "=?" is broken up so the text stays literal.
    """
    return truncate(clean_text(value).replace("=?", "= ?"), limit)


def safe_url(url: str | None) -> str | None:
    """The URL when it is an absolute http(s) URL fit to print; None otherwise."""
    if not url:
        return None
    url = url.strip()
    if len(url) > MAX_URL_CHARS or _UNSAFE.search(url) or _ANY_SPACE.search(url):
        return None
    if _PLAIN_URL.fullmatch(url):  # what urlsplit would accept, without its cost
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return url


def _sentence_ends(text: str) -> Iterator[int]:
    """Offsets just after each sentence end, skipping "e.g." and friends."""
    for found in _SENTENCE_END.finditer(text):
        word_start = text.rfind(" ", 0, found.start()) + 1
        if text[word_start : found.start() + 1].lower() in _ABBREVIATIONS:
            continue
        following = text[found.end() + 1 : found.end() + 2]
        if following.islower():
            continue
        yield found.end()


def first_sentences(text: str, limit: int = SUMMARY_CHARS) -> str:
    """Whole sentences from the start of `text`, about `limit` characters.

    A first sentence up to a third longer than `limit` is kept whole rather than cut; only
    a text with no sentence end near the limit is cut at a word, with "…".
    """
    if len(text) <= limit:
        return text
    cut = 0
    for end in _sentence_ends(text[: limit * 2]):
        if end <= limit:
            cut = end
            continue
        if cut == 0 and end <= limit * 4 // 3:
            cut = end
        break
    return text[:cut] if cut else truncate(text, limit)


def summary(paper: Paper) -> str:
    """The paper's AI summary when it has one, else the opening sentences of its abstract."""
    for source in (paper.ai_summary or "", paper.abstract):
        text = clean_text(source[:_SCAN_CHARS])
        if text:
            return first_sentences(text)
    return ""


def title_of(paper: Paper) -> str:
    """The title to show: never empty (a feed entry and a link need one), never unbounded."""
    title = truncate(clean_text(paper.title), TITLE_CHARS)
    return title or truncate(clean_text(paper.id), 100) or "Untitled paper"


def author_line(authors: Sequence[str]) -> str:
    """Up to three names, then "et al.": a paper may list hundreds of authors."""
    names = [truncate(clean_text(name), 80) for name in authors[:4]]
    names = [name for name in names if name]
    if len(authors) > 3:
        return ", ".join(names[:3]) + " et al."
    return ", ".join(names)


def reasons_line(reasons: Sequence[str]) -> str:
    """The match reasons as one bounded line: "title: mamba; abstract: state space"."""
    return truncate("; ".join(r for r in (clean_text(reason) for reason in reasons) if r), 300)


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def and_list(words: Sequence[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
