"""Crash test: `digest run` killed with SIGKILL at random moments, rerun until it finishes.

A loopback Hugging Face API (the bundled captures) and a loopback SMTP server (aiosmtpd)
run in this process; `digest run` runs as a real subprocess (`python -m digest.cli run`)
for N subscribers that all get a digest (broad keywords and `send_empty = true`). Each
attempt is killed with SIGKILL at one of these moments, chosen at random:

- fetch:     the API server kills the run when its request arrives;
- render:    a timer kills it a random time after the API answered, before the first
             message: while it stores, matches, renders and queues;
- rcpt:      the SMTP server kills it at the RCPT of the n-th message of the attempt
             (the message was not accepted);
- data:      the SMTP server accepts the n-th message, then kills the run before it can
             read the "250": the RFC 1047 gap, where a resend is expected;
- anytime:   a timer kills it a random time after start (whatever it was doing).

Then it reruns (and kills again) until all kills are spent and one run completes. At the
end every subscriber must hold exactly one distinct Message-ID; a second copy is allowed
only for the message in flight at a kill (the last one the server accepted before it),
and it must carry the same Message-ID. The report counts kills per phase, copies, and
how often the 250-to-commit gap produced a duplicate.

    .venv/bin/python benchmarks/crash.py [--subscribers 200] [--kills 30] [--seed 7]
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller

from digest.demo import CAPTURES
from digest.store import DEFERRED, FAILED, QUEUED, SENT, SKIPPED, Store

DAY = "2026-01-09"
KINDS = ("fetch", "render", "rcpt", "data", "anytime")
DELIVERY_STATES = (QUEUED, SENT, DEFERRED, FAILED, SKIPPED)
KEYWORDS = ["language model", "reasoning", "video", "agent", "diffusion", "learning", "data"]


# the loopback servers --------------------------------------------------------------------


@dataclass
class Attempt:
    """One `digest run` process and how (if at all) it was killed."""

    number: int
    kind: str | None
    pid: int = 0
    target: int = 0  # rcpt/data: the n-th message of this attempt
    delay: float = 0.0  # render: seconds after the API answered; anytime: after start
    api_requests: int = 0
    api_done_at: float | None = None
    rcpts: int = 0
    first_rcpt_at: float | None = None
    accepted: list[tuple[str, str]] = field(default_factory=list)  # (recipient, Message-ID)
    killed: bool = False
    phase: str = ""
    exit_code: int | None = None
    seconds: float = 0.0


class Campaign:
    """The shared state the servers' handlers act on."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.attempt: Attempt | None = None
        self.received: list[tuple[str, str, int]] = []  # (recipient, Message-ID, attempt)

    def kill(self, attempt: Attempt) -> None:
        with self.lock:
            if attempt.killed or attempt.pid == 0:
                return
            attempt.killed = True
        # The run's whole process group: a large run sends from a child process (the
        # courier), which must die with it, as both would in a crash of the machine.
        members = _group(attempt.pid)
        os.killpg(attempt.pid, signal.SIGKILL)
        for pid in members:
            _wait_until_dead(pid)


