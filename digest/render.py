"""One digest as an email: the text and HTML parts, the subject, and the message around them.

Paper text comes from the web and is treated as hostile. Every string is cleaned of control
and bidi-override characters and bounded in length before it reaches a template or a header
(`PaperView` holds only cleaned values), only http(s) URLs become links, and the HTML
environment autoescapes. The stylesheet is inlined into the HTML templates once, when the
`Renderer` loads them (see `digest.inline`), so rendering a message is plain Jinja.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import textwrap
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2

import digest as _package
from digest.errors import DigestError
from digest.ids import is_arxiv_id
from digest.inline import InliningLoader, is_html
from digest.models import Digest, Link, Paper

log = logging.getLogger(__name__)

WIDTH = 78
SUMMARY_CHARS = 300
TITLE_CHARS = 300
MAX_LINKS = 6
MAX_URL_CHARS = 500
GMAIL_CLIPS_AT = 102 * 1024
_SCAN_CHARS = 20_000  # enough raw text for any summary; a 1 MB abstract is never scanned whole

# Control characters (C0, DEL, C1), line/paragraph separators, bidi embeddings, overrides and
# isolates, lone surrogates (they cannot be encoded) and the XML non-characters.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]"
)
_SPACES = re.compile(r"\s+")
_ABBREVIATIONS = frozenset(
    [
        *("e.g.", "i.e.", "al.", "cf.", "vs.", "etc.", "fig.", "figs.", "eq.", "eqs."),
        *("sec.", "ref.", "approx.", "resp.", "no.", "vol.", "dr.", "mr."),
    ]
)
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?= )")
_MONTH_NAMES = (
    *("January", "February", "March", "April", "May", "June", "July", "August"),
    *("September", "October", "November", "December"),
)
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_HEADER_URL = re.compile(r"[^\s<>,\"]+")


def clean_text(value: str) -> str:
    """Text safe for any output: no control or bidi-override characters, single spaces."""
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
    """
    return truncate(clean_text(value), limit)


def safe_url(url: str | None) -> str | None:
    """The URL when it is an absolute http(s) URL fit to print; None otherwise."""
    if not url:
        return None
    url = url.strip()
    if len(url) > MAX_URL_CHARS or _UNSAFE.search(url) or any(c.isspace() for c in url):
        return None
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


def author_line(authors: Sequence[str]) -> str:
    """Up to three names, then "et al.": a paper may list hundreds of authors."""
    names = [truncate(clean_text(name), 80) for name in authors[:4]]
    names = [name for name in names if name]
    if len(authors) > 3:
        return ", ".join(names[:3]) + " et al."
    return ", ".join(names)


def message_id_for(subscriber_email: str, digest_key: str, domain: str) -> str:
    """The same Message-ID every time this subscriber's digest is built, so a re-send is
    recognisable and logs, outbox rows and received mail can be joined."""
    if not _DOMAIN.fullmatch(domain):
        raise DigestError(f"cannot build a Message-ID: {domain!r} is not a domain name")
    who = hashlib.sha256(subscriber_email.strip().lower().encode("utf-8")).hexdigest()[:16]
    key = re.sub(r"[^A-Za-z0-9.-]", "-", digest_key)
    return f"<digest.{key}.{who}@{domain}>"


@dataclass(frozen=True)
class DigestLinks:
    """The per-recipient URLs, computed by the caller."""

    unsubscribe_https: str
    unsubscribe_mailto: str
    private_feed: str
    archive: str


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class PaperView:
    """One paper as the templates see it: every field cleaned and bounded."""

    number: str
    title: str
    url: str | None
    authors: str
    stats: str
    reasons: str
    summary: str
    links: tuple[Link, ...]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _paper_links(paper: Paper) -> tuple[Link, ...]:
    """The paper's links, http(s) only; built from its ids when the source gave none."""
    links = list(paper.links)
    if not links:
        if paper.arxiv_id:
            links.append(Link("arXiv", f"https://arxiv.org/abs/{paper.arxiv_id}"))
            links.append(Link("PDF", f"https://arxiv.org/pdf/{paper.arxiv_id}"))
        if paper.github_repo:
            links.append(Link("Code", paper.github_repo))
        if paper.project_page:
            links.append(Link("Project page", paper.project_page))
    kept: dict[str, Link] = {}  # by URL: the first label wins
    for link in links:
        url = safe_url(link.url)
        if url and url not in kept:
            kept[url] = Link(truncate(clean_text(link.label), 40) or "Link", url)
    return tuple(kept.values())[:MAX_LINKS]


