from __future__ import annotations

import gzip
import socket
import time
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from helpers import MONTH
from httpserver import LoopbackServer, RecordedRequest, Reply, replies, serve_hf_api

import digest
from digest.errors import FetchError
from digest.fetch import Fetcher
from digest.store import Store


class Sleeps(list[float]):
    """Records the waits a Fetcher asks for, instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def fetcher(sleeps: Sleeps, **options: Any) -> Fetcher:
    return Fetcher(sleep=sleeps, **options)


def test_a_plain_get_returns_the_body_status_headers_and_full_url(
    server: LoopbackServer, sleeps: Sleeps
) -> None:
    server.serve_bytes("/data", b"hello", headers={"X-Thing": "yes"})
    with fetcher(sleeps) as client:
        response = client.get(f"{server.url}/data", {"date": "2026-01-05", "p": 0})
    assert response.status == 200
    assert response.content == b"hello"
    assert response.headers["x-thing"] == "yes"
    assert response.url == f"{server.url}/data?date=2026-01-05&p=0"
    assert server.requests[0].query == {"date": "2026-01-05", "p": "0"}
    assert sleeps == []


def test_params_are_added_to_a_query_string_already_in_the_url(
    server: LoopbackServer, sleeps: Sleeps
) -> None:
    server.serve_bytes("/feed", b"ok")
    with fetcher(sleeps) as client:
        response = client.get(f"{server.url}/feed?format=atom", {"page": 2})
    assert response.url == f"{server.url}/feed?format=atom&page=2"
    assert server.requests[0].query == {"format": "atom", "page": "2"}


def test_a_redirect_is_followed_and_the_final_url_reported(
    server: LoopbackServer, sleeps: Sleeps
) -> None:
    server.serve_bytes("/old", b"", status=301, headers={"Location": "/new"})
    server.serve_bytes("/new", b"moved")
    with fetcher(sleeps) as client:
        response = client.get(f"{server.url}/old")
    assert (response.url, response.content) == (f"{server.url}/new", b"moved")


def test_the_user_agent_names_digest_and_its_version(
    server: LoopbackServer, sleeps: Sleeps
) -> None:
    server.serve_bytes("/", b"ok")
    with fetcher(sleeps) as client:
        client.get(f"{server.url}/")
    agent = server.requests[0].headers["user-agent"]
    assert agent.startswith(f"digest/{digest.__version__} ")
    assert "https://" in agent


def test_a_429_with_retry_after_seconds_waits_that_long_then_succeeds(
    server: LoopbackServer, sleeps: Sleeps
) -> None:
    server.route("/", replies(Reply(429, headers={"Retry-After": "7"}), Reply(200, b"ok")))
    with fetcher(sleeps) as client:
        response = client.get(f"{server.url}/")
    assert response.content == b"ok"
    assert sleeps == [7.0]
    assert len(server.requests) == 2


def test_a_retry_after_http_date_waits_until_that_time(
    server: LoopbackServer, sleeps: Sleeps
) -> None:
    later = formatdate(time.time() + 30, usegmt=True)
    server.route("/", replies(Reply(503, headers={"Retry-After": later}), Reply(200, b"ok")))
    with fetcher(sleeps) as client:
        assert client.get(f"{server.url}/").content == b"ok"
    assert len(sleeps) == 1
    assert 27 <= sleeps[0] <= 30


def test_a_retry_after_beyond_the_cap_gives_up_at_once_without_waiting(
    server: LoopbackServer, sleeps: Sleeps
) -> None:
    server.route("/", replies(Reply(429, headers={"Retry-After": "86400"}), Reply(200, b"ok")))
    with fetcher(sleeps, max_wait=60) as client, pytest.raises(FetchError) as caught:
        client.get(f"{server.url}/")
    assert sleeps == []
    assert len(server.requests) == 1
    assert "HTTP 429 Too Many Requests" in caught.value.problem
    assert "86400" in caught.value.problem


def test_a_server_error_is_retried_after_a_backoff(server: LoopbackServer, sleeps: Sleeps) -> None:
    server.route("/", replies(Reply(500), Reply(200, b"ok")))
    with fetcher(sleeps, backoff=2.0) as client:
        assert client.get(f"{server.url}/").content == b"ok"
    assert len(sleeps) == 1
    assert 1.0 <= sleeps[0] <= 2.0  # the first backoff, jittered into its upper half


def test_a_server_error_that_persists_fails_after_the_configured_attempts(
    server: LoopbackServer, sleeps: Sleeps
) -> None:
    server.route("/", replies(Reply(500)))
    with fetcher(sleeps, attempts=3) as client, pytest.raises(FetchError) as caught:
        client.get(f"{server.url}/", {"date": "2026-01-05"})
    assert len(server.requests) == 3
    assert len(sleeps) == 2
    assert sleeps[1] >= sleeps[0]  # the backoff grows
    assert caught.value.problem == "HTTP 500 Internal Server Error after 3 attempts"
    assert caught.value.url == f"{server.url}/?date=2026-01-05"
    assert f"{server.url}/?date=2026-01-05" in str(caught.value)


def test_backoff_never_exceeds_the_maximum_wait(server: LoopbackServer, sleeps: Sleeps) -> None:
    server.route("/", replies(Reply(503)))
    client = fetcher(sleeps, attempts=6, backoff=10.0, max_wait=15.0)
    with client, pytest.raises(FetchError):
        client.get(f"{server.url}/")
    assert len(sleeps) == 5
    assert max(sleeps) <= 15.0


def test_a_client_error_is_not_retried_and_names_the_status(
    server: LoopbackServer, sleeps: Sleeps
) -> None:
    with fetcher(sleeps) as client, pytest.raises(FetchError) as caught:
        client.get(f"{server.url}/missing", {"q": "x"})
    assert caught.value.problem == "HTTP 404 Not Found"
    assert caught.value.url == f"{server.url}/missing?q=x"
    assert len(server.requests) == 1
    assert sleeps == []


def test_a_status_the_caller_accepts_is_returned_with_its_body(
    server: LoopbackServer, sleeps: Sleeps
) -> None:
    server.serve_bytes("/bad", b"<error/>", status=400)
    with fetcher(sleeps) as client:
        response = client.get(f"{server.url}/bad", ok_statuses=(200, 400))
    assert (response.status, response.content) == (400, b"<error/>")


def test_a_response_slower_than_the_read_timeout_is_retried_then_fails(
    server: LoopbackServer, sleeps: Sleeps
) -> None:
    server.route("/slow", replies(Reply(200, b"late", delay=0.5)))
    with fetcher(sleeps, timeout=0.15, attempts=2) as client, pytest.raises(FetchError) as caught:
        client.get(f"{server.url}/slow")
    assert caught.value.problem == "timed out after 2 attempts"
    assert len(server.requests) == 2
    assert len(sleeps) == 1


def test_a_slow_response_that_recovers_is_returned(server: LoopbackServer, sleeps: Sleeps) -> None:
    server.route("/slow", replies(Reply(200, b"late", delay=0.5), Reply(200, b"quick")))
    with fetcher(sleeps, timeout=0.15) as client:
        assert client.get(f"{server.url}/slow").content == b"quick"


def test_a_connection_reset_is_retried(server: LoopbackServer, sleeps: Sleeps) -> None:
    server.route("/", replies(Reply(reset=True), Reply(200, b"ok")))
    with fetcher(sleeps) as client:
        assert client.get(f"{server.url}/").content == b"ok"
    assert len(server.requests) == 2
    assert len(sleeps) == 1


def test_a_connection_that_keeps_resetting_fails_with_a_readable_problem(
    server: LoopbackServer, sleeps: Sleeps
) -> None:
    server.route("/", replies(Reply(reset=True)))
    with fetcher(sleeps, attempts=2) as client, pytest.raises(FetchError) as caught:
        client.get(f"{server.url}/")
    assert caught.value.problem in (
        "connection reset by the server after 2 attempts",
        "server closed the connection before the response was complete after 2 attempts",
    )
    assert "Traceback" not in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_truncated_body_is_retried(server: LoopbackServer, sleeps: Sleeps) -> None:
    server.route("/", replies(Reply(200, b"partial", truncate=True), Reply(200, b"complete")))
    with fetcher(sleeps) as client:
        assert client.get(f"{server.url}/").content == b"complete"
    assert len(server.requests) == 2


def test_a_body_that_is_always_truncated_fails(server: LoopbackServer, sleeps: Sleeps) -> None:
    server.route("/", replies(Reply(200, b"partial", truncate=True)))
    with fetcher(sleeps, attempts=2) as client, pytest.raises(FetchError) as caught:
        client.get(f"{server.url}/")
    assert "before the response was complete" in caught.value.problem


def test_a_gzip_body_is_decoded(server: LoopbackServer, sleeps: Sleeps) -> None:
    text = b'[{"paper": {"id": "2601.00001"}}]' * 50
    server.serve_bytes("/", gzip.compress(text), headers={"Content-Encoding": "gzip"})
    with fetcher(sleeps) as client:
        assert client.get(f"{server.url}/").content == text


def test_a_body_over_the_size_cap_is_refused(server: LoopbackServer, sleeps: Sleeps) -> None:
    server.serve_bytes("/", b"x" * 1000)
    with fetcher(sleeps, max_bytes=100) as client, pytest.raises(FetchError) as caught:
        client.get(f"{server.url}/")
    assert caught.value.problem == "response larger than 100 bytes"
    assert len(server.requests) == 1


def test_the_size_cap_counts_decoded_bytes_so_a_small_gzip_cannot_expand_past_it(
    server: LoopbackServer, sleeps: Sleeps
) -> None:
    bomb = gzip.compress(b"a" * 200_000)
    assert len(bomb) < 10_000
    server.serve_bytes("/", bomb, headers={"Content-Encoding": "gzip"})
    with fetcher(sleeps, max_bytes=10_000) as client, pytest.raises(FetchError) as caught:
        client.get(f"{server.url}/")
    assert caught.value.problem == "response larger than 10000 bytes"


def test_a_refused_connection_is_retried_then_reported(sleeps: Sleeps) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with fetcher(sleeps, attempts=2) as client, pytest.raises(FetchError) as caught:
        client.get(f"http://127.0.0.1:{port}/api")
    assert caught.value.problem == "connection refused after 2 attempts"
    assert len(sleeps) == 1


def test_a_second_unchanged_poll_is_a_conditional_request_answered_304(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'digest.db'}")
    with LoopbackServer() as server:
        serve_hf_api(server, MONTH, etag=True)
        url = f"{server.url}/api/daily_papers"
        params = {"date": "2026-01-05", "limit": 100, "p": 0}
        with Fetcher(cache=store) as fetcher:
            first = fetcher.get(url, params)
        with Fetcher(cache=store) as fetcher:
            second = fetcher.get(url, params)
    assert [r.status for r in (first, second)] == [200, 200]
    assert (first.not_modified, second.not_modified) == (False, True)
    assert second.content == first.content
    assert "if-none-match" not in server.requests[0].headers
    assert server.requests[1].headers["if-none-match"] == first.headers["etag"]
    store.close()


def test_last_modified_is_sent_back_as_if_modified_since(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'digest.db'}")
    stamp = "Mon, 05 Jan 2026 08:00:00 GMT"

    def handler(request: RecordedRequest) -> Reply:
        if request.headers.get("if-modified-since") == stamp:
            return Reply(304)
        return Reply(200, b"[]", {"Last-Modified": stamp})

    with LoopbackServer() as server:
        server.route("/feed", handler)
        for _ in range(2):
            with Fetcher(cache=store) as fetcher:
                response = fetcher.get(f"{server.url}/feed")
            assert response.content == b"[]"
    assert [r.headers.get("if-modified-since") for r in server.requests] == [None, stamp]
    store.close()