def _group(pgid: int) -> list[int]:
    """The processes of a process group (from /proc)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def _wait_until_dead(pid: int, timeout: float = 5.0) -> None:
    """SIGKILL is delivered asynchronously: make sure the process can no longer act (it
    is a zombie or gone) before a handler answers it."""
    deadline = time.monotonic() + timeout
    stat = Path(f"/proc/{pid}/stat")
    while time.monotonic() < deadline:
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):  # gone (reaped), or /proc vanished under us
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.001)


class _ApiHandler(BaseHTTPRequestHandler):
    server: _ApiServer

    def do_GET(self) -> None:
        campaign = self.server.campaign
        attempt = campaign.attempt
        if attempt is not None:
            attempt.api_requests += 1
            if attempt.kind == "fetch":
                campaign.kill(attempt)
                return
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        day = query.get("date", [""])[0]
        path = CAPTURES / f"{day}.json"
        items = json.loads(path.read_bytes()) if path.exists() else []
        limit = int(query.get("limit", ["50"])[0])
        page = int(query.get("p", ["0"])[0])
        body = json.dumps(items[page * limit : (page + 1) * limit]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if attempt is not None:
            attempt.api_done_at = time.monotonic()

    def log_message(self, format: str, *args: object) -> None:
        pass


class _ApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, campaign: Campaign) -> None:
        super().__init__(("127.0.0.1", 0), _ApiHandler)
        self.campaign = campaign

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a killed client leaves broken pipes behind


class _SmtpHandler:
    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        attempt = self.campaign.attempt
        if attempt is not None:
            attempt.rcpts += 1
            attempt.first_rcpt_at = attempt.first_rcpt_at or time.monotonic()
            if attempt.kind == "rcpt" and attempt.rcpts == attempt.target:
                self.campaign.kill(attempt)
                return "451 4.3.0 killed"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.SMTP)
        recipient = envelope.rcpt_tos[0].lower()
        message_id = str(message["Message-ID"])
        attempt = self.campaign.attempt
        number = attempt.number if attempt else -1
        with self.campaign.lock:
            self.campaign.received.append((recipient, message_id, number))
            if attempt is not None:
                attempt.accepted.append((recipient, message_id))
        if (
            attempt is not None
            and attempt.kind == "data"
            and len(attempt.accepted) == attempt.target
        ):
            self.campaign.kill(attempt)  # accepted here; the client never reads the 250
        return "250 2.0.0 accepted"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def servers(campaign: Campaign) -> Iterator[tuple[str, int]]:
    api = _ApiServer(campaign)
    thread = threading.Thread(target=api.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    port = _free_port()
    smtp = Controller(_SmtpHandler(campaign), hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        yield f"http://127.0.0.1:{api.server_address[1]}", port
    finally:
        smtp.stop()
        api.shutdown()
        api.server_close()


# the installation ------------------------------------------------------------------------


def write_installation(folder: Path, subscribers: int, api_url: str, smtp_port: int) -> Path:
    (folder / "subscribers").mkdir(parents=True, exist_ok=True)
    for n in range(subscribers):
        keywords = ", ".join(f'"{k}"' for k in KEYWORDS)
        (folder / "subscribers" / f"s{n:03d}.toml").write_text(
            f'email = "reader{n:03d}@example.org"\nsend_empty = true\nmax_papers = 10\n\n'
            f"[interests]\nkeywords = [{keywords}]\n"
        )
    path = folder / "digest.toml"
    path.write_text(
        f"""\
[digest]
title = "Crash test"
base_url = "https://papers.example.org"
sender = "Paper digest <digest@example.org>"
timezone = "UTC"
database = "sqlite:///digest.db"

[[sources]]
kind = "huggingface"
base_url = "{api_url}"

