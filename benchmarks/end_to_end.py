"""`digest run` end to end for N generated subscribers, and the machine's limit beside it.

    python benchmarks/end_to_end.py [--subscribers 10000] [--runs 3] [--work DIR]

Each run is the real command (`digest run --date 2026-01-13`) in a fresh data folder: it
fetches the 24 papers of that day from the Hugging Face API served on loopback by
`digest.demo`'s capture server, matches them against N subscriber files generated from
the corpus vocabulary, renders, queues, writes the feeds and the archive, and delivers
over SMTP (no rate limit) to an aiosmtpd sink in its own process. Reported: the median
wall time of the runs and the peak RSS of the `digest` process (os.wait4), and the rate
at which messages reached the sink (first to last arrival).

The limit, in the same run: a minimal smtplib client sends the very message bytes of the
last run over one connection to the same sink; our delivery rate is given as a fraction
of it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import (
    Sink,
    arrival_rate,
    digest_command,
    load_average,
    loopback_server,
    measure_command,
    median,
    minimal_client,
    rate,
    sink_process,
    subscribers_dir,
    write_config,
)

from digest.store import SENT, Store


def one_run(data: Path, subscribers: Path, server: str, sink: Sink) -> dict[str, Any]:
    """`digest run` once in a fresh `data` folder; what it took and what arrived."""
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    config = write_config(data, server=server, smtp_port=sink.port, subscribers=subscribers)
    sink.reset()
    measured = measure_command(digest_command(config), output=data / "output.txt")
    arrived = sink.reset()
    if measured.returncode != 0:
        raise SystemExit(f"digest run failed ({measured.returncode}): see {data / 'output.txt'}")
    store = Store(f"sqlite:///{data / 'digest.db'}")
    sent = store.deliveries_in_state(SENT)
    store.close()
    if len(sent) != arrived["messages"]:
        raise SystemExit(f"{len(sent)} digests marked sent but the sink got {arrived}")
    return {
        "seconds": measured.seconds,
        "peak_rss_mb": measured.peak_rss_mb,
        "digests_sent": len(sent),
        "papers_sent": sum(len(delivery.items) for delivery in sent),
        "delivery_messages_per_second": arrival_rate(arrived),
        "smtp_connections": int(arrived["connections"]),
    }


def end_to_end(work: Path, count: int, runs: int, server: str, sink: Sink) -> dict[str, Any]:
    subscribers = subscribers_dir(work, count)
    results = [one_run(work / f"e2e-{n}", subscribers, server, sink) for n in range(runs)]
    store = Store(f"sqlite:///{work / f'e2e-{runs - 1}' / 'digest.db'}")
    messages = [(d.subscriber, d.message) for d in store.deliveries_in_state(SENT)]
    store.close()
    limit_seconds = minimal_client(sink.port, messages)
    sink.reset()
    limit_rate = rate(len(messages), limit_seconds)
    ours = median([r["delivery_messages_per_second"] for r in results])
    seconds = median([r["seconds"] for r in results])
    rss = max(r["peak_rss_mb"] for r in results)
    return {
        "subscribers": count,
        "runs": runs,
        "seconds_median": seconds,
        "peak_rss_mb_max": rss,
        "digests_sent": results[-1]["digests_sent"],
        "papers_sent": results[-1]["papers_sent"],
        "delivery_messages_per_second_median": ours,
        "limit_messages_per_second": limit_rate,
        "limit": "minimal smtplib client, the last run's message bytes, one connection",
        "delivery_fraction_of_limit": round(ours / limit_rate, 3) if limit_rate else None,
        "mean_message_bytes": round(sum(len(m) for _, m in messages) / max(len(messages), 1)),
        "each_run": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, help="keep the data folders here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="digest-bench-") as scratch:
        work = args.work or Path(scratch)
        with loopback_server(work) as server, sink_process() as sink:
            before = load_average()
            result = end_to_end(work, args.subscribers, args.runs, server, sink)
    json.dump({"benchmark": "end_to_end", "load_average_before": before, **result}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
