"""The shapes of data that flow through a run.

Every source produces `Paper`s; everything after parsing sees only these types. They are
frozen and hold no I/O, so any stage can be tested on plain values.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from digest.ids import is_arxiv_id


@dataclass(frozen=True)
class Link:
    """A labelled link shown under a paper ("arXiv", "PDF", "Code", "Project page")."""

    label: str
    url: str


@dataclass(frozen=True)
class Paper:
    """One paper as a source lists it on one day.

    `id` is the version-less arXiv id when there is one ("2601.01234"), otherwise the
    feed entry's stable id. `day` is the source day the paper is listed under (for Hugging
    Face, `submittedOnDailyAt`), never derived from the id.
    """

    id: str
    title: str
    abstract: str
    day: dt.date
    source: str
    url: str
    authors: tuple[str, ...] = ()
    upvotes: int = 0
    comments: int = 0
    published: dt.datetime | None = None
    ai_summary: str | None = None
    ai_keywords: tuple[str, ...] = ()
    github_repo: str | None = None
    project_page: str | None = None
    thumbnail: str | None = None
    organization: str | None = None
    links: tuple[Link, ...] = ()

    @property
    def arxiv_id(self) -> str | None:
        """The arXiv id when `id` is one (new "2601.01234" or old "hep-th/9901001" style)."""
        return self.id if is_arxiv_id(self.id) else None


@dataclass(frozen=True)
class Interests:
    """What a subscriber follows, as written in the `[interests]` table of their file."""

    description: str = ""
    keywords: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    liked: tuple[str, ...] = ()


@dataclass(frozen=True)
class Subscriber:
    """One subscriber file. `slug` is the file name without `.toml`."""

    slug: str
    email: str
    interests: Interests
    name: str = ""
    frequency: str = "daily"  # "daily" or "weekly"
    weekday: str = "mon"  # for weekly subscribers: "mon" … "sun"
    max_papers: int = 15
    min_upvotes: int = 0
    send_empty: bool = False
    path: Path | None = None


@dataclass(frozen=True)
class Match:
    """A paper chosen for a subscriber, with its score and the reasons it was chosen."""

    paper: Paper
    score: float
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Digest:
    """What one subscriber receives for one issue (`key`: "2026-01-05" or "2026-W02")."""

    subscriber: Subscriber
    key: str
    date: dt.date
    matches: tuple[Match, ...] = field(default_factory=tuple)
