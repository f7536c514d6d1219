"""`digest serve`: the small web app behind `base_url`.

It serves `output_dir` (public and private feeds, archive pages) and answers the
unsubscribe links of every email:

- `GET /unsubscribe/<token>` shows a page with one button. It never acts by itself: mail
  scanners and link previews fetch URLs (RFC 8058 exists for that reason).
- `POST /unsubscribe/<token>` with the form body `List-Unsubscribe=One-Click` (what mail
  providers send for RFC 8058 one-click, and what the page's button sends) records the
  unsubscribe at once and answers 200; doing it again is harmless and answers 200 again.

A token is an HMAC of the address (see `tokens.py`), so it needs no table and cannot be
forged or altered: an unknown token is a 404 and changes nothing. Directory listings are
never served (they would list every private feed), nor anything outside `output_dir`.

The server is the standard library's threading HTTP server: meant to sit behind a
reverse proxy that terminates TLS for `base_url`.
"""

from __future__ import annotations

import datetime as dt
import email.parser
import email.policy
import html
import logging
import mimetypes
import re
import signal
import threading
from collections.abc import Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from urllib.parse import parse_qs, unquote, urlsplit

from digest.config import Config, load_subscribers
from digest.errors import ConfigError, DigestError
from digest.store import UNSUBSCRIBED, Store
from digest.tokens import find_subscriber, load_secret

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")
_SECRET_PATHS = re.compile(r"(/unsubscribe/|/feeds/private/)[^/?\s\"]+")
CONTENT_TYPES = {
    ".atom": "application/atom+xml; charset=utf-8",
    ".rss": "application/rss+xml; charset=utf-8",
    ".xml": "application/xml; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".json": "application/json",
}
_PAGE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


class DigestServer(ThreadingHTTPServer):
    """The HTTP server with what its handlers need: settings, store, token secret."""

    daemon_threads = True

    def __init__(self, config: Config, host: str, port: int) -> None:
        self.config = config
        self.root = config.output_dir.resolve()
        self.secret = load_secret(config.data_dir)
        self.store = Store(config.database)
        self._subscribers_lock = threading.Lock()
        self._addresses = {s.email.lower() for s in config.subscribers}
        try:
            super().__init__((host, port), _Handler)
        except OSError as error:
            self.store.close()
            raise DigestError(f"cannot listen on {host}:{port}: {error.strerror}") from error

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}"

    def server_close(self) -> None:
        super().server_close()
        self.store.close()

    def subscriber_for(self, token: str) -> str | None:
        """The address this unsubscribe token belongs to, or None for a forged one."""
        if not _TOKEN.fullmatch(token):
            return None
        found = find_subscriber(self.secret, token, self._candidates())
        if found is None:
            # Subscriber files may have changed since the server started.
            with self._subscribers_lock:
                try:
                    fresh = load_subscribers(self.config.subscribers_dir)
                except ConfigError as error:
                    log.warning("subscriber files not reloaded: %s", error)
                else:
                    self._addresses = {s.email.lower() for s in fresh}
            found = find_subscriber(self.secret, token, self._candidates())
        return found

    def _candidates(self) -> Iterable[str]:
        # The store knows addresses whose file was removed: their links must still work.
        return sorted(self._addresses | self.store.known_addresses())