[delivery]
transport = "smtp"
host = "127.0.0.1"
port = {smtp_port}
security = "none"
rate = 0
timeout = 10
"""
    )
    return path


def start_run(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "digest.cli", "run", "--config", str(config), "--date", DAY, "-v"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, killed as one (`Campaign.kill`)
    )


# the campaign ----------------------------------------------------------------------------


@dataclass
class Report:
    subscribers: int
    kills_planned: int
    kills: int
    kills_by_phase: dict[str, int]
    kills_by_moment: dict[str, int]
    attempts: int
    final_exit_code: int | None
    messages_received: int
    subscribers_with_one_message_id: int
    subscribers_missing: int
    subscribers_with_two_message_ids: int
    duplicate_copies: int
    duplicates_in_the_250_to_commit_gap: int
    duplicates_unexplained: int
    data_kills: int
    full_run_seconds: float
    total_seconds: float
    peak_rss_mb: float
    ok: bool
    attempt_log: list[dict[str, Any]]
    final_states: dict[str, int] = field(default_factory=dict)


def run_campaign(
    folder: Path,
    subscribers: int = 200,
    kills: int = 30,
    seed: int = 7,
    plan: Sequence[str] = (),
) -> Report:
    """`plan` fixes the kinds of the first kills (the rest are drawn at random among the
    kinds that still have something to interrupt)."""
    rng = random.Random(seed)
    planned = list(plan) or _draw_plan(rng, kills)
    campaign = Campaign()
    started = time.monotonic()
    with servers(campaign) as (api_url, smtp_port):
        config = write_installation(folder, subscribers, api_url, smtp_port)
        timing = _calibrate(folder, subscribers, api_url, smtp_port)
        attempts: list[Attempt] = []
        left = kills
        while True:
            unsent = subscribers - len({r for r, _, _ in campaign.received})
            queued = _queued(folder)
            kind = None
            if left:
                kind = planned.pop(0) if planned else _pick(rng, unsent, queued, subscribers)
                if (kind == "render" and queued >= subscribers) or (
                    kind in ("rcpt", "data") and not unsent
                ):
                    kind = "anytime"  # nothing left to render, or to send
            attempt = Attempt(len(attempts) + 1, kind)
            if kind in ("rcpt", "data"):
                # Spread the sending kills over what is left to send.
                attempt.target = rng.randint(1, max(1, min(unsent, 2 * unsent // max(left, 1))))
            elif kind == "render":
                # Digests are rendered, then queued in large transactions: aim anywhere
                # between the API's answer and the first message.
                attempt.delay = rng.uniform(0.0, 0.6 * timing["render"])
            elif kind == "anytime":
                # Within what is left of a run: earlier attempts did part of the work.
                remaining = (
                    timing["startup"]
                    + timing["render"] * (subscribers - queued) / subscribers
                    + timing["send"] * unsent / subscribers
                )
                attempt.delay = rng.uniform(0.0, 0.9 * remaining)
            _play(campaign, attempt, config)
            attempts.append(attempt)
            if attempt.killed:
                left -= 1
            elif attempt.exit_code == 0 and left == 0:
                break
            if len(attempts) > 4 * kills + 10:
                break
    store = Store(f"sqlite:///{folder / 'digest.db'}")
    try:
        states = Counter(d.state for d in store.deliveries_in_state(*DELIVERY_STATES))
    finally:
        store.close()
    total = timing["startup"] + timing["render"] + timing["send"]
    report = _report(campaign, attempts, subscribers, kills, total, started)
    report.final_states = dict(states)
    report.ok = report.ok and states == Counter({SENT: subscribers})
    return report


def _draw_plan(rng: random.Random, kills: int) -> list[str]:
    """Kill kinds in equal shares, at random; rendering kills first, since the first run
    that reaches sending has queued every digest and leaves nothing to render."""
    kinds = [KINDS[n % len(KINDS)] for n in range(kills)]
    rng.shuffle(kinds)
    early = [k for k in kinds if k in ("render", "fetch")][: 2 * kinds.count("render")]
    rest = list(kinds)
    for kind in early:
        rest.remove(kind)
    return early + rest


def _pick(rng: random.Random, unsent: int, queued: int, subscribers: int) -> str:
    kinds = ["fetch", "anytime"]
    if queued < subscribers:
        kinds.append("render")
    if unsent:
        kinds += ["rcpt", "data"]
    return rng.choice(kinds)


def _queued(folder: Path) -> int:
    """Digests in the outbox so far (any state), as the run's own store counts them."""
    if not (folder / "digest.db").exists():
        return 0
    store = Store(f"sqlite:///{folder / 'digest.db'}")
    try:
        return sum(len(keys) for keys in store.digest_keys_by_subscriber().values())
    finally:
        store.close()


def _play(campaign: Campaign, attempt: Attempt, config: Path) -> None:
    began = time.monotonic()
    process = start_run(config)
    attempt.pid = process.pid
    campaign.attempt = attempt
    watcher: threading.Thread | None = None
    if attempt.kind in ("anytime", "render"):
        watcher = threading.Thread(target=_timed_kill, args=(campaign, attempt, began))
    if watcher is not None:
        watcher.daemon = True
        watcher.start()
    _, err = process.communicate(timeout=600)
    attempt.exit_code = process.returncode
    attempt.seconds = round(time.monotonic() - began, 3)
    campaign.attempt = None
    if watcher is not None:
        watcher.join(timeout=5)
    if attempt.killed:
        attempt.phase = _phase(attempt, err)


def _timed_kill(campaign: Campaign, attempt: Attempt, began: float) -> None:
    start = began
    if attempt.kind == "render":
        # From the moment the API answered: storing, matching, rendering, queueing.
        while attempt.api_done_at is None:
            if attempt.exit_code is not None or campaign.attempt is not attempt:
                return
            time.sleep(0.001)
        start = attempt.api_done_at
    wait = start + attempt.delay - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    if attempt.exit_code is None and campaign.attempt is attempt:
        campaign.kill(attempt)


