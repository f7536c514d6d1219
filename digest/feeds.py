"""The public Atom/RSS feeds of the day's papers and each subscriber's private Atom feed.

A feed is a pure function of its papers: every date comes from the data (midnight UTC of
the day a paper was listed, or of the digest), never from the clock, so a rerun writes the
same bytes and feed readers polling with ETags see no change. Entry ids are tag URIs that
never change (RFC 4151).
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from urllib.parse import quote, urlsplit

from feedgen.feed import FeedGenerator

from digest.errors import DigestError
from digest.models import Digest, Paper
from digest.sanitize import (
    author_line,
    clean_text,
    reasons_line,
    safe_url,
    summary,
    title_of,
    truncate,
)

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
TAG_YEAR = "2026"
MAX_AUTHORS = 10  # per entry; a paper may list hundreds
_TAG_SAFE = "/?:@!$&'()*+,;=-._~"  # RFC 4151 "specific" characters kept as they are


def midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _base(base_url: str) -> tuple[str, str]:
    """(base URL without trailing slash, host name for tag URIs)."""
    base = base_url.rstrip("/")
    host = urlsplit(base).hostname
    if not host:
        raise DigestError(f"base_url {base_url!r} has no host name; feeds need one")
    return base, host


def _tag(host: str, specific: str) -> str:
    return f"tag:{host},{TAG_YEAR}:{quote(clean_text(specific), safe=_TAG_SAFE)}"


def _generator(title: str, feed_id: str, self_url: str, self_type: str, home: str) -> FeedGenerator:
    fg = FeedGenerator()
    fg.id(feed_id)
    fg.title(truncate(clean_text(title), 200) or "digest")
    fg.author({"name": truncate(clean_text(title), 200) or "digest"})
    # feedgen takes the RSS <link> from the last link added: the site, not the feed itself.
    fg.link(href=self_url, rel="self", type=self_type)
    fg.link(href=home, rel="alternate")
    fg.language("en")
    fg.generator("digest")
    return fg


def _paper_parts(paper: Paper, reasons: Sequence[str] = ()) -> list[str]:
    """The paragraphs of an entry: the summary, the authors, and why it was picked."""
    parts = [summary(paper)]
    authors = author_line(paper.authors)
    if authors:
        parts.append(f"Authors: {authors}")
    why = reasons_line(reasons)
    if why:
        parts.append(f"Why: {why}")
    return [part for part in parts if part] or [clean_text(paper.id)]


def _add_entry(
    fg: FeedGenerator,
    entry_id: str,
    paper: Paper,
    stamp: dt.datetime,
    reasons: Sequence[str] | None = None,
    *,
    rss: bool = False,
) -> None:
    fe = fg.add_entry(order="append")  # callers add newest first
    fe.id(entry_id)
    fe.title(title_of(paper))
    url = safe_url(paper.url)
    if url:
        fe.link(href=url, rel="alternate")
    if rss:
        # An RSS description is HTML whatever it holds: plain text is escaped into
        # paragraphs, or a title's "<script>" would reach the reader as a tag.
        paragraphs = _paper_parts(paper, reasons or ())
        fe.description("".join(f"<p>{escape(part)}</p>" for part in paragraphs))
    else:
        fe.summary("\n\n".join(_paper_parts(paper)), type="text")
        if reasons is not None or not url:
            # Atom needs content when there is no link; the private feed shows the reasons.
            fe.content("\n\n".join(_paper_parts(paper, reasons or ())), type="text")
    for name in paper.authors[:MAX_AUTHORS]:
        cleaned = truncate(clean_text(name), 100)
        if cleaned:
            fe.author({"name": cleaned})
    fe.updated(stamp)
    fe.published(stamp)


def _finish(fg: FeedGenerator, stamps: Iterable[dt.datetime]) -> None:
    fg.updated(max(stamps, default=EPOCH))  # sets RSS lastBuildDate too


def _newest_first(papers: Sequence[Paper]) -> list[Paper]:
    """Newest day first, the given order within a day, each paper once (its newest day)."""
    ordered = sorted(papers, key=lambda p: p.day, reverse=True)
    seen: set[str] = set()
    unique = []
    for paper in ordered:
        if paper.id not in seen:
            seen.add(paper.id)
            unique.append(paper)
    return unique


def public_feeds(papers: Sequence[Paper], *, title: str, base_url: str) -> tuple[bytes, bytes]:
    """(Atom, RSS 2.0) of `papers`, newest day first. Ids: "tag:<host>,2026:paper/<id>"."""
    base, host = _base(base_url)
    ordered = _newest_first(papers)
    outputs = []
    for suffix, media_type in (("atom", "application/atom+xml"), ("rss", "application/rss+xml")):
        fg = _generator(
            title, _tag(host, "feeds/papers"), f"{base}/feeds/papers.{suffix}", media_type, base
        )
        fg.subtitle("Trending research papers, newest day first")
        for paper in ordered:
            entry_id = _tag(host, f"paper/{paper.id}")
            _add_entry(fg, entry_id, paper, midnight(paper.day), rss=suffix == "rss")
        _finish(fg, (midnight(paper.day) for paper in ordered))
        outputs.append(fg.atom_str(pretty=True) if suffix == "atom" else fg.rss_str(pretty=True))
    return outputs[0], outputs[1]


def subscriber_feed(
    digests: Sequence[Digest], *, title: str, base_url: str, feed_path: str
) -> bytes:
    """A subscriber's private Atom feed: every paper their digests held, newest digest first.

    Entry ids name the digest too ("tag:<host>,2026:<feed_path>/<key>/<paper id>"), so a
    paper sent again in a later digest is a new entry, as it was a new email.
    """
    base, host = _base(base_url)
    path = feed_path.strip("/")
    fg = _generator(title, _tag(host, path), f"{base}/{path}", "application/atom+xml", base)
    fg.subtitle("Papers picked for you, newest digest first")
    seen: set[str] = set()
    stamps = []
    for digest in sorted(digests, key=lambda d: d.date, reverse=True):
        stamp = midnight(digest.date)
        for match in digest.matches:
            entry_id = _tag(host, f"{path}/{digest.key}/{match.paper.id}")
            if entry_id in seen:
                continue
            seen.add(entry_id)
            stamps.append(stamp)
            _add_entry(fg, entry_id, match.paper, stamp, match.reasons)
    _finish(fg, stamps)
    data: bytes = fg.atom_str(pretty=True)
    return data


def write_atomic(path: Path, data: bytes) -> bool:
    """Replace `path` with `data` so a reader sees the old file or the new one, never half.

    Identical bytes leave the file alone (mtime too, so web servers keep their ETag) and
    return False.
    """
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644  # feeds are served to the world
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return True


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
