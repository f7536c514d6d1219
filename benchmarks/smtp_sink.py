"""A loopback SMTP server that accepts and counts everything: what the benchmarks deliver to.

    python benchmarks/smtp_sink.py

Started by `_common.sink_process()` as a separate process. It prints {"port": N} once it
listens, then answers each line on stdin ("counts" or "reset") with one JSON line of
what it received (`FIELDS`); it stops when stdin closes. Messages are counted, not parsed, so the
sink costs as little as an SMTP server can.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from typing import Any

from aiosmtpd.controller import Controller

# What the sink counts; "first" and "last" are the arrival times (time.time()) of the first
# and the last message since the last reset.
FIELDS = ("messages", "recipients", "bytes", "connections", "first", "last")


class Counting:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.numbers: dict[str, float] = dict.fromkeys(FIELDS, 0)

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        with self.lock:
            self.numbers["connections"] += 1
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            now = time.time()  # comparable across processes, unlike perf_counter
            self.numbers["first"] = self.numbers["first"] or now
            self.numbers["last"] = now
            self.numbers["messages"] += 1
            self.numbers["recipients"] += len(envelope.rcpt_tos)
            self.numbers["bytes"] += len(envelope.original_content or b"")
        return "250 Message accepted"

    def take(self, reset: bool) -> dict[str, float]:
        with self.lock:
            numbers = dict(self.numbers)
            if reset:
                self.numbers = dict.fromkeys(self.numbers, 0)
        return numbers


def main() -> None:
    handler = Counting()
    with socket.socket() as probe:  # a free port (aiosmtpd's self-check needs a real one)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        print(json.dumps({"port": port}), flush=True)
        for line in sys.stdin:
            print(json.dumps(handler.take(reset=line.strip() == "reset")), flush=True)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
