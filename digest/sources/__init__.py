"""Sources: each kind turns a run's catch-up days into Papers. The pipeline calls only this."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence

from digest.config import SourceConfig
from digest.errors import SourceError
from digest.fetch import Fetcher
from digest.models import Paper
from digest.sources import arxiv, feed, huggingface


def fetch_papers(
    fetcher: Fetcher,
    source: SourceConfig,
    days: Sequence[dt.date],
    complete: Collection[dt.date] = (),
) -> list[Paper]:
    """The papers `source` lists on any of `days`; a `SourceError` if it cannot say.

    Hugging Face is asked day by day; arXiv listings and feeds show their latest entries
    whatever the day, so they are fetched once and their entries picked by date. arXiv
    catches up the days before its latest that are not `complete` (fetched with papers
    before), which its latest listing no longer shows.
    """
    if source.kind == "huggingface":
        return [paper for day in days for paper in huggingface.fetch_day(fetcher, source, day)]
    if source.kind == "arxiv":
        return arxiv.fetch_days(fetcher, source, days, complete=complete)
    if source.kind == "feed":
        return feed.fetch_days(fetcher, source, days)
    where = source.url or source.base_url
    raise SourceError(source.name, where, f"source kind {source.kind!r} is not supported yet")
