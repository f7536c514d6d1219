"""`digest serve` over real HTTP on loopback: feeds and archive from output_dir, one-click
unsubscribe (RFC 8058) with the links of real emails, refusals of forged tokens and of
paths outside output_dir, and the confirm page in headless Chromium."""

from __future__ import annotations

import datetime as dt
import email.message
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import feedparser
import httpx
import pytest
from helpers import free_port, maildir_messages

from digest.cli import main
from digest.config import Config
from digest.pipeline import run
from digest.serve import DigestServer, make_server
from digest.store import ACTIVE, UNSUBSCRIBED, Store
from digest.tokens import load_secret, token

LINK = re.compile(r"<(https://papers\.example\.org/unsubscribe/([A-Za-z0-9_-]+))>")
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@contextmanager
def serving(config: Config) -> Iterator[DigestServer]:
    server = make_server(config, "127.0.0.1", 0)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def unsubscribe_links(config: Config) -> dict[str, str]:
    """Per recipient, the path of the https List-Unsubscribe link of their email."""
    assert config.delivery.maildir is not None
    links = {}
    for message in maildir_messages(config.delivery.maildir):
        found = LINK.search(str(message["List-Unsubscribe"]))
        assert found, message["List-Unsubscribe"]
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        links[recipient(message)] = "/unsubscribe/" + found.group(2)
    return links


def recipient(message: email.message.EmailMessage) -> str:
    return str(message["To"].addresses[0].addr_spec)


def state_of(config: Config, address: str) -> str:
    store = Store(config.database)
    try:
        return store.subscriber_state(address).state
    finally:
        store.close()


@pytest.fixture
def delivered(make_config: Callable[..., Config]) -> Config:
    """A configuration after one real run: emails in the Maildir, feeds in output_dir."""
    config = make_config()
    run(config, today=dt.date(2026, 1, 5))
    return config


def test_one_click_post_unsubscribes_at_once_and_a_second_post_is_still_200(
    delivered: Config,
) -> None:
    links = unsubscribe_links(delivered)
    address, path = sorted(links.items())[0]
    with serving(delivered) as server, httpx.Client(base_url=server.url) as http:
        page = http.get(path)
        assert page.status_code == 200
        assert state_of(delivered, address) == ACTIVE, "a GET never unsubscribes"
        first = http.post(path, data=ONE_CLICK)
        assert first.status_code == 200
        assert "unsubscribed" in first.text.lower() or "no more" in first.text
        assert state_of(delivered, address) == UNSUBSCRIBED
        again = http.post(path, data=ONE_CLICK)
        assert again.status_code == 200
        assert state_of(delivered, address) == UNSUBSCRIBED
        assert "already unsubscribed" in http.get(path).text
    others = {a for a in links if a != address}
    assert all(state_of(delivered, other) == ACTIVE for other in others)


def test_the_confirm_page_is_a_form_that_posts_one_click_and_acts_on_nothing(
    delivered: Config,
) -> None:
    address, path = sorted(unsubscribe_links(delivered).items())[0]
    with serving(delivered) as server, httpx.Client(base_url=server.url) as http:
        page = http.get(path)
        head = http.head(path)
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-store"
    assert "form-action 'self'" in page.headers["content-security-policy"]
    assert re.search(r'<form method="post"[^>]*>', page.text)
    assert 'name="List-Unsubscribe" value="One-Click"' in page.text
    assert address in page.text
    assert head.status_code == 200 and head.content == b""
    assert state_of(delivered, address) == ACTIVE


def test_a_forged_or_altered_token_is_refused_and_changes_nothing(delivered: Config) -> None:
    links = unsubscribe_links(delivered)
    path = sorted(links.values())[0]
    real = path.rsplit("/", 1)[1]
    altered = real[:-1] + ("A" if real[-1] != "A" else "B")
    other_secret = token(b"another instance's secret", sorted(links)[0], "unsubscribe")
    wrong_purpose = token(load_secret(delivered.data_dir), sorted(links)[0], "feed")
    with serving(delivered) as server, httpx.Client(base_url=server.url) as http:
        for bad in (altered, other_secret, wrong_purpose, "x", real + "A", "../" + real):
            assert http.get(f"/unsubscribe/{bad}").status_code in (400, 404), bad
            answer = http.post(f"/unsubscribe/{bad}", data=ONE_CLICK)
            assert answer.status_code in (400, 404, 405), bad
        # A real token with a body that is not the one-click field does nothing either.
        assert http.post(path, data={"List-Unsubscribe": "yes"}).status_code == 400
        assert http.post(path, content=b"").status_code == 400
    assert all(state_of(delivered, address) == ACTIVE for address in links)


