"""`digest status`: what ran, what each subscriber was last sent, what waits to be sent."""

from __future__ import annotations

from digest.config import Config
from digest.store import DEFERRED, FAILED, QUEUED, Store


def status_lines(config: Config) -> list[str]:
    store = Store(config.database)
    try:
        lines = ["Last runs:"]
        runs = store.recent_runs(5)
        lines += [
            f"  {r.run_date}  {r.status:<7} started {r.started_at}  {r.message}" for r in runs
        ] or ["  none yet"]
        lines.append("Subscribers:")
        for subscriber in config.subscribers:
            last = store.deliveries_for(subscriber.email, 1)
            if last:
                d = last[0]
                seen = f"{d.digest_key} ({len(d.items)} papers, {d.state})"
            else:
                seen = "nothing sent yet"
            lines.append(f"  {subscriber.email:<32} {seen}")
        waiting = store.deliveries_in_state(QUEUED, DEFERRED, FAILED)
        lines.append(f"Outbox: {len(waiting)} waiting or failed")
        lines += [
            f"  {d.state:<8} {d.digest_key} to {d.subscriber}"
            + (f" (attempts {d.attempts}: {d.last_error})" if d.last_error else "")
            for d in waiting
        ]
        return lines
    finally:
        store.close()