def paper_view(number: int, paper: Paper, reasons: Sequence[str]) -> PaperView:
    stats = []
    if paper.upvotes or paper.comments:
        stats = [_plural(paper.upvotes, "upvote"), _plural(paper.comments, "comment")]
    return PaperView(
        number=f"{number}.".ljust(4),
        title=truncate(clean_text(paper.title), TITLE_CHARS) or paper.id,
        url=safe_url(paper.url),
        authors=author_line(paper.authors),
        stats=" · ".join(stats),
        reasons=reasons_line(reasons),
        summary=summary(paper),
        links=_paper_links(paper),
    )


def reasons_line(reasons: Sequence[str]) -> str:
    """The match reasons as one bounded line: "title: mamba; abstract: state space"."""
    return truncate("; ".join(r for r in (clean_text(reason) for reason in reasons) if r), 300)


def _reason_terms(reason: str) -> Iterator[str]:
    """The matched terms of a reason: "title: mamba; abstract: state space, ssm" gives
    mamba, state space and ssm."""
    for part in reason.split(";"):
        _, colon, terms = part.partition(":")
        for term in (terms if colon else part).split(","):
            term = clean_text(term).strip("\"'“”")
            if term and not is_arxiv_id(term):
                yield term


def topics(digest: Digest, limit: int = 2) -> list[str]:
    """What this issue is about: the matched terms most papers share, else the first keywords."""
    counts: Counter[str] = Counter()  # papers per term
    shown: dict[str, str] = {}  # first spelling of each term, in order of first appearance
    for match in digest.matches:
        terms = {t.lower(): t for reason in match.reasons for t in _reason_terms(reason)}
        counts.update(terms.keys())
        for key, term in terms.items():
            shown.setdefault(key, term)
    ranked = sorted(shown, key=lambda key: -counts[key])  # stable: ties keep their order
    chosen = [truncate(shown[key], 40) for key in ranked[:limit]]
    if not chosen:
        keywords = (clean_text(k) for k in digest.subscriber.interests.keywords)
        chosen = [truncate(k, 40) for k in keywords if k][:limit]
    return chosen


