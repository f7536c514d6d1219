"""One digest as an email: the text and HTML parts, the subject, and the message around them.

Paper text comes from the web and is treated as hostile: every string goes through
`digest.sanitize` before it reaches a template or a header (`PaperView` holds only cleaned
values), only http(s) URLs become links, and the HTML environment autoescapes. The
stylesheet is inlined into the HTML templates once, when the `Renderer` loads them (see
`digest.inline`), so rendering a message is plain Jinja.
"""

from __future__ import annotations

import binascii
import datetime as dt
import email
import email.policy
import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import jinja2

import digest as _package
from digest import headers
from digest.errors import DigestError
from digest.inline import InliningLoader, is_html
from digest.models import Digest, Link, Paper
from digest.sanitize import (
    and_list,
    author_line,
    clean_header_text,
    clean_text,
    plural,
    reasons_line,
    safe_url,
    summary,
    title_of,
    truncate,
)
from digest.subject import long_date, subject_for

log = logging.getLogger(__name__)

WIDTH = 78
MAX_LINKS = 6
_MAX_CACHED_PAPERS = 2048  # a day has tens of papers; a week's backlog a few hundred
_MAX_KNOWN_LINES = 100_000  # encoded lines kept by a Renderer: about 30 MB at most
GMAIL_CLIPS_AT = 102 * 1024
ARCHIVE_FOLDER = "archive/"  # templates of the web archive, not of the email
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_HEADER_URL = re.compile(r"[^\s<>,\"]+")
_MESSAGE_ID = re.compile(r"<[!-;=?-~]+@[!-;=?-~]+>")
_FIELDS = (
    *("From", "To", "Subject", "Date", "Message-ID", "List-Id", "List-Unsubscribe"),
    *("List-Unsubscribe-Post", "MIME-Version", "Content-Type"),
)


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


@dataclass(frozen=True)
class _PaperParts:
    """What a paper shows whoever reads it: cleaned once per run, not once per digest."""

    title: str
    url: str | None
    authors: str
    stats: str
    summary: str
    links: tuple[Link, ...]


def _paper_parts(paper: Paper) -> _PaperParts:
    stats = []
    if paper.upvotes or paper.comments:
        stats = [plural(paper.upvotes, "upvote"), plural(paper.comments, "comment")]
    return _PaperParts(
        title=title_of(paper),
        url=safe_url(paper.url),
        authors=author_line(paper.authors),
        stats=" · ".join(stats),
        summary=summary(paper),
        links=_paper_links(paper),
    )


def paper_view(
    number: int, paper: Paper, reasons: Sequence[str], parts: _PaperParts | None = None
) -> PaperView:
    parts = parts or _paper_parts(paper)
    return PaperView(
        number=f"{number}.".ljust(4),
        title=parts.title,
        url=parts.url,
        authors=parts.authors,
        stats=parts.stats,
        reasons=reasons_line(reasons),
        summary=parts.summary,
        links=parts.links,
    )


def _interests_phrase(digest: Digest) -> str:
    interests = digest.subscriber.interests
    words = [clean_text(w) for w in (*interests.keywords, *interests.authors)]
    words = [truncate(w, 40) for w in words if w]
    if words:
        return and_list(words[:3]) if len(words) <= 3 else ", ".join(words[:3]) + " and more"
    return truncate(clean_text(interests.description), 80) or "the papers you asked for"


def wrap(text: str, indent: str = "", first: str | None = None) -> str:
    """Fill a paragraph to 78 columns. Long non-URL words are broken; URLs never are.

    The same lines as `textwrap.fill(..., break_long_words=False, break_on_hyphens=False)`
    (a test holds them equal), in a third of its time: the text part fills every reason.
    """
    first = indent if first is None else first
    room = WIDTH - max(len(indent), len(first))
    lines: list[str] = []
    line = first
    filled = False  # whether `line` holds a word yet
    for word in text.split():
        if len(word) > room and not word.startswith(("http://", "https://")):
            pieces = [word[i : i + room] for i in range(0, len(word), room)]
        else:
            pieces = [word]
        for piece in pieces:
            if not filled:
                line, filled = line + piece, True
            elif len(line) + 1 + len(piece) <= WIDTH:
                line = f"{line} {piece}"
            else:
                lines.append(line)
                line = indent + piece
    if filled:
        lines.append(line)
    return "\n".join(lines)


def builtin_templates() -> Path:
    """The shipped templates: inside the package in a wheel, at the top level in a checkout."""
    package = Path(_package.__file__).parent
    inside = package / "templates"
    return inside if inside.is_dir() else package.parent / "templates"


