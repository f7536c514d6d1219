"""HTTP fetching for every source: one client per run, polite and hard to wedge.

Sources never talk to httpx directly. They get a `Fetcher`, which sends a User-Agent naming
the project, bounds every wait (timeouts, response size, retries, `Retry-After`) and turns
every failure into one `FetchError` whose message a user can read. Waiting goes through an
injected `sleep` so tests never sleep for real.
"""

from __future__ import annotations

import datetime as dt
import http
import logging
import random
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import NoReturn, Protocol

import httpx

from digest import __version__
from digest.errors import FetchError

log = logging.getLogger(__name__)

PROJECT_URL = "https://github.com/digest-papers/digest"
DEFAULT_USER_AGENT = f"digest/{__version__} (+{PROJECT_URL})"

_MAX_REDIRECTS = 5


@dataclass(frozen=True)
class Response:
    """A complete, size-checked response. `headers` has lower-cased names.

    `not_modified` is True when the server answered 304 to a conditional request: the
    content is then the copy kept from the last full answer.
    """

    url: str
    status: int
    content: bytes
    headers: Mapping[str, str]
    not_modified: bool = False


@dataclass(frozen=True)
class Cached:
    """The last full answer for a URL, with its validators."""

    content: bytes
    etag: str | None = None
    last_modified: str | None = None


class ValidatorCache(Protocol):
    """Where ETag / Last-Modified (and the body they validate) are kept between runs."""

    def cached(self, url: str) -> Cached | None: ...

    def remember(self, url: str, cached: Cached) -> None: ...