def test_a_multipart_one_click_post_is_understood(delivered: Config) -> None:
    address, path = sorted(unsubscribe_links(delivered).items())[-1]
    with serving(delivered) as server, httpx.Client(base_url=server.url) as http:
        answer = http.post(path, files={"List-Unsubscribe": (None, "One-Click")})
    assert answer.status_code == 200
    assert state_of(delivered, address) == UNSUBSCRIBED


def test_an_unsubscribed_address_is_skipped_by_later_runs_and_listed_as_such(
    delivered: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    links = unsubscribe_links(delivered)
    leaver = "agents@example.org"
    with serving(delivered) as server, httpx.Client(base_url=server.url) as http:
        assert http.post(links[leaver], data=ONE_CLICK).status_code == 200
    before = len(maildir_messages(delivered.delivery.maildir or Path()))
    result = run(delivered, today=dt.date(2026, 1, 6))
    assert leaver not in {p.email for p in result.planned}
    assert result.planned, "the others still get their digests"
    after = maildir_messages(delivered.delivery.maildir or Path())
    assert len(after) == before + len(result.planned)
    assert leaver not in {recipient(m) for m in after[before:]}

    assert main(["subscribers", "--config", str(delivered.path)]) == 0
    listing = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in listing[1:]}
    assert rows[leaver][0] == UNSUBSCRIBED
    assert rows["vision@example.org"][0] == ACTIVE
    assert rows["vision@example.org"][1].startswith("2026-")  # last sent
    assert "one-click" in " ".join(rows[leaver])

    assert main(["subscribers", "--config", str(delivered.path), "--activate", leaver]) == 0
    assert state_of(delivered, leaver) == ACTIVE
    assert main(["subscribers", "--config", str(delivered.path), "--unsubscribe", leaver]) == 0
    assert state_of(delivered, leaver) == UNSUBSCRIBED
    assert main(["subscribers", "--config", str(delivered.path), "--activate", leaver]) == 0
    assert main(["subscribers", "--config", str(delivered.path), "--activate", "x@y.org"]) == 2
    capsys.readouterr()
    assert main(["status", "--config", str(delivered.path)]) == 0
    assert "0 unsubscribed or suppressed" in capsys.readouterr().out


def test_the_link_of_a_subscriber_whose_file_was_removed_still_unsubscribes(
    delivered: Config,
) -> None:
    links = unsubscribe_links(delivered)
    (delivered.subscribers_dir / "vision.toml").unlink()
    with serving(delivered) as server, httpx.Client(base_url=server.url) as http:
        assert http.post(links["vision@example.org"], data=ONE_CLICK).status_code == 200
    assert state_of(delivered, "vision@example.org") == UNSUBSCRIBED


def test_a_subscriber_added_while_serving_can_unsubscribe_without_a_restart(
    delivered: Config,
) -> None:
    with serving(delivered) as server, httpx.Client(base_url=server.url) as http:
        (delivered.subscribers_dir / "new.toml").write_text(
            'email = "new@example.org"\n\n[interests]\nkeywords = ["x"]\n'
        )
        link = token(load_secret(delivered.data_dir), "new@example.org", "unsubscribe")
        assert http.post(f"/unsubscribe/{link}", data=ONE_CLICK).status_code == 200
    assert state_of(delivered, "new@example.org") == UNSUBSCRIBED


