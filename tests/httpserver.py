"""A real HTTP server on 127.0.0.1 for tests: serves captures and misbehaves on request.

    with LoopbackServer() as server:
        server.serve_bytes("/x", b"hello")
        server.route("/flaky", replies(Reply(503), Reply(200, b"ok")))
        serve_hf_api(server, FIXTURES / "hf" / "api-month")
        ... fetch f"{server.url}/x" ...
        assert server.requests[0].headers["user-agent"].startswith("digest/")

Routes are matched on the path and, when a route names a query, on those query values;
the route registered last wins, so a test can override a general route with a specific one.
Requests with no route get a 404. Every request is recorded in `server.requests`, in order.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import socket
import struct
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from xml.etree import ElementTree as ET


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]  # the last value of each parameter
    headers: dict[str, str]  # names lower-cased
    body: bytes = b""


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering
    truncate: bool = False  # declare a longer Content-Length than is sent, then close
    reset: bool = False  # close the connection without any response (TCP reset)


Handler = Callable[[RecordedRequest], Reply]


def replies(*sequence: Reply) -> Handler:
    """A handler answering with each reply in turn, then repeating the last one."""
    if not sequence:
        raise ValueError("replies() needs at least one Reply")
    pending = list(sequence)
    lock = threading.Lock()

    def handler(_request: RecordedRequest) -> Reply:
        with lock:
            return pending.pop(0) if len(pending) > 1 else pending[0]

    return handler


class LoopbackServer:
    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._routes: list[tuple[str, dict[str, str] | None, Handler]] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _RequestHandler)
        self._server.owner = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing.set()  # wakes handlers that are sleeping through a `delay`
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def route(self, path: str, handler: Handler, *, query: dict[str, str] | None = None) -> None:
        with self._lock:
            self._routes.append((path, query, handler))

    def serve_bytes(
        self,
        path: str,
        body: bytes,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> None:
        reply = Reply(status=status, body=body, headers=dict(headers or {}))
        self.route(path, lambda _request: reply, query=query)

    def serve_file(
        self, path: str, file: Path, *, content_type: str, query: dict[str, str] | None = None
    ) -> None:
        def handler(_request: RecordedRequest) -> Reply:
            return Reply(body=file.read_bytes(), headers={"Content-Type": content_type})

        self.route(path, handler, query=query)

    def paths(self) -> list[str]:
        """The paths requested so far, in order (a shorthand for assertions)."""
        with self._lock:
            return [request.path for request in self.requests]

    def _record(self, request: RecordedRequest) -> Handler | None:
        with self._lock:
            self.requests.append(request)
            for path, query, handler in reversed(self._routes):
                if path == request.path and all(
                    request.query.get(key) == value for key, value in (query or {}).items()
                ):
                    return handler
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: LoopbackServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that give up (timeouts) make writes fail; that is expected here


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: simple and predictable

    def do_GET(self) -> None:
        self._answer()

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def do_POST(self) -> None:
        self._answer()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, *, send_body: bool = True) -> None:
        owner = self.server.owner
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = RecordedRequest(
            method=self.command,
            path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        handler = owner._record(request)
        if handler is None:
            reply = Reply(404, b"no route for " + split.path.encode())
        else:
            try:
                reply = handler(request)
            except Exception:  # a broken test handler should be visible, not a hang
                reply = Reply(500, traceback.format_exc().encode())
        if reply.delay and owner._closing.wait(reply.delay):
            return
        if reply.reset:
            self._reset()
            return
        self.send_response(reply.status)
        names = {name.lower() for name in reply.headers}
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if "content-length" not in names:
            declared = len(reply.body) * 2 + 1 if reply.truncate else len(reply.body)
            self.send_header("Content-Length", str(declared))
        self.end_headers()
        if send_body:
            self.wfile.write(reply.body)

    def _reset(self) -> None:
        # SO_LINGER 0 makes close() send RST instead of FIN: an abrupt reset, not a clean EOF.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.wfile.close()
        self.connection.close()


def serve_hf_api(
    server: LoopbackServer,
    folder: Path,
    *,
    pattern: str = "{date}.json",
    path: str = "/api/daily_papers",
    etag: bool = False,
) -> None:
    """Serve a folder of `/api/daily_papers?date=D` captures like the real API.

    `folder / pattern.format(date=D)` holds the day's JSON list; a day without a file is
    `[]` (weekends). `limit` (default 50, as on huggingface.co) and `p` slice the list, and
    an invalid date is HTTP 400, as the real server answers. With `etag`, answers carry an
    ETag of their body and a matching `If-None-Match` gets an empty 304.
    """

    def handler(request: RecordedRequest) -> Reply:
        try:
            day = date.fromisoformat(request.query.get("date", ""))
            limit = int(request.query.get("limit", "50"))
            page = int(request.query.get("p", "0"))
        except ValueError as exc:
            return Reply(400, json.dumps({"error": str(exc)}).encode(), _JSON)
        file = folder / pattern.format(date=day.isoformat())
        items = json.loads(file.read_bytes()) if file.exists() else []
        chunk = items[page * limit : (page + 1) * limit]
        body = json.dumps(chunk, ensure_ascii=False).encode()
        if not etag:
            return Reply(200, body, _JSON)
        tag = f'"{hashlib.sha1(body).hexdigest()}"'
        if request.headers.get("if-none-match") == tag:
            return Reply(304, b"", {"ETag": tag})
        return Reply(200, body, {**_JSON, "ETag": tag})

    server.route(path, handler)


def hf_days(folder: Path, *, pattern: str = "{date}.json") -> Iterator[date]:
    """The days a capture folder holds, in order."""
    prefix, _, suffix = pattern.partition("{date}")
    for file in sorted(folder.glob(f"{prefix}*{suffix}")):
        yield date.fromisoformat(file.name[len(prefix) : len(file.name) - len(suffix)])


# An arXiv export API answer (2026), whose first entry stands in for any paper asked for.
ARXIV_API = (
    Path(__file__).parent
    / "fixtures"
    / "arxiv"
    / "api"
    / "2026-04-12_search_all_testing_start0_max10.xml"
)
_ATOM = {"atom": "http://www.w3.org/2005/Atom"}


def arxiv_api_answer(request: RecordedRequest, *, leave_out: str = "") -> Reply:
    """The export API's answer to an id_list query, from its real answer: an entry per id
    asked for (but `leave_out`), the capture's first entry with that id, the title "Title
    of ID" and the abstract "Abstract of ID."."""
    root = ET.fromstring(ARXIV_API.read_bytes())
    template = root.findall("atom:entry", _ATOM)[0]
    for entry in root.findall("atom:entry", _ATOM):
        root.remove(entry)
    for paper_id in request.query["id_list"].split(","):
        if paper_id == leave_out:
            continue
        entry = copy.deepcopy(template)
        for tag, text in (
            ("atom:id", f"http://arxiv.org/abs/{paper_id}v1"),
            ("atom:title", f"Title of {paper_id}"),
            ("atom:summary", f"Abstract of {paper_id}."),
        ):
            node = entry.find(tag, _ATOM)
            assert node is not None
            node.text = text
        for link in entry.findall("atom:link", _ATOM):  # the abs and pdf links name it too
            link.set("href", re.sub(r"\d{4}\.\d{4,5}", paper_id, link.get("href", "")))
        root.append(entry)
    body = ET.tostring(root, xml_declaration=True, encoding="utf-8")
    return Reply(200, body, {"Content-Type": "application/atom+xml"})


_JSON = {"Content-Type": "application/json; charset=utf-8"}
