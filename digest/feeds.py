"""The public Atom/RSS feeds of the day's papers and each subscriber's private Atom feed.

A feed is a pure function of its papers: every date comes from the data (midnight UTC of
the day a paper was listed, or of the digest), never from the clock, so a rerun writes the
same bytes and feed readers polling with ETags see no change. Entry ids are tag URIs that
never change (RFC 4151).
"""

from __future__ import annotations

import ctypes
import datetime as dt
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
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
IO_THREADS = 32  # enough fsyncs in flight for the file system to batch them
SYNCFS_FILES = 64  # a batch this large is synced with one syncfs, not an fsync per file
MAX_AUTHORS = 10  # per entry; a paper may list hundreds
T = TypeVar("T")
_TAG_SAFE = "/?:@!$&'()*+,;=-._~"  # RFC 4151 "specific" characters kept as they are
_TAG_PLAIN = re.compile(r"[A-Za-z0-9/?:@!$&'()*+,;=._~-]*")  # what cleaning and quoting keep


def _load_syncfs() -> Callable[[int], int] | None:
    """libc's `syncfs(fd)`, or None where there is none (not Linux)."""
    try:
        function: Callable[[int], int] = ctypes.CDLL(None, use_errno=True).syncfs
    except (AttributeError, OSError, TypeError):
        return None
    return function


_SYNCFS = _load_syncfs()


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
    if not _TAG_PLAIN.fullmatch(specific):  # most are; quoting them would change nothing
        specific = quote(clean_text(specific), safe=_TAG_SAFE)
    return f"tag:{host},{TAG_YEAR}:{specific}"


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
    private feeds, and cleaning its text is most of the cost of building one. The `atom_`
    fields are the paper's part of a private feed entry, already written as XML."""

    title: str
    url: str | None
    parts: tuple[str, ...]  # the summary and the authors line, the empty ones left out
    authors: tuple[str, ...]
    fallback: str  # the paragraph of an entry that would have none
    atom_title: str  # the <title> line
    atom_authors: str  # the <author> elements
    atom_tail: str  # the <link> and <summary> lines
    atom_parts: str  # `parts` as the start of a <content>, escaped


def entry_text(paper: Paper) -> EntryText:
    title, url, fallback = title_of(paper), safe_url(paper.url), clean_text(paper.id)
    line = author_line(paper.authors)
    parts = tuple(part for part in (summary(paper), f"Authors: {line}" if line else "") if part)
    names = (truncate(clean_text(name), 100) for name in paper.authors[:MAX_AUTHORS])
    authors = tuple(name for name in names if name)
    link = f'    <link href="{_xml_attribute(url)}"/>\n' if url else ""
    return EntryText(
        title=title,
        url=url,
        parts=parts,
        authors=authors,
        fallback=fallback,
        atom_title=f"    <title>{_xml(title)}</title>\n",
        atom_authors="".join(
            f"    <author>\n      <name>{_xml(name)}</name>\n    </author>\n" for name in authors
        ),
        atom_tail=link + _atom_text("summary", _xml("\n\n".join(parts or (fallback,)))),
        atom_parts=_xml("\n\n".join(parts)),
    )


def _paper_parts(text: EntryText) -> list[str]:
    """The paragraphs of a public entry: the summary and the authors."""
    return list(text.parts) or [text.fallback]