def _and(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _short_date(digest: Digest) -> str:
    day = digest.date
    text = f"{day.day} {_MONTH_NAMES[day.month - 1][:3]}"
    return f"week of {text}" if "W" in digest.key else f"{_DAYS[day.weekday()][:3]} {text}"


def _long_date(digest: Digest) -> str:
    day = digest.date
    text = f"{_DAYS[day.weekday()]} {day.day} {_MONTH_NAMES[day.month - 1]} {day.year}"
    return f"Week of {text}" if "W" in digest.key else text


def subject_for(digest: Digest) -> str:
    """The count and what it is about: "5 papers on quantization and robots — Mon 5 Jan"."""
    about = topics(digest)
    on = f" on {_and(about)}" if about else ""
    count = len(digest.matches)
    head = _plural(count, "paper") if count else "No new papers"
    return clean_header_text(f"{head}{on} — {_short_date(digest)}")


def _interests_phrase(digest: Digest) -> str:
    interests = digest.subscriber.interests
    words = [clean_text(w) for w in (*interests.keywords, *interests.authors)]
    words = [truncate(w, 40) for w in words if w]
    if words:
        return _and(words[:3]) if len(words) <= 3 else ", ".join(words[:3]) + " and more"
    return truncate(clean_text(interests.description), 80) or "the papers you asked for"


def wrap(text: str, indent: str = "", first: str | None = None) -> str:
    """Fill a paragraph to 78 columns. Long non-URL words are broken; URLs never are."""
    room = WIDTH - max(len(indent), len(first or ""))
    words: list[str] = []
    for word in text.split():
        if len(word) > room and not word.startswith(("http://", "https://")):
            words.extend(word[i : i + room] for i in range(0, len(word), room))
        else:
            words.append(word)
    return textwrap.fill(
        " ".join(words),
        width=WIDTH,
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def builtin_templates() -> Path:
    """The shipped templates: inside the package in a wheel, at the top level in a checkout."""
    package = Path(_package.__file__).parent
    inside = package / "templates"
    return inside if inside.is_dir() else package.parent / "templates"


def _loader(templates: Path | None) -> jinja2.BaseLoader:
    """User folder first, then the built-ins, which stay reachable as "default:NAME"."""
    builtin = builtin_templates()
    if templates is not None and not templates.is_dir():
        raise DigestError(f"templates folder {templates} does not exist")
    folders = [templates, builtin] if templates is not None else [builtin]
    return jinja2.ChoiceLoader(
        [
            jinja2.FileSystemLoader(folders),
            jinja2.PrefixLoader({"default": jinja2.FileSystemLoader(builtin)}, delimiter=":"),
        ]
    )


def _template_error(error: jinja2.TemplateError) -> DigestError:
    """One readable line naming the template (and line) that failed."""
    if isinstance(error, jinja2.TemplateNotFound):
        return DigestError(f"template {error.name} not found (templates folder or built-ins)")
    where = getattr(error, "name", None) or getattr(error, "filename", None) or "template"
    line = getattr(error, "lineno", None)
    at = f"{where}, line {line}" if line else str(where)
    return DigestError(f"{at}: {error.message or type(error).__name__}")


class Renderer:
    """Built once per run: the Jinja environments and the CSS-inlined HTML templates."""

    HTML = "email.html.j2"
    TEXT = "email.txt.j2"

    def __init__(self, *, title: str, templates: Path | None = None) -> None:
        self.title = truncate(clean_text(title), 100)
        loader = _loader(templates)
        options: dict[str, Any] = {
            "undefined": jinja2.StrictUndefined,
            "trim_blocks": True,
            "lstrip_blocks": True,
            "keep_trailing_newline": True,
            "auto_reload": False,  # compiled once; a template never goes back to the loader
        }
        try:
            css = loader.get_source(jinja2.Environment(), "style.css")[0]
            self.html_env = jinja2.Environment(
                loader=InliningLoader(loader, css), autoescape=True, **options
            )
            self.text_env = jinja2.Environment(loader=loader, autoescape=False, **options)
            self.text_env.filters["wrap"] = wrap
            # Every HTML template (partials too) is loaded and inlined now, not mid-run.
            for name in filter(is_html, loader.list_templates()):
                self.html_env.get_template(name)
            self.html_template = self.html_env.get_template(self.HTML)
            self.text_template = self.text_env.get_template(self.TEXT)
        except jinja2.TemplateError as error:
            raise _template_error(error) from error

    def context(self, digest: Digest, links: DigestLinks) -> dict[str, Any]:
        """What both templates see; every value is cleaned text or a checked URL."""
        papers = [
            paper_view(n, match.paper, match.reasons)
            for n, match in enumerate(digest.matches, start=1)
        ]
        subject = subject_for(digest)
        count = len(papers)
        preheader = subject if not papers else f"{subject}: {papers[0].title}"
        return {
            "title": self.title,
            "subject": subject,
            "preheader": truncate(preheader, 100),
            "date_long": _long_date(digest),
            "count": count,
            "count_label": _plural(count, "paper") if count else "no papers",
            "name": truncate(clean_text(digest.subscriber.name), 80),
            "interests": _interests_phrase(digest),
            "papers": papers,
            "links": {
                "unsubscribe": safe_url(links.unsubscribe_https),
                "private_feed": safe_url(links.private_feed),
                "archive": safe_url(links.archive),
            },
        }

    def render(self, digest: Digest, links: DigestLinks) -> RenderedEmail:
        context = self.context(digest, links)
        try:
            text = self.text_template.render(context)
            html = self.html_template.render(context)
        except jinja2.TemplateError as error:
            raise _template_error(error) from error
        if len(html.encode("utf-8")) > GMAIL_CLIPS_AT:
            log.warning("the email for %s is over 102 KB: Gmail will clip it", digest.key)
        return RenderedEmail(subject=context["subject"], text=_tidy_text(text), html=html)

    def message(
        self,
        digest: Digest,
        rendered: RenderedEmail,
        links: DigestLinks,
        *,
        sender: str,
        message_id: str,
        list_id: str,
        date: dt.datetime,
    ) -> EmailMessage:
        """The message, ready for `policy=SMTP` serialisation. Both parts are
        quoted-printable, so the message is 7-bit clean and a relay never re-encodes it
        (which would break a DKIM signature)."""
        if date.utcoffset() is None:
            raise DigestError("the date of a message needs a time zone")
        unsubscribe = _header_url(links.unsubscribe_https, ("https://", "http://"))
        mailto = _header_url(links.unsubscribe_mailto, ("mailto:",))
        if not _HEADER_URL.fullmatch(list_id):
            raise DigestError(f"List-Id {list_id!r} is not a list id")
        subscriber = digest.subscriber
        msg = EmailMessage()
        msg["From"] = sender
        msg["To"] = Address(
            display_name=clean_header_text(subscriber.name, 100), addr_spec=subscriber.email
        )
        msg["Subject"] = clean_header_text(rendered.subject)
        msg["Date"] = format_datetime(date)
        msg["Message-ID"] = message_id
        msg["List-Id"] = f"<{list_id}>"
        msg["List-Unsubscribe"] = f"<{unsubscribe}>, <{mailto}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg.set_content(rendered.text, charset="utf-8", cte="quoted-printable")
        msg.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="quoted-printable")
        return msg


def _header_url(url: str, schemes: tuple[str, ...]) -> str:
    if not url.lower().startswith(schemes) or not _HEADER_URL.fullmatch(url):
        raise DigestError(f"unsubscribe URL {url!r} cannot go into a List-Unsubscribe header")
    return url


def _tidy_text(text: str) -> str:
    """No trailing spaces (except the "-- " signature line), no runs of blank lines."""
    lines = [line if line == "-- " else line.rstrip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n") + "\n"
