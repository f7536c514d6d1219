"""`digest status`: what ran, what each subscriber was last sent, what waits to be sent,
what failed, and which addresses are unsubscribed or suppressed."""

from __future__ import annotations

from collections import Counter

from digest.config import Config
from digest.store import ACTIVE, DEFERRED, FAILED, QUEUED, Store


def status_lines(config: Config) -> list[str]:
    store = Store(config.database)
    try:
        lines = ["Last runs:"]
        runs = store.recent_runs(5)
        lines += [
            f"  {r.run_date}  {r.status:<7} started {r.started_at}  {r.message}" for r in runs
        ] or ["  none yet"]
        lines.append("Subscribers:")
        states = store.subscriber_states()
        for subscriber in config.subscribers:
            last = store.deliveries_for(subscriber.email, 1)
            if last:
                d = last[0]
                seen = f"{d.digest_key} ({len(d.items)} papers, {d.state})"
            else:
                seen = "nothing sent yet"
            state = states.get(subscriber.email.lower())
            flag = f"  [{state.state}]" if state and state.state != ACTIVE else ""
            lines.append(f"  {subscriber.email:<32} {seen}{flag}")
        waiting = store.deliveries_in_state(QUEUED, DEFERRED, FAILED)
        counts = Counter(d.state for d in waiting)
        summary = ", ".join(f"{counts[s]} {s}" for s in (QUEUED, DEFERRED, FAILED))
        lines.append(f"Outbox: {summary}")
        lines += [
            f"  {d.state:<8} {d.digest_key} to {d.subscriber}"
            + (f" (attempts {d.attempts}: {d.last_error})" if d.last_error else "")
            for d in waiting
        ]
        blocked = sorted((s for s in states.values() if s.state != ACTIVE), key=lambda s: s.email)
        lines.append(f"Not sent to: {len(blocked)} unsubscribed or suppressed")
        lines += [
            f"  {s.state:<12} {s.email}  since {s.changed_at}"
            + (f": {s.reason}" if s.reason else "")
            for s in blocked
        ]
        return lines
    finally:
        store.close()