def _phase(attempt: Attempt, stderr: str) -> str:
    """Where the run was when it died, from what the servers saw and what it logged."""
    if attempt.rcpts or attempt.accepted:
        return "sending"
    # The API has answered: the run stores the papers, then matches, renders and queues.
    if " papers for " in stderr or attempt.api_done_at is not None:
        return "render/queue"
    if attempt.api_requests:
        return "fetch"
    return "startup"


def _calibrate(folder: Path, subscribers: int, api_url: str, smtp_port: int) -> dict[str, float]:
    """Time the stages of one uninterrupted run of the same size, in a folder of its own."""
    campaign = Campaign()
    with servers(campaign) as (api, port):
        config = write_installation(folder / "calibration", subscribers, api, port)
        attempt = Attempt(0, None)
        began = time.monotonic()
        process = start_run(config)
        attempt.pid = process.pid
        campaign.attempt = attempt
        process.communicate(timeout=600)
        end = time.monotonic()
    fetched = attempt.api_done_at or began
    sending = attempt.first_rcpt_at or end
    return {"startup": fetched - began, "render": sending - fetched, "send": end - sending}


def _report(
    campaign: Campaign,
    attempts: list[Attempt],
    subscribers: int,
    kills: int,
    full_run: float,
    started: float,
) -> Report:
    by_recipient: dict[str, list[str]] = {}
    for recipient, message_id, _ in campaign.received:
        by_recipient.setdefault(recipient, []).append(message_id)
    expected = {f"reader{n:03d}@example.org" for n in range(subscribers)}
    one_id = sum(1 for r in expected if len(set(by_recipient.get(r, []))) == 1)
    two_ids = sum(1 for r in expected if len(set(by_recipient.get(r, []))) > 1)
    missing = sum(1 for r in expected if r not in by_recipient)
    # The message in flight at each kill: the last one the server accepted in that attempt.
    in_flight = Counter(a.accepted[-1] for a in attempts if a.killed and a.accepted)
    copies = Counter((r, m) for r, m, _ in campaign.received)
    duplicates = {key: count - 1 for key, count in copies.items() if count > 1}
    explained = sum(min(extra, in_flight[key]) for key, extra in duplicates.items())
    unexplained = sum(duplicates.values()) - explained
    killed = [a for a in attempts if a.killed]
    final = attempts[-1].exit_code if attempts else None
    ok = (
        one_id == subscribers
        and two_ids == 0
        and missing == 0
        and unexplained == 0
        and final == 0
        and len(killed) == kills
    )
    return Report(
        subscribers=subscribers,
        kills_planned=kills,
        kills=len(killed),
        kills_by_phase=dict(Counter(a.phase for a in killed)),
        kills_by_moment=dict(Counter(a.kind or "" for a in killed)),
        attempts=len(attempts),
        final_exit_code=final,
        messages_received=len(campaign.received),
        subscribers_with_one_message_id=one_id,
        subscribers_missing=missing,
        subscribers_with_two_message_ids=two_ids,
        duplicate_copies=sum(duplicates.values()),
        duplicates_in_the_250_to_commit_gap=explained,
        duplicates_unexplained=unexplained,
        data_kills=sum(1 for a in killed if a.kind == "data"),
        full_run_seconds=round(full_run, 3),
        total_seconds=round(time.monotonic() - started, 3),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        ok=ok,
        attempt_log=[
            {
                key: value
                for key, value in asdict(a).items()
                if key not in ("accepted", "api_done_at", "first_rcpt_at")
            }
            | {"accepted": len(a.accepted)}
            for a in attempts
        ],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--folder", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--attempts", action="store_true", help="include every attempt")
    args = parser.parse_args(argv)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="digest-crash-") as tmp:
        folder = args.folder or Path(tmp)
        report = run_campaign(folder, args.subscribers, args.kills, args.seed)
    data = asdict(report)
    if not args.attempts:
        data.pop("attempt_log")
    print(json.dumps(data, indent=2))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