def template_loader(templates: Path | None) -> jinja2.BaseLoader:
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


def template_error(error: jinja2.TemplateError) -> DigestError:
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
        self._senders: dict[str, str] = {}  # From fields, written once per run
        self._papers: dict[Paper, _PaperParts] = {}
        self._filled: dict[tuple[str, str, str | None], str] = {}
        self._lines = EncodedLines()  # see `quoted_printable`
        loader = template_loader(templates)
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
            self.text_env.filters["wrap"] = self._wrap
            # Every HTML template of the email (partials too) is loaded and inlined now, not
            # mid-run; the web archive's pages (digest.archive) keep their <style> block.
            for name in loader.list_templates():
                if is_html(name) and ARCHIVE_FOLDER not in name:
                    self.html_env.get_template(name)
            self.html_template = self.html_env.get_template(self.HTML)
            self.text_template = self.text_env.get_template(self.TEXT)
        except jinja2.TemplateError as error:
            raise template_error(error) from error

    def context(self, digest: Digest, links: DigestLinks) -> dict[str, Any]:
        """What both templates see; every value is cleaned text or a checked URL."""
        papers = [
            paper_view(n, match.paper, match.reasons, self._parts(match.paper))
            for n, match in enumerate(digest.matches, start=1)
        ]
        subject = subject_for(digest)
        count = len(papers)
        preheader = subject if not papers else f"{subject}: {papers[0].title}"
        return {
            "title": self.title,
            "subject": subject,
            "preheader": truncate(preheader, 100),
            "date_long": long_date(digest),
            "count": count,
            "count_label": plural(count, "paper") if count else "no papers",
            "name": truncate(clean_text(digest.subscriber.name), 80),
            "interests": _interests_phrase(digest),
            "papers": papers,
            "links": {
                "unsubscribe": safe_url(links.unsubscribe_https),
                "private_feed": safe_url(links.private_feed),
                "archive": safe_url(links.archive),
            },
        }

    def _wrap(self, text: str, indent: str = "", first: str | None = None) -> str:
        """`wrap`, remembered: a paper's title, authors and summary are filled the same way
        in every digest it appears in."""
        key = (text, indent, first)
        filled = self._filled.get(key)
        if filled is None:
            if len(self._filled) >= _MAX_CACHED_PAPERS * 8:
                self._filled.clear()
            filled = self._filled[key] = wrap(text, indent, first)
        return filled

    def _parts(self, paper: Paper) -> _PaperParts:
        """Keyed by the whole (frozen) paper, not its id: two versions of a paper differ."""
        parts = self._papers.get(paper)
        if parts is None:
            if len(self._papers) >= _MAX_CACHED_PAPERS:
                self._papers.clear()
            parts = self._papers[paper] = _paper_parts(paper)
        return parts

    def render(self, digest: Digest, links: DigestLinks) -> RenderedEmail:
        context = self.context(digest, links)
        try:
            text = self.text_template.render(context)
            html = self.html_template.render(context)
        except jinja2.TemplateError as error:
            raise template_error(error) from error
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
        """The message as an `EmailMessage` (for previews and tests): `message_bytes` read
        back by the email package, so what is checked is what is sent."""
        data = self.message_bytes(
            digest,
            rendered,
            links,
            sender=sender,
            message_id=message_id,
            list_id=list_id,
            date=date,
        )
        message = email.message_from_bytes(data, policy=SMTP)
        assert isinstance(message, EmailMessage)
        return message

    def message_bytes(
        self,
        digest: Digest,
        rendered: RenderedEmail,
        links: DigestLinks,
        *,
        sender: str,
        message_id: str,
        list_id: str,
        date: dt.datetime,
    ) -> bytes:
        """The message as sent over SMTP (CRLF, 7-bit). Both parts are quoted-printable, so a
        relay never re-encodes it (which would break a DKIM signature). Written directly
        (see `digest.headers`): the email package took three quarters of the render time."""
        if date.utcoffset() is None:
            raise DigestError("the date of a message needs a time zone")
        unsubscribe = _header_url(links.unsubscribe_https, ("https://", "http://"))
        mailto = _header_url(links.unsubscribe_mailto, ("mailto:",))
        if not _HEADER_URL.fullmatch(list_id):
            raise DigestError(f"List-Id {list_id!r} is not a list id")
        if not _MESSAGE_ID.fullmatch(message_id):
            raise DigestError(f"Message-ID {message_id!r} is not a message id")
        subscriber = digest.subscriber
        head = "".join(
            [
                self._from_field(sender),
                _to_field(clean_header_text(subscriber.name, 100), subscriber.email),
                headers.fold("Subject", headers.header_words(clean_header_text(rendered.subject))),
                f"Date: {format_datetime(date)}\r\n",
                f"Message-ID: {message_id}\r\n",
                f"List-Id: <{list_id}>\r\n",
                headers.fold("List-Unsubscribe", [f"<{unsubscribe}>,", f"<{mailto}>"]),
                "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
                "MIME-Version: 1.0\r\n",
            ]
        )
        key = hashlib.sha256(message_id.encode("ascii")).hexdigest()[:19]
        boundary = f"==============={key}=="  # "==" never occurs in quoted-printable text
        head += f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n'
        headers.check_head(head, _FIELDS)
        delimiter = f"\r\n--{boundary}\r\n".encode("ascii")
        return b"".join(
            [
                head.encode("ascii"),
                delimiter,
                b'Content-Type: text/plain; charset="utf-8"\r\n',
                b"Content-Transfer-Encoding: quoted-printable\r\n\r\n",
                quoted_printable(rendered.text, self._lines),
                delimiter,
                b'Content-Type: text/html; charset="utf-8"\r\n',
                b"Content-Transfer-Encoding: quoted-printable\r\n",
                b"MIME-Version: 1.0\r\n\r\n",
                quoted_printable(rendered.html, self._lines),
                f"\r\n--{boundary}--\r\n".encode("ascii"),
            ]
        )

    def _from_field(self, sender: str) -> str:
        """The From field, written by the email package once per sender and checked."""
        field = self._senders.get(sender)
        if field is None:
            msg = EmailMessage()
            msg["From"] = sender
            _check_headers(msg, "the sender")
            field = msg.as_bytes(policy=SMTP).decode("ascii").split("\r\n\r\n", 1)[0] + "\r\n"
            self._senders[sender] = field
        return field