def _add_entry(
    fg: FeedGenerator, entry_id: str, text: EntryText, stamp: dt.datetime, *, rss: bool
) -> None:
    """A public feed's entry (private feeds are written by `subscriber_feed` itself)."""
    fe = fg.add_entry(order="append")  # callers add newest first
    fe.id(entry_id)
    fe.title(text.title)
    url = text.url
    if url:
        fe.link(href=url, rel="alternate")
    paragraphs = _paper_parts(text)
    if rss:
        # An RSS description is HTML whatever it holds: plain text is escaped into
        # paragraphs, or a title's "<script>" would reach the reader as a tag.
        fe.description("".join(f"<p>{escape(part)}</p>" for part in paragraphs))
    else:
        fe.summary("\n\n".join(paragraphs), type="text")
        if not url:
            fe.content("\n\n".join(paragraphs), type="text")  # Atom needs one or the other
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

    A run writes thousands of these, so the XML is written here from fragments escaped
    once per paper rather than built as a tree: the bytes are those feedgen and lxml write
    for the same feed (the public feeds' writer), to the byte.
    """
    texts = {} if texts is None else texts
    base, host = _base(base_url)
    path = feed_path.strip("/")
    name = _xml(truncate(clean_text(title), 200) or "digest")
    entries: list[str] = []
    seen: set[str] = set()
    updated = ""  # the newest entry's; digests are taken newest first
    for digest in sorted(digests, key=lambda d: d.date, reverse=True):
        stamp = midnight(digest.date).isoformat()
        prefix = f"{path}/{digest.key}/"
        for match in digest.matches:
            entry_id = _tag(host, prefix + match.paper.id)
            if entry_id in seen:
                continue
            seen.add(entry_id)
            updated = updated or stamp
            text = texts.get(match.paper)
            if text is None:
                text = texts[match.paper] = entry_text(match.paper)
            why = _atom_why(match.reasons)
            content = text.atom_parts
            if why:
                content += ("\n\n" if content else "") + why
            entries.append(
                f"  <entry>\n    <id>{_xml(entry_id)}</id>\n{text.atom_title}"
                f"    <updated>{stamp}</updated>\n{text.atom_authors}"
                f"{_atom_text('content', content or _xml(text.fallback))}{text.atom_tail}"
                f"    <published>{stamp}</published>\n  </entry>\n"
            )
    head = (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        '<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">\n'
        f"  <id>{_xml(_tag(host, path))}</id>\n"
        f"  <title>{name}</title>\n"
        f"  <updated>{updated or EPOCH.isoformat()}</updated>\n"
        f"  <author>\n    <name>{name}</name>\n  </author>\n"
        f'  <link href="{_xml_attribute(f"{base}/{path}")}" rel="self"'
        ' type="application/atom+xml"/>\n'
        f'  <link href="{_xml_attribute(base)}" rel="alternate"/>\n'
        "  <generator>digest</generator>\n"
        "  <subtitle>Papers picked for you, newest digest first</subtitle>\n"
    )
    return "".join((head, *entries, "</feed>\n")).encode("utf-8")


@lru_cache(maxsize=65_536)  # subscribers who follow the same words share their reasons
def _atom_why(reasons: tuple[str, ...]) -> str:
    """The "Why: …" paragraph of a private entry, escaped ("" without reasons)."""
    why = reasons_line(reasons)
    return _xml(f"Why: {why}") if why else ""


def _xml(text: str) -> str:
    """`text` as lxml writes it inside an element. Only `clean_text`ed text comes here: no
    character that XML cannot hold."""
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    )


def _xml_attribute(text: str) -> str:
    """`text` as lxml writes it in a double-quoted attribute."""
    return _xml(text).replace('"', "&quot;").replace("\t", "&#9;").replace("\n", "&#10;")


def _atom_text(element: str, escaped: str) -> str:
    """An entry's `<summary>` or `<content>` of plain text (empty: an empty element)."""
    if not escaped:
        return f'    <{element} type="text"/>\n'
    return f'    <{element} type="text">{escaped}</{element}>\n'


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
    then all are made durable together (one `syncfs` per file system for a large batch,
    or fsyncs side by side, so the file system commits them in a few journal transactions
    rather than one or more per file), then all renamed, then each directory is fsynced
    once. After a crash each file is the old one or the new one; the files of a batch may
    be replaced in any order. If a path is given twice, the last bytes win.
    """
    staged: dict[Path, str] = {}  # path → its temp file, in the order given
    made: set[Path] = set()  # folders known to exist
    batch = os.urandom(6).hex()  # temp file names: this batch's, then a number
    try:
        for number, (path, data) in enumerate(items):
            earlier = staged.pop(path, None)
            if earlier is not None:
                Path(earlier).unlink()
            temp = _stage(path, data, made, f"{batch}{number}")
            if temp is not None:
                staged[path] = temp
        _sync_files(list(staged.values()))
        for path, temp in staged.items():
            os.replace(temp, path)  # no wait on the disk: faster one by one than in threads
    except BaseException:
        for temp in staged.values():  # those renamed already are gone
            Path(temp).unlink(missing_ok=True)
        raise
    for folder in dict.fromkeys(path.parent for path in staged):
        _fsync_dir(folder)
    return list(staged)


def _stage(path: Path, data: bytes, made: set[Path], tag: str) -> str | None:
    """A temp file beside `path` holding `data` (not yet synced), or None if `path` holds
    `data` already. `made`: folders that exist (`path`'s is added); `tag`: unique to this
    file within the batch, for the temp file's name."""
    try:
        with open(path, "rb") as current:
            status = os.fstat(current.fileno())
            if status.st_size == len(data) and current.read() == data:
                return None
            mode = status.st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644  # feeds are served to the world
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
    made.add(path.parent)
    temp = f"{path.parent}/.{path.name}.{tag}.tmp"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:  # a name taken by someone else: let tempfile find a free one
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:
        os.close(fd)
        os.unlink(temp)
        raise
    os.close(fd)
    return temp


def _sync_files(names: Sequence[str]) -> None:
    """Put the data of every file in `names` on disk. From `SYNCFS_FILES` files on, one
    `syncfs` per file system (Linux) does it: thousands of fsyncs cost far more, even side
    by side. It also flushes other writers' data on that file system, hence the threshold."""
    if len(names) < SYNCFS_FILES or _SYNCFS is None:
        _side_by_side(_fsync_file, names)
        return
    devices = {os.stat(folder).st_dev: folder for folder in {os.path.dirname(n) for n in names}}
    for folder in devices.values():
        fd = os.open(folder, os.O_RDONLY)
        try:
            if _SYNCFS(fd) != 0:
                code = ctypes.get_errno()
                raise OSError(code, f"syncfs: {os.strerror(code)}", folder)
        finally:
            os.close(fd)


def _side_by_side(work: Callable[[T], None], args: Sequence[T]) -> None:
    """`work` on every item, many calls in flight at once: fsyncs mostly wait on the file
    system's journal, and waits that overlap are shared (the calls release the GIL).
    Re-raises the first error once every call has ended."""
    if len(args) <= 1:
        for arg in args:
            work(arg)
        return
    with ThreadPoolExecutor(max_workers=min(IO_THREADS, len(args))) as pool:
        for _ in pool.map(work, args):
            pass


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