class _Handler(BaseHTTPRequestHandler):
    server: DigestServer
    server_version = "digest"
    sys_version = ""

    def do_GET(self) -> None:
        self._get(head=False)

    def do_HEAD(self) -> None:
        self._get(head=True)

    def do_POST(self) -> None:
        token = self._unsubscribe_token()
        if token is None:
            self._page(HTTPStatus.METHOD_NOT_ALLOWED, "Not allowed", "Nothing to post here.")
            return
        address = self.server.subscriber_for(token)
        if address is None:
            self._unknown_link()
            return
        body = self._read_body()
        if body is None:
            return
        if not _is_one_click(self.headers.get("Content-Type", ""), body):
            self._page(
                HTTPStatus.BAD_REQUEST,
                "Not understood",
                "An unsubscribe request carries the form field List-Unsubscribe=One-Click.",
            )
            return
        changed = self.server.store.set_subscriber_state(
            address, UNSUBSCRIBED, "one-click unsubscribe", dt.datetime.now(dt.UTC)
        )
        if changed:
            log.info("unsubscribed %s", address)
        title = self.server.config.title
        self._page(
            HTTPStatus.OK,
            "Unsubscribed",
            f"{_e(address)} will receive no more emails from {_e(title)}.",
        )

    # GET ----------------------------------------------------------------------------------

    def _get(self, head: bool) -> None:
        token = self._unsubscribe_token()
        if token is not None:
            self._confirm_page(token, head)
            return
        self._static(head)

    def _confirm_page(self, token: str, head: bool) -> None:
        address = self.server.subscriber_for(token)
        if address is None:
            self._unknown_link(head)
            return
        title = self.server.config.title
        state = self.server.store.subscriber_state(address).state
        if state == UNSUBSCRIBED:
            text = f"{_e(address)} is already unsubscribed from {_e(title)}."
            self._page(HTTPStatus.OK, "Already unsubscribed", text, head=head)
            return
        form = (
            f"<p>Stop sending {_e(title)} to <strong>{_e(address)}</strong>?</p>\n"
            # No action attribute: the form posts back to this very URL, whatever prefix a
            # reverse proxy put in front of it.
            '<form method="post" id="unsubscribe">\n'
            '<input type="hidden" name="List-Unsubscribe" value="One-Click">\n'
            '<button type="submit">Unsubscribe</button>\n'
            "</form>"
        )
        self._page(HTTPStatus.OK, f"Unsubscribe from {title}", form, raw=True, head=head)

    def _static(self, head: bool) -> None:
        path = self._resolve(urlsplit(self.path).path)
        if path is None:
            self._page(HTTPStatus.NOT_FOUND, "Not found", "Nothing here.", head=head)
            return
        stat = path.stat()
        etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
        cache = (
            "private, no-cache"
            if "private" in path.relative_to(self.server.root).parts
            else "no-cache"
        )
        if etag in [t.strip() for t in self.headers.get("If-None-Match", "").split(",")]:
            self.send_response(HTTPStatus.NOT_MODIFIED)
            self.send_header("ETag", etag)
            self.send_header("Cache-Control", cache)
            self.end_headers()
            return
        data = path.read_bytes()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type(path))
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", self.date_time_string(int(stat.st_mtime)))
        self.send_header("Cache-Control", cache)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def _resolve(self, url_path: str) -> Path | None:
        """The file under output_dir that `url_path` names, or None: no "..", no hidden
        files, nothing reached through a link that points outside, no directory listing."""
        root = self.server.root
        text = unquote(url_path)
        if "\0" in text or "\\" in text:
            return None
        parts = [part for part in text.split("/") if part]
        if any(part.startswith(".") for part in parts):
            return None
        path = root.joinpath(*parts).resolve()
        if path.is_dir():
            path = path / "index.html"
        if not path.is_relative_to(root) or not path.is_file():
            return None
        return path

    # helpers -----------------------------------------------------------------------------

    def _unsubscribe_token(self) -> str | None:
        path = urlsplit(self.path).path
        prefix = "/unsubscribe/"
        if not path.startswith(prefix):
            return None
        return unquote(path[len(prefix) :]).strip("/")

    def _read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._page(HTTPStatus.LENGTH_REQUIRED, "Length required", "Send a Content-Length.")
            return None
        if int(length) > MAX_BODY:
            self._page(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Too large", "The body is too large.")
            return None
        return self.rfile.read(int(length))

    def _unknown_link(self, head: bool = False) -> None:
        self._page(
            HTTPStatus.NOT_FOUND,
            "Unknown link",
            "This unsubscribe link is not valid. Use the link from the latest email.",
            head=head,
        )

    def _page(
        self,
        status: HTTPStatus,
        heading: str,
        body: str,
        *,
        raw: bool = False,
        head: bool = False,
    ) -> None:
        content = body if raw else f"<p>{body}</p>"
        data = _PAGE.format(title=_e(heading), body=content).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", _PAGE_POLICY)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        # Tokens in paths are secrets: keep them out of the log.
        log.info("%s %s", self.address_string(), _SECRET_PATHS.sub(r"\1…", format % args))


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 32rem; margin: 4rem auto;
       padding: 0 1rem; color: #1f2328; line-height: 1.5; }}
button {{ font: inherit; padding: .5rem 1.25rem; border: 1px solid #1f2328;
         border-radius: 6px; background: #1f2328; color: #fff; cursor: pointer; }}
</style>
</head>
<body>
<h1>{title}</h1>
{body}
</body>
</html>
"""


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _is_one_click(content_type: str, body: bytes) -> bool:
    """RFC 8058: the body is the form field List-Unsubscribe=One-Click, urlencoded or
    (as some providers send it) multipart/form-data."""
    if content_type.lower().startswith("multipart/form-data"):
        header = f"Content-Type: {content_type}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + body)
        for part in message.iter_parts() if message.is_multipart() else ():
            params = part.get_params(header="content-disposition") or []
            if ("name", "List-Unsubscribe") in params:
                value = part.get_payload(decode=True)
                return isinstance(value, bytes) and value.strip() == b"One-Click"
        return False
    try:
        fields = parse_qs(body.decode("ascii"), keep_blank_values=True)
    except UnicodeDecodeError:
        return False
    return fields.get("List-Unsubscribe") == ["One-Click"]


def content_type(path: Path) -> str:
    known = CONTENT_TYPES.get(path.suffix.lower())
    if known:
        return known
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def make_server(config: Config, host: str = "127.0.0.1", port: int = 8080) -> DigestServer:
    """A bound, not yet serving server (port 0 picks a free one)."""
    return DigestServer(config, host, port)


def serve(config: Config, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve until SIGTERM or Ctrl-C."""
    server = make_server(config, host, port)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        # shutdown() waits for serve_forever() to return: call it from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous = signal.signal(signal.SIGTERM, stop)
    log.info("serving %s on %s (links point to %s)", server.root, server.url, config.base_url)
    try:
        server.serve_forever()
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()
