"""A source's page, got and read: what every kind of source does with each URL it asks."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from digest.config import SourceConfig
from digest.errors import FetchError, SourceError
from digest.fetch import Fetcher

Parsed = TypeVar("Parsed")  # what a page is read into


def read_page(
    fetcher: Fetcher, source: SourceConfig, url: str, parse: Callable[[bytes, str], Parsed]
) -> Parsed:
    """What `parse` makes of the page at `url` (its bytes, and the URL it came from after
    redirects); a failure to get or read it fails the source, naming it and the URL."""
    try:
        response = fetcher.get(url)
        return parse(response.content, response.url)
    except (FetchError, SourceError) as exc:
        raise SourceError(source.name, exc.url, exc.problem) from exc
