"""The daily job stage by stage, each against a naive baseline measured in the same process.

    python benchmarks/stages.py STAGE --work DIR [--subscribers N] [--json]

STAGE is one of:

- `fetch`: papers parsed per second from every capture (`benchmarks/fetch.py`'s
  `parse_rate`); the baseline is the bare JSON/XML decode of the same bytes.
- `match`: subscriber-papers scored per second by `pipeline.plan_digests` (what a run
  calls, whichever matcher path that is) for N generated subscribers on the 24 papers of
  2026-01-13; the baseline is the per-pair loop that analyses the paper again for every
  subscriber (`match.select` without the run's shared analysis), on a sample. Also times
  loading the N subscriber files. Writes the digests to DIR for the next stages.
- `render`: complete messages per second (`pipeline.render_message`: both templates, the
  MIME message, its bytes) for every digest of the day, about 9,000 for 10,000
  subscribers, with one `Renderer` as in `digest run`; the baseline builds a fresh
  `Renderer` (a new Jinja environment, the CSS inlined again) for every message, on a
  sample. Writes the outbox entries to DIR.
- `deliver`: messages per second from the outbox (`deliver.drain_outbox` over
  `SMTPTransport`, no rate limit) to an aiosmtpd sink in its own process. The baseline
  opens a new SMTP connection per message; the limit is a minimal smtplib client sending
  the same bytes over one connection. Ours and the limit take turns, three passes each,
  and each keeps its best pass. The outbox bookkeeping alone is timed with a transport
  that sends nothing.
- `phases`: where the time of one whole run goes: the steps of `pipeline.run` called one
  by one in this process (load the configuration, fetch from the loopback API, plan,
  render and queue, write the feeds and the archive, drain the outbox to the sink), each
  timed. No baseline: this is the breakdown of `end_to_end.py`'s figure.

Each stage runs in a process of its own (`run_all.py` starts them), so its peak RSS is its
own. Each prints one JSON object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import pickle
import random
import shutil
import smtplib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from _common import (
    DAY,
    MONTH,
    SENDER,
    loopback_server,
    minimal_client,
    peak_rss_mb,
    rate,
    sink_process,
    subscribers_dir,
    write_config,
)

from digest import pipeline
from digest.config import Config, DeliveryConfig, load_config
from digest.deliver import SMTPTransport, drain_outbox, open_transport
from digest.match import CorpusStats, analyse, select
from digest.models import Digest, Paper
from digest.render import Renderer
from digest.sources.huggingface import parse_api
from digest.store import OutboxEntry, Store
from digest.tokens import load_secret

T = TypeVar("T")
TODAY = dt.date.fromisoformat(DAY)
NOW = dt.datetime(2026, 1, 13, 7, 0, tzinfo=dt.UTC)
MATCH_SAMPLE = 300
RENDER_SAMPLE = 150
DELIVER_MESSAGES = 2000
DELIVER_BASELINE = 400
DELIVER_PASSES = 3


def day_papers() -> list[Paper]:
    return parse_api((MONTH / f"{DAY}.json").read_bytes(), day=TODAY)


def fresh_store(work: Path, name: str) -> Store:
    path = work / f"{name}.db"
    for leftover in work.glob(f"{name}.db*"):
        leftover.unlink()
    return Store(f"sqlite:///{path}")


def stage_fetch(work: Path, count: int) -> dict[str, Any]:
    from fetch import parse_rate  # benchmarks/fetch.py

    parse = parse_rate()
    floor = parse["baseline_decode_only_seconds"]
    return {
        "papers_per_second": parse["papers_per_second"],
        "baseline_papers_per_second": round(parse["papers"] / floor),
        "baseline": "json.loads / lxml on the same bytes, no Papers built",
        "detail": parse,
    }


def stage_match(work: Path, count: int) -> dict[str, Any]:
    folder = subscribers_dir(work, count)
    path = write_config(work, server="http://127.0.0.1:9", smtp_port=25, subscribers=folder)
    start = time.perf_counter()
    config = load_config(path)
    load_seconds = time.perf_counter() - start
    store = fresh_store(work, "match")
    papers = day_papers()
    store.record_papers(papers, NOW)
    start = time.perf_counter()
    digests = pipeline.plan_digests(config, store, TODAY, TODAY)
    ours = time.perf_counter() - start
    pairs = len(config.subscribers) * len(papers)

    sample = random.Random(8).sample(list(config.subscribers), min(MATCH_SAMPLE, count))
    stats = CorpusStats.from_analysed(analyse(paper) for paper in papers)
    start = time.perf_counter()
    for subscriber in sample:
        select(subscriber, papers, stats)  # no shared analysis: every pair from scratch
    naive = time.perf_counter() - start
    store.close()
    with (work / "digests.pickle").open("wb") as out:
        pickle.dump(digests, out)
    sizes = [len(d.matches) for d in digests]
    ours_rate = rate(pairs, ours)
    naive_rate = rate(len(sample) * len(papers), naive)
    return {
        "subscribers": count,
        "papers": len(papers),
        "seconds": round(ours, 3),
        "subscriber_papers_per_second": ours_rate,
        "baseline_subscriber_papers_per_second": naive_rate,
        "baseline": f"per-pair loop, each paper analysed per subscriber ({len(sample)} sampled)",
        "speedup": round(ours_rate / naive_rate, 2) if naive_rate else None,
        "digests": len(digests),
        "subscribers_with_nothing": count - len(digests),
        "papers_per_digest": round(sum(sizes) / len(sizes), 2) if sizes else 0,
        "load_subscriber_files_seconds": round(load_seconds, 3),
    }


def _config(work: Path, count: int) -> Config:
    folder = subscribers_dir(work, count)
    path = write_config(work, server="http://127.0.0.1:9", smtp_port=25, subscribers=folder)
    return load_config(path)


def stage_render(work: Path, count: int) -> dict[str, Any]:
    config = _config(work, count)
    with (work / "digests.pickle").open("rb") as stream:
        digests: list[Digest] = pickle.load(stream)
    secret = load_secret(config.data_dir)
    start = time.perf_counter()
    renderer = Renderer(title=config.title, templates=config.templates)
    setup = time.perf_counter() - start
    start = time.perf_counter()
    entries = [pipeline.outbox_entry(config, renderer, secret, d, NOW) for d in digests]
    ours = time.perf_counter() - start
    start = time.perf_counter()
    for digest in digests:
        renderer.render(digest, pipeline.links_for(config, secret, digest))
    templates_only = time.perf_counter() - start

    sample = digests[:RENDER_SAMPLE]
    start = time.perf_counter()
    for digest in sample:
        fresh = Renderer(title=config.title, templates=config.templates)
        pipeline.render_message(config, fresh, secret, digest, NOW)
    naive = time.perf_counter() - start
    with (work / "outbox.pickle").open("wb") as out:
        pickle.dump(entries, out)
    ours_rate = rate(len(digests), ours)
    naive_rate = rate(len(sample), naive)
    templates_rate = rate(len(digests), templates_only)
    sizes = [len(entry.message) for entry in entries]
    return {
        "emails": len(digests),
        "seconds": round(ours, 3),
        "emails_per_second": ours_rate,
        "baseline_emails_per_second": naive_rate,
        "baseline": f"a fresh Renderer (Jinja environment + CSS inlining) per message "
        f"({len(sample)} sampled)",
        "speedup": round(ours_rate / naive_rate, 2) if naive_rate else None,
        "templates_only_emails_per_second": templates_rate,
        "mime_message_share_of_time": round(1 - templates_only / ours, 2) if ours else None,
        "renderer_setup_seconds": round(setup, 3),
        "mean_message_bytes": round(sum(sizes) / len(sizes)) if sizes else 0,
    }


class ConnectionPerMessage:
    """The naive transport: connect, send, quit, for every message."""

    def __init__(self, port: int) -> None:
        self.port = port

    def send(self, sender: str, recipient: str, message: bytes) -> None:
        with smtplib.SMTP("127.0.0.1", self.port) as connection:
            connection.sendmail(sender, [recipient], message)

    def close(self) -> None:
        pass


class Nowhere:
    """Sends nothing: what is left is the outbox's own bookkeeping."""

    def send(self, sender: str, recipient: str, message: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def _drain(work: Path, entries: list[OutboxEntry], transport: Any) -> float:
    store = fresh_store(work, "deliver")
    store.queue_many(entries, NOW)
    start = time.perf_counter()
    report = drain_outbox(store, transport, SENDER, NOW)
    seconds = time.perf_counter() - start
    transport.close()
    store.close()
    if report.sent != len(entries):
        raise SystemExit(f"deliver: sent {report.sent} of {len(entries)}")
    return seconds


def stage_deliver(work: Path, count: int) -> dict[str, Any]:
    with (work / "outbox.pickle").open("rb") as stream:
        entries: list[OutboxEntry] = pickle.load(stream)[:DELIVER_MESSAGES]
    messages = [(entry.subscriber, entry.message) for entry in entries]
    naive_entries = entries[:DELIVER_BASELINE]
    with sink_process() as sink:
        settings = DeliveryConfig(
            transport="smtp", host="127.0.0.1", port=sink.port, security="none", rate=0
        )
        # The limit and ours take turns, as many passes each, and each keeps its best:
        # the machine's speed drifts by more than the gap being measured.
        limits, passes = [], []
        for _ in range(DELIVER_PASSES):
            limits.append(minimal_client(sink.port, messages))
            sink.reset()
            passes.append(_drain(work, entries, SMTPTransport(settings)))
            received = sink.reset()
            if received["messages"] != len(entries):
                raise SystemExit(f"deliver: the sink saw {received}")
        naive = _drain(work, naive_entries, ConnectionPerMessage(sink.port))
        naive_received = sink.reset()
    bookkeeping = _drain(work, entries, Nowhere())
    if naive_received["connections"] != len(naive_entries):
        raise SystemExit(f"deliver: the sink saw {naive_received}")
    ours, limit = min(passes), min(limits)
    ours_rate = rate(len(entries), ours)
    naive_rate = rate(len(naive_entries), naive)
    limit_rate = rate(len(entries), limit)
    return {
        "messages": len(entries),
        "mean_message_bytes": round(sum(len(m) for _, m in messages) / len(messages)),
        "seconds": round(ours, 3),
        "messages_per_second": ours_rate,
        "baseline_messages_per_second": naive_rate,
        "baseline": f"drain_outbox with a new SMTP connection per message "
        f"({len(naive_entries)} messages)",
        "speedup": round(ours_rate / naive_rate, 2) if naive_rate else None,
        "limit_messages_per_second": limit_rate,
        "limit": f"minimal smtplib client, same bytes, one connection (best of "
        f"{DELIVER_PASSES} passes, taking turns with ours)",
        "passes_messages_per_second": [rate(len(entries), t) for t in passes],
        "limit_passes_messages_per_second": [rate(len(entries), t) for t in limits],
        "fraction_of_limit": round(ours_rate / limit_rate, 3) if limit_rate else None,
        "bookkeeping_only_ms_per_message": round(bookkeeping / len(entries) * 1000, 2),
        "connections": int(received["connections"]),
    }


def stage_phases(work: Path, count: int) -> dict[str, Any]:
    folder = subscribers_dir(work, count)
    data = work / "phases"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir()
    seconds: dict[str, float] = {}

    def timed(name: str, work: Callable[[], T]) -> T:
        start = time.perf_counter()
        result = work()
        seconds[name] = round(time.perf_counter() - start, 3)
        return result

    with loopback_server(data) as server, sink_process() as sink:
        path = write_config(data, server=server, smtp_port=sink.port, subscribers=folder)
        config = timed("load_config", lambda: load_config(path))
        store = Store(config.database)
        now = dt.datetime.now(dt.UTC)
        timed("fetch", lambda: pipeline.fetch_all(config, store, TODAY, None, now))
        secret = load_secret(config.data_dir)
        renderer = Renderer(title=config.title, templates=config.templates)
        digests = timed("plan", lambda: pipeline.plan_digests(config, store, TODAY, TODAY))
        timed(
            "render_and_queue",
            lambda: pipeline.queue_digests(config, store, renderer, secret, digests, now),
        )
        changed = {digest.subscriber.email for digest in digests}
        timed(
            "write_feeds",
            lambda: pipeline.write_feeds(config, store, secret, changed, today=TODAY),
        )
        transport = open_transport(config.delivery)
        report = timed("deliver", lambda: drain_outbox(store, transport, SENDER, now))
        transport.close()
        store.close()
        arrived = sink.counts()
    if report.sent != len(digests) or arrived["messages"] != len(digests):
        raise SystemExit(f"phases: {len(digests)} digests, {report}, the sink got {arrived}")
    total = sum(seconds.values())
    return {
        "subscribers": count,
        "digests": len(digests),
        "seconds": round(total, 3),
        "phases_seconds": seconds,
        "phases_share": {name: round(value / total, 3) for name, value in seconds.items()},
    }


STAGES = {
    "fetch": stage_fetch,
    "match": stage_match,
    "render": stage_render,
    "deliver": stage_deliver,
    "phases": stage_phases,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("stage", choices=sorted(STAGES))
    parser.add_argument("--work", type=Path, required=True, help="folder shared by the stages")
    parser.add_argument("--subscribers", type=int, default=10_000)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result = STAGES[args.stage](args.work, args.subscribers)
    result = {"stage": args.stage, **result}
    result["stage_seconds"] = round(time.perf_counter() - started, 2)
    result["peak_rss_mb"] = peak_rss_mb()
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