def test_feeds_and_archive_are_served_with_their_content_types(delivered: Config) -> None:
    archive = delivered.output_dir / "archive" / "2026-01-05.html"
    archive.parent.mkdir(parents=True, exist_ok=True)
    if not archive.exists():
        archive.write_text("<!DOCTYPE html><title>5 January</title>")
    private = sorted((delivered.output_dir / "feeds" / "private").glob("*.atom"))
    assert private
    with serving(delivered) as server, httpx.Client(base_url=server.url) as http:
        atom = http.get("/feeds/papers.atom")
        rss = http.get("/feeds/papers.rss")
        page = http.get("/archive/2026-01-05.html")
        mine = http.get(f"/feeds/private/{private[0].name}")
        cached = http.get("/feeds/papers.atom", headers={"If-None-Match": atom.headers["etag"]})
    assert atom.headers["content-type"] == "application/atom+xml; charset=utf-8"
    assert rss.headers["content-type"] == "application/rss+xml; charset=utf-8"
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert atom.content == (delivered.output_dir / "feeds" / "papers.atom").read_bytes()
    assert page.content == archive.read_bytes()
    assert feedparser.parse(rss.content).bozo == 0
    assert mine.status_code == 200 and mine.headers["cache-control"].startswith("private")
    assert cached.status_code == 304 and cached.content == b""


def test_nothing_outside_output_dir_and_no_directory_listing_is_served(
    delivered: Config, tmp_path: Path
) -> None:
    (tmp_path / "outside.txt").write_text("secret")
    (delivered.output_dir / "escape").symlink_to(tmp_path / "outside.txt")
    (delivered.output_dir / ".hidden").write_text("hidden")
    attempts = [
        "/../digest.toml",
        "/%2e%2e/digest.toml",
        "/feeds/%2e%2e/%2e%2e/digest.toml",
        "/feeds/..%2f..%2fdigest.toml",
        "/%2Fetc%2Fpasswd",
        "/escape",
        "/.hidden",
        "/feeds/",
        "/feeds/private/",
        "/secret",
        "/nothing-here.atom",
    ]
    with serving(delivered) as server:
        for path in attempts:
            # Raw requests: an HTTP client would normalise "..", a hostile one does not.
            status, body = raw_get(server, path)
            assert status == 404, (path, status)
            assert b"secret" not in body and b"private/" not in body, path
        # A folder with an index.html is served as that page (the archive's front door).
        (delivered.output_dir / "feeds" / "index.html").write_text("<title>feeds</title>")
        assert raw_get(server, "/feeds/") == (200, b"<title>feeds</title>")


def raw_get(server: DigestServer, path: str) -> tuple[int, bytes]:
    host, port = server.server_address[:2]
    with socket.create_connection((str(host), int(port)), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


def test_digest_serve_runs_as_a_command_and_stops_cleanly_on_sigterm(delivered: Config) -> None:
    address, path = sorted(unsubscribe_links(delivered).items())[0]
    port = free_port()
    command = ["serve", "--config", str(delivered.path), "--port", str(port)]
    process = subprocess.Popen(
        [sys.executable, "-m", "digest.cli", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port)
        answer = httpx.post(f"http://127.0.0.1:{port}{path}", data=ONE_CLICK)
        assert answer.status_code == 200
        assert state_of(delivered, address) == UNSUBSCRIBED
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert f"http://127.0.0.1:{port}" in err
    assert path.rsplit("/", 1)[1] not in err, "tokens stay out of the access log"


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port}")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_headless_chromium_shows_the_confirm_form(delivered: Config, tmp_path: Path) -> None:
    address, path = sorted(unsubscribe_links(delivered).items())[0]
    assert CHROMIUM is not None
    with serving(delivered) as server:
        result = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                f"--user-data-dir={tmp_path / 'chromium'}",
                "--dump-dom",
                f"{server.url}{path}",
            ],
            capture_output=True,
            text=True,
            timeout=90,
            env={**os.environ, "HOME": str(tmp_path)},
        )
    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r'<form method="post" id="unsubscribe">', dom), dom[:2000]
    assert re.search(r'<input type="hidden" name="List-Unsubscribe" value="One-Click">', dom)
    assert re.search(r'<button type="submit">Unsubscribe</button>', dom)
    assert address in dom
    assert state_of(delivered, address) == ACTIVE, "opening the page unsubscribed nobody"
