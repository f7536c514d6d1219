"""Paper identifiers: recognising and normalising arXiv ids."""

from __future__ import annotations

import re

_NEW_STYLE = re.compile(r"^\d{4}\.\d{4,5}$")
_OLD_STYLE = re.compile(r"^[a-z][a-z\-]*(\.[A-Z]{2})?/\d{7}$")
_VERSION = re.compile(r"v\d+$")
_IN_URL = re.compile(
    r"arxiv\.org/(?:abs|pdf|html)/([a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7}|\d{4}\.\d{4,5})(?:v\d+)?"
)


def is_arxiv_id(value: str) -> bool:
    """True for a version-less arXiv id of either style."""
    return bool(_NEW_STYLE.match(value) or _OLD_STYLE.match(value))


def strip_version(arxiv_id: str) -> str:
    """ "2508.13426v2" → "2508.13426": papers are keyed without their version."""
    return _VERSION.sub("", arxiv_id.strip())


def arxiv_id_from_url(url: str) -> str | None:
    """The version-less arXiv id inside an arxiv.org abs/pdf/html URL, if any."""
    found = _IN_URL.search(url)
    return found.group(1) if found else None
