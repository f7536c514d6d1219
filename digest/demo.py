"""`digest demo`: the whole pipeline, offline, on real captured Hugging Face days.

It serves the bundled captures of a week of Daily Papers on a loopback port, exactly as
the Hugging Face API answers (`/api/daily_papers?date=…&limit=…&p=…`), writes a
configuration that points at that server, and runs `digest run` once per day for the
example subscribers, delivering into a local Maildir. Tests reuse `CaptureServer` to
replay captured days.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import json
import mailbox
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from digest.config import load_config
from digest.errors import DigestError
from digest.pipeline import run
from digest.resources import builtin_dir

CAPTURES = Path(__file__).parent / "captures" / "hf-api"
_MARKER = ".digest-demo"


class CaptureHandler(BaseHTTPRequestHandler):
    """The Daily Papers API answered from a folder of day captures (the benchmarks extend
    it to serve more)."""

    server: CaptureServer

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path != "/api/daily_papers" or "date" not in query:
            self._reply(404, b'{"error":"Not Found"}')
            return
        day = query["date"][0]
        try:
            dt.date.fromisoformat(day)
        except ValueError:
            self._reply(400, b'{"error":"Invalid date"}')
            return
        path = self.server.folder / f"{day}.json"
        items = json.loads(path.read_bytes()) if path.exists() else []
        limit = int(query.get("limit", ["50"])[0])
        page = int(query.get("p", ["0"])[0])
        body = json.dumps(items[page * limit : (page + 1) * limit]).encode()
        etag = f'"{hashlib.sha1(body).hexdigest()}"'
        if self.headers.get("If-None-Match") == etag:
            self._reply(304, b"", etag)
        else:
            self._reply(200, body, etag)

    def _reply(self, status: int, body: bytes, etag: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        if etag:
            self.send_header("ETag", etag)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # the demo's output is the summary, not an access log


class CaptureServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, folder: Path) -> None:
        super().__init__(("127.0.0.1", 0), CaptureHandler)
        self.folder = folder


@contextmanager
def capture_server(folder: Path = CAPTURES) -> Iterator[str]:
    """Serve `<folder>/<YYYY-MM-DD>.json` as the Daily Papers API; yields the base URL.

    Like the real API, answers carry an ETag and a matching `If-None-Match` gets a 304.
    """
    with serving(CaptureServer(folder)) as url:
        yield url


@contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[str]:
    """Run `server` (bound to 127.0.0.1) in a thread; yields its base URL."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def capture_days(folder: Path = CAPTURES) -> list[dt.date]:
    return sorted(dt.date.fromisoformat(path.stem) for path in folder.glob("*.json"))


@dataclass(frozen=True)
class DemoResult:
    days: tuple[dt.date, ...]
    server_url: str
    emails: dict[str, int]
    maildir: Path
    feeds_dir: Path
    feed_files: tuple[Path, ...]
    sample_email: Path | None


CONFIG_TEMPLATE = """\
# Written by `digest demo`. Try: digest run --config {config} --date 2026-01-09
[digest]
title = "Trending papers (demo)"
base_url = "http://localhost:8080"
sender = "Paper digest <digest@example.org>"
timezone = "UTC"
database = "sqlite:///digest.db"
output_dir = "public"
subscribers = "subscribers"

[[sources]]
kind = "huggingface"
base_url = "{server}"

[delivery]
transport = "maildir"
maildir = "maildir"
"""


def run_demo(output: Path) -> DemoResult:
    """Run the demo into `output`, starting afresh each time."""
    output = output.resolve()
    _fresh_folder(output)
    shutil.copytree(builtin_dir("subscribers"), output / "subscribers")
    days = capture_days()
    with capture_server() as server:
        config_path = output / "digest.toml"
        config_path.write_text(CONFIG_TEMPLATE.format(config=config_path, server=server))
        config = load_config(config_path)
        for day in days:
            run(config, today=day)
    assert config.delivery.maildir is not None
    maildir = config.delivery.maildir
    emails = {subscriber.email: 0 for subscriber in config.subscribers}
    sample = None
    box = mailbox.Maildir(maildir, create=False)
    for key in sorted(box.keys()):
        address = email.utils.parseaddr(box.get_message(key)["To"])[1].lower()
        emails[address] = emails.get(address, 0) + 1
        sample = sample or maildir / "new" / key
    feeds_dir = config.output_dir / "feeds"
    return DemoResult(
        days=tuple(days),
        server_url=server,
        emails=emails,
        maildir=maildir,
        feeds_dir=feeds_dir,
        feed_files=tuple(sorted(feeds_dir.rglob("*.atom")) + sorted(feeds_dir.rglob("*.rss"))),
        sample_email=sample,
    )


def _fresh_folder(output: Path) -> None:
    """Empty a previous demo's folder, but never a folder the demo did not create."""
    if output.exists():
        if not (output / _MARKER).exists():
            if any(output.iterdir()):
                raise DigestError(f"{output} exists and is not a demo folder; choose --output")
        else:
            shutil.rmtree(output)
    output.mkdir(parents=True, exist_ok=True)
    (output / _MARKER).write_text("Created by `digest demo`; it may delete this folder.\n")
