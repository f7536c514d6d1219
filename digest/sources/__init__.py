"""Sources: each kind turns one source day into Papers. The pipeline calls only this."""

from __future__ import annotations

import datetime as dt

from digest.config import SourceConfig
from digest.errors import SourceError
from digest.fetch import Fetcher
from digest.models import Paper
from digest.sources import arxiv, feed, huggingface


def fetch_papers(fetcher: Fetcher, source: SourceConfig, day: dt.date) -> list[Paper]:
    """The papers `source` lists on `day`; a `SourceError` if it cannot say."""
    if source.kind == "huggingface":
        return huggingface.fetch_day(fetcher, source, day)
    if source.kind == "arxiv":
        return arxiv.fetch_day(fetcher, source, day)
    if source.kind == "feed":
        return feed.fetch_day(fetcher, source, day)
    where = source.url or source.base_url
    raise SourceError(source.name, where, f"source kind {source.kind!r} is not supported yet")
