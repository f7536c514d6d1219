"""The delivery ledger's bulk queries: digests queued a run at a time, and the history of
many subscribers at once (their private feeds and the archive)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa

from digest.store.records import DigestRecord, OutboxEntry, _iso, _items, _items_json
from digest.store.schema import QUEUED, delivered_papers_table, deliveries_table


def queue(
    connection: sa.Connection,
    insert: Callable[[sa.Table], Any],
    entries: Iterable[OutboxEntry],
    now: dt.datetime,
) -> int:
    """Each new digest of `entries` into the outbox, and its papers marked as given, in
    the caller's transaction: how many were queued (those already queued are left)."""
    fresh: dict[tuple[str, str], OutboxEntry] = {}
    for entry in entries:
        fresh.setdefault((entry.subscriber.lower(), entry.digest_key), entry)
    if not fresh:
        return 0
    # Statements for the whole batch (executemany), not two per digest.
    known = connection.execute(
        sa.select(deliveries_table.c.subscriber, deliveries_table.c.digest_key).where(
            deliveries_table.c.subscriber.in_({s for s, _ in fresh})
            & deliveries_table.c.digest_key.in_({k for _, k in fresh})
        )
    )
    for subscriber, key in known:
        fresh.pop((subscriber, key), None)
    if not fresh:
        return 0
    created = _iso(now)
    connection.execute(
        insert(deliveries_table).on_conflict_do_nothing(),
        [
            {
                "subscriber": subscriber,
                "digest_key": key,
                "digest_date": entry.digest_date.isoformat(),
                "state": QUEUED,
                "message_id": entry.message_id,
                "message": entry.message,
                "items": _items_json(entry.items),
                "created_at": created,
                "attempts": 0,
            }
            for (subscriber, key), entry in fresh.items()
        ],
    )
    given = [
        {"subscriber": subscriber, "paper_id": item.paper_id, "digest_key": key}
        for (subscriber, key), entry in fresh.items()
        for item in entry.items
    ]
    if given:
        connection.execute(insert(delivered_papers_table).on_conflict_do_nothing(), given)
    return len(fresh)


def history(
    connection: sa.Connection, subscribers: Iterable[str], limit: int
) -> dict[str, list[DigestRecord]]:
    """Lower-cased address → their latest `limit` digests, newest first, without the
    message bytes."""
    wanted = sorted({address.lower() for address in subscribers})
    if not wanted:
        return {}
    d = deliveries_table.c
    number = (
        sa.func.row_number()
        .over(partition_by=d.subscriber, order_by=(d.digest_date.desc(), d.id.desc()))
        .label("number")
    )
    latest = (
        sa.select(d.subscriber, d.digest_key, d.digest_date, d["items"], number)
        .where(d.subscriber.in_(wanted))
        .subquery()
    )
    query = (
        sa.select(latest)
        .where(latest.c.number <= limit)
        .order_by(latest.c.subscriber, latest.c.number)
    )
    history: dict[str, list[DigestRecord]] = {}
    for row in connection.execute(query):
        history.setdefault(row.subscriber, []).append(
            DigestRecord(row.digest_key, dt.date.fromisoformat(row.digest_date), _items(row.items))
        )
    return history