def _to_field(display_name: str, addr_spec: str) -> str:
    words = headers.address(display_name, addr_spec)
    if words is not None:
        return headers.fold("To", words)
    # A name that needs quoting or an unusual address: the email package writes it, and
    # the result is read back (CVE-2024-6923) before it is used.
    msg = EmailMessage()
    msg["To"] = Address(display_name=display_name, addr_spec=addr_spec)
    _check_headers(msg, addr_spec)
    return msg.as_bytes(policy=SMTP).decode("ascii").split("\r\n\r\n", 1)[0] + "\r\n"


class EncodedLines(dict[str, bytes]):
    """Lines in quoted-printable, CRLF-ended, encoded the first time they are looked up."""

    def __missing__(self, line: str) -> bytes:
        data = line.encode("utf-8") + b"\n"
        qp = binascii.b2a_qp(data, quotetabs=False, istext=True).replace(b"\n", b"\r\n")
        self[line] = qp
        return qp


def quoted_printable(text: str, known: EncodedLines | None = None) -> bytes:
    """The part's body: lines as the email package ends them, then quoted-printable, CRLF.

    Quoted-printable encodes each line on its own, so each line is encoded once and then
    looked up in `known`: most lines of a digest (the template's, each paper's) are the
    same in every message of a run, and encoding was the largest cost of a message.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    known = EncodedLines() if known is None else known
    if len(known) > _MAX_KNOWN_LINES:
        known.clear()
    return b"".join(map(known.__getitem__, text[:-1].split("\n")))


def _check_headers(msg: EmailMessage, key: str) -> None:
    """Defence in depth: the headers, written out and read back, are the ones we set.

    Python re-parses a header to fold it, decoding any encoded word it finds; a decoded
    line break would then start a new field (CVE-2024-6923, fixed only in 3.11.10).
    """
    written = email.message_from_bytes(msg.as_bytes(policy=SMTP), policy=email.policy.default)
    values = [str(value) for value in written.values()]
    if written.keys() != msg.keys() or any("\r" in v or "\n" in v for v in values):
        raise DigestError(f"the email for {key} would not keep its headers; not sent")


def _header_url(url: str, schemes: tuple[str, ...]) -> str:
    if not url.lower().startswith(schemes) or not _HEADER_URL.fullmatch(url):
        raise DigestError(f"unsubscribe URL {url!r} cannot go into a List-Unsubscribe header")
    return url


def _tidy_text(text: str) -> str:
    """No trailing spaces (except the "-- " signature line), no runs of blank lines."""
    lines = [line if line == "-- " else line.rstrip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n") + "\n"