class _Retryable(Exception):
    """One attempt failed in a way that may pass; `wait` is what the server asked for."""

    def __init__(self, problem: str, wait: float | None = None, status: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.wait = wait
        self.status = status


class Fetcher:
    """Wraps one `httpx.Client` for a whole run so connections are reused."""

    def __init__(
        self,
        *,
        timeout: float = 20.0,
        connect_timeout: float = 10.0,
        attempts: int = 4,
        backoff: float = 1.0,
        max_wait: float = 60.0,
        max_bytes: int = 20_000_000,
        user_agent: str | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        cache: ValidatorCache | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.attempts = attempts
        self.backoff = backoff
        self.max_wait = max_wait
        self.max_bytes = max_bytes
        self._sleep = sleep
        self._cache = cache
        self._random = random.Random()
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            headers={"User-Agent": user_agent or DEFAULT_USER_AGENT},
            transport=transport,
            follow_redirects=True,
            max_redirects=_MAX_REDIRECTS,
        )

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def get(
        self,
        url: str,
        params: Mapping[str, str | int] | None = None,
        *,
        ok_statuses: Collection[int] = (200,),
    ) -> Response:
        """GET `url`, retrying what may pass; raise `FetchError` for anything else.

        A status outside `ok_statuses` is an error (after retries for 429 and 5xx), so a
        caller that can use, say, a 404 body says so explicitly.
        """
        try:
            full_url = str(httpx.URL(url).copy_merge_params(dict(params or {})))
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise FetchError(url, f"invalid URL ({exc})") from exc

        cached = self._cache.cached(full_url) if self._cache else None
        conditions = _conditions(cached)
        problem, status = "", None
        for attempt in range(1, self.attempts + 1):
            log.debug("GET %s (attempt %d of %d)", full_url, attempt, self.attempts)
            try:
                response = self._attempt(full_url, ok_statuses, conditions)
            except _Retryable as failure:
                problem, status = failure.problem, failure.status
                if attempt == self.attempts:
                    break
                wait = failure.wait if failure.wait is not None else self._backoff(attempt)
                log.info(
                    "GET %s: %s; retrying in %.1f s (attempt %d of %d)",
                    full_url,
                    problem,
                    wait,
                    attempt + 1,
                    self.attempts,
                )
                self._sleep(wait)
                continue
            return self._validated(full_url, response, cached)
        raise FetchError(full_url, f"{problem} after {self.attempts} attempts", status=status)

    def _validated(self, url: str, response: Response, cached: Cached | None) -> Response:
        """Serve a 304 from the kept copy; keep the validators of a full 200 answer."""
        if response.status == 304 and cached is not None:
            log.debug("GET %s: not modified", url)
            return Response(url, 200, cached.content, response.headers, not_modified=True)
        etag, modified = response.headers.get("etag"), response.headers.get("last-modified")
        if self._cache is not None and response.status == 200 and (etag or modified):
            self._cache.remember(url, Cached(response.content, etag, modified))
        return response

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter, so many clients do not retry in step."""
        base: float = min(self.max_wait, self.backoff * 2.0 ** (attempt - 1))
        return base * self._random.uniform(0.5, 1.0)

    def _attempt(
        self, url: str, ok_statuses: Collection[int], conditions: Mapping[str, str]
    ) -> Response:
        try:
            with self._client.stream("GET", url, headers=conditions) as response:
                status = response.status_code
                if status not in ok_statuses and not (status == 304 and conditions):
                    self._reject_status(url, response)
                content = self._read_capped(url, response)
                final_url = str(response.url)
                headers = dict(response.headers.items())
        except httpx.TimeoutException as exc:
            kind = "connection timed out" if isinstance(exc, httpx.ConnectTimeout) else "timed out"
            raise _Retryable(kind) from exc
        except httpx.ConnectError as exc:
            raise _Retryable(_connect_problem(exc)) from exc
        except (httpx.ReadError, httpx.WriteError) as exc:
            raise _Retryable(_lost_problem(exc)) from exc
        except httpx.RemoteProtocolError as exc:
            raise _Retryable(
                "server closed the connection before the response was complete"
            ) from exc
        except httpx.TooManyRedirects as exc:
            raise FetchError(url, f"more than {_MAX_REDIRECTS} redirects") from exc
        except httpx.DecodingError as exc:
            raise FetchError(url, f"could not decode the response body ({exc})") from exc
        except httpx.HTTPError as exc:
            raise FetchError(url, f"{type(exc).__name__}: {exc}") from exc
        log.debug("GET %s: HTTP %d, %d bytes", url, status, len(content))
        return Response(url=final_url, status=status, content=content, headers=headers)

    def _reject_status(self, url: str, response: httpx.Response) -> NoReturn:
        status = response.status_code
        problem = f"HTTP {status} {_reason(response)}".rstrip()
        # 429 asks us to slow down; 5xx are the server's own trouble and often pass.
        if status != 429 and status < 500:
            raise FetchError(url, problem, status=status)
        wait = _retry_after(response.headers.get("retry-after"))
        if wait is not None and wait > self.max_wait:
            raise FetchError(
                url,
                f"{problem}; the server asks to wait {wait:.0f} s, "
                f"more than the {self.max_wait:.0f} s limit",
                status=status,
            )
        raise _Retryable(problem, wait, status)

    def _read_capped(self, url: str, response: httpx.Response) -> bytes:
        too_large = f"response larger than {self.max_bytes} bytes"
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise FetchError(url, too_large)
        body = bytearray()
        # iter_bytes yields decoded (gunzipped) data, so the cap also stops gzip bombs.
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > self.max_bytes:
                raise FetchError(url, too_large)
        return bytes(body)


def _conditions(cached: Cached | None) -> dict[str, str]:
    """The headers of a conditional GET: a poll with no change then costs a 304."""
    if cached is None:
        return {}
    headers = {}
    if cached.etag:
        headers["If-None-Match"] = cached.etag
    if cached.last_modified:
        headers["If-Modified-Since"] = cached.last_modified
    return headers


def _reason(response: httpx.Response) -> str:
    try:
        return http.HTTPStatus(response.status_code).phrase
    except ValueError:
        return response.reason_phrase


def _connect_problem(exc: httpx.ConnectError) -> str:
    text = str(exc)
    if "refused" in text.lower():
        return "connection refused"
    return f"could not connect ({text or type(exc).__name__})"


def _lost_problem(exc: httpx.TransportError) -> str:
    text = str(exc)
    if "reset" in text.lower():
        return "connection reset by the server"
    return f"connection lost ({text or type(exc).__name__})"


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP-date."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        log.debug("ignoring unreadable Retry-After %r", value)
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())
