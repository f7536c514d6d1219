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
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import TypeVar
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
IO_THREADS = 32  # enough fsyncs/renames in flight for the file system to batch them
MAX_AUTHORS = 10  # per entry; a paper may list hundreds
T = TypeVar("T")
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


@dataclass(frozen=True)
class EntryText:
    """What an entry shows of a paper, cleaned once: the same paper is in thousands of
    private feeds, and cleaning its text is most of the cost of building one."""

    title: str
    url: str | None
    parts: tuple[str, ...]  # the summary and the authors line, the empty ones left out
    authors: tuple[str, ...]
    fallback: str  # the paragraph of an entry that would have none


def entry_text(paper: Paper) -> EntryText:
    authors = author_line(paper.authors)
    parts = (summary(paper), f"Authors: {authors}" if authors else "")
    names = (truncate(clean_text(name), 100) for name in paper.authors[:MAX_AUTHORS])
    return EntryText(
        title=title_of(paper),
        url=safe_url(paper.url),
        parts=tuple(part for part in parts if part),
        authors=tuple(name for name in names if name),
        fallback=clean_text(paper.id),
    )


def _paper_parts(text: EntryText, reasons: Sequence[str] = ()) -> list[str]:
    """The paragraphs of an entry: the summary, the authors, and why it was picked."""
    parts = list(text.parts)
    why = reasons_line(reasons)
    if why:
        parts.append(f"Why: {why}")
    return parts or [text.fallback]


def _add_entry(
    fg: FeedGenerator,
    entry_id: str,
    text: EntryText,
    stamp: dt.datetime,
    reasons: Sequence[str] | None = None,
    *,
    rss: bool = False,
) -> None:
    fe = fg.add_entry(order="append")  # callers add newest first
    fe.id(entry_id)
    fe.title(text.title)
    url = text.url
    if url:
        fe.link(href=url, rel="alternate")
    if rss:
        # An RSS description is HTML whatever it holds: plain text is escaped into
        # paragraphs, or a title's "<script>" would reach the reader as a tag.
        paragraphs = _paper_parts(text, reasons or ())
        fe.description("".join(f"<p>{escape(part)}</p>" for part in paragraphs))
    else:
        fe.summary("\n\n".join(_paper_parts(text)), type="text")
        if reasons is not None or not url:
            # Atom needs content when there is no link; the private feed shows the reasons.
            fe.content("\n\n".join(_paper_parts(text, reasons or ())), type="text")
    for name in text.authors:
        fe.author({"name": name})
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
    texts = {paper: entry_text(paper) for paper in ordered}
    outputs = []
    for suffix, media_type in (("atom", "application/atom+xml"), ("rss", "application/rss+xml")):
        fg = _generator(
            title, _tag(host, "feeds/papers"), f"{base}/feeds/papers.{suffix}", media_type, base
        )
        fg.subtitle("Trending research papers, newest day first")
        for paper in ordered:
            entry_id = _tag(host, f"paper/{paper.id}")
            _add_entry(fg, entry_id, texts[paper], midnight(paper.day), rss=suffix == "rss")
        _finish(fg, (midnight(paper.day) for paper in ordered))
        outputs.append(fg.atom_str(pretty=True) if suffix == "atom" else fg.rss_str(pretty=True))
    return outputs[0], outputs[1]


def subscriber_feed(
    digests: Sequence[Digest],
    *,
    title: str,
    base_url: str,
    feed_path: str,
    texts: dict[Paper, EntryText] | None = None,
) -> bytes:
    """A subscriber's private Atom feed: every paper their digests held, newest digest first.

    Entry ids name the digest too ("tag:<host>,2026:<feed_path>/<key>/<paper id>"), so a
    paper sent again in a later digest is a new entry, as it was a new email. `texts` is
    a cache of `entry_text` the caller may share between the feeds of one run.
    """
    texts = {} if texts is None else texts
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
            text = texts.get(match.paper)
            if text is None:
                text = texts[match.paper] = entry_text(match.paper)
            _add_entry(fg, entry_id, text, stamp, match.reasons)
    _finish(fg, stamps)
    data: bytes = fg.atom_str(pretty=True)
    return data


def write_atomic(path: Path, data: bytes) -> bool:
    """Replace `path` with `data` so a reader sees the old file or the new one, never half.

    Identical bytes leave the file alone (mtime too, so web servers keep their ETag) and
    return False.
    """
    return bool(write_atomic_many([(path, data)]))


def write_atomic_many(items: Iterable[tuple[Path, bytes]]) -> list[Path]:
    """`write_atomic` for many files at once; returns the paths whose bytes changed.

    Each file is still replaced by a rename (a reader sees old or new, never half) and is
    on disk before its rename, but the waits are shared: every temp file is written first,
    then all are fsynced together, then all renamed (both side by side, so the file system
    commits them in a few journal transactions rather than one or more per file), then each
    directory is fsynced once. After a crash each file is the old one or the new one; the
    files of a batch may be replaced in any order. If a path is given twice, the last
    bytes win.
    """
    staged: dict[Path, str] = {}  # path → its temp file, in the order given
    try:
        for path, data in items:
            earlier = staged.pop(path, None)
            if earlier is not None:
                Path(earlier).unlink()
            temp = _stage(path, data)
            if temp is not None:
                staged[path] = temp
        _side_by_side(_fsync_file, list(staged.values()))
        _side_by_side(_rename, list(staged.items()))
    except BaseException:
        for temp in staged.values():  # those renamed already are gone
            Path(temp).unlink(missing_ok=True)
        raise
    for folder in dict.fromkeys(path.parent for path in staged):
        _fsync_dir(folder)
    return list(staged)


def _stage(path: Path, data: bytes) -> str | None:
    """A temp file beside `path` holding `data` (not yet synced), or None if `path` holds
    `data` already."""
    try:
        if path.read_bytes() == data:
            return None
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
        os.chmod(temp, mode)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return temp


def _side_by_side(work: Callable[[T], None], args: Sequence[T]) -> None:
    """`work` on every item, many calls in flight at once: fsyncs and renames mostly wait on
    the file system's journal, and waits that overlap are shared (the calls release the
    GIL). Re-raises the first error once every call has ended."""
    if len(args) <= 1:
        for arg in args:
            work(arg)
        return
    with ThreadPoolExecutor(max_workers=min(IO_THREADS, len(args))) as pool:
        for _ in pool.map(work, args):
            pass


def _rename(item: tuple[Path, str]) -> None:
    path, temp = item
    os.replace(temp, path)


def _fsync_file(name: str) -> None:
    fd = os.open(name, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


def remove_stale_temporaries(folder: Path) -> int:
    """Delete temp files a killed writer left under `folder` (`.<name>.XXXX.tmp`).

    Only safe while holding the run lock: then no writer is active. Returns how many.
    """
    removed = 0
    for temp in folder.rglob(".*.tmp") if folder.is_dir() else ():
        temp.unlink(missing_ok=True)
        removed += 1
    return removed
