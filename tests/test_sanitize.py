"""Cleaning scraped text and URLs before they reach an email, a feed or a header."""

from __future__ import annotations

from urllib.parse import urlsplit

from hypothesis import given, settings
from hypothesis import strategies as st

from digest.sanitize import safe_url

URL_PIECES = st.sampled_from(
    [
        *("http://", "https://", "HTTP://", "ftp://", "javascript:", "//", "http:/"),
        *("example.org", "EXAMPLE.org", "a-b.c", "[::1]", "[bad", "user@", "é.org", ":8080", ":"),
        *("/", "/path", "?q=1&r=<2>", "#frag", '"', " ", "\t", "\u202e", "\x00", "%20", ".."),
    ]
)


def accepted_by_urlsplit(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


@given(st.lists(URL_PIECES, max_size=8).map("".join))
@settings(max_examples=500, deadline=None)
def test_a_url_is_kept_exactly_when_it_is_printable_and_an_http_url_with_a_host(url: str) -> None:
    stripped = url.strip()
    printable = stripped.isprintable() and not any(
        c.isspace() for c in stripped
    )  # as the pieces go
    expected = stripped if stripped and printable and accepted_by_urlsplit(stripped) else None
    assert safe_url(url) == expected
