"""`Outbox`: what the delivery loop reads and records, message by message.

Each outcome is committed on its own as it happens (a crash must not forget a "250"), so
this is the hottest path of a run: thousands of small transactions. One connection is held
for the whole drain and every statement is built once, which makes recording a send one
short committed transaction (~0.1 ms) instead of ~1 ms of per-call setup: at 10,000
messages that is the difference between delivery near the SMTP server's own pace and half
of it.

On SQLite the marks are committed one by one but synced to disk together, at most
`SYNC_INTERVAL` apart (group commit; WAL with synchronous=NORMAL in between). A killed
process loses no committed mark: they are in the operating system's cache. A power cut or
kernel crash can forget the marks of the last quarter second, and those messages go out
again after the restart, with the same Message-ID (which mail clients use to drop the
copy). A disk sync per message cost about a tenth of the delivery rate.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from digest.store.records import SubscriberState, _iso, _subscriber_state
from digest.store.schema import (
    ACTIVE,
    DEFERRED,
    FAILED,
    SENT,
    SKIPPED,
    SUPPRESSED,
    deliveries_table,
    subscribers_table,
)

SYNC_INTERVAL = 0.25  # seconds

_UPDATE_DELIVERY = deliveries_table.update().where(
    deliveries_table.c.id == sa.bindparam("delivery_id")
)
_SUBSCRIBER = sa.select(subscribers_table).where(
    subscribers_table.c.email == sa.bindparam("address")
)
_CLEAR_FAILURES = (
    subscribers_table.update()
    .where(subscribers_table.c.email == sa.bindparam("address"))
    .values(hard_failures=0)
)


class Outbox:
    """Delivery bookkeeping over one held connection; `Store.outbox()` opens it."""

    def __init__(self, connection: sa.Connection, insert: Callable[[sa.Table], Any]) -> None:
        self._connection = connection
        self._insert = insert
        self._sqlite = connection.dialect.name == "sqlite"  # the fast paths below
        self._states: dict[str, SubscriberState] | None = None
        self._data_version: object = None
        self._statements: dict[tuple[str, ...], tuple[str, tuple[str, ...]]] = {}
        self._synced_at = time.monotonic()
        self._unsynced = False
        if self._sqlite:
            self._raw().execute("PRAGMA synchronous=NORMAL")

    def close(self) -> None:
        """Give the connection back as it was: every other write syncs as it commits."""
        if self._sqlite:
            self._raw().execute("PRAGMA synchronous=FULL")

    def _raw(self) -> Any:
        raw = self._connection.connection.dbapi_connection
        assert raw is not None
        return raw

    def subscriber_state(self, email: str) -> SubscriberState:
        """The address's state now: an unsubscribe committed by `digest serve` a moment
        ago counts. On SQLite the recorded states are read once and again only when
        another connection has committed since (`PRAGMA data_version`), which is a
        microsecond, not a transaction per message."""
        email = email.lower()
        if not self._sqlite:
            with self._connection.begin():
                row = self._connection.execute(_SUBSCRIBER, {"address": email}).first()
            return _subscriber_state(row) if row else SubscriberState(email)
        version = self._raw().execute("PRAGMA data_version").fetchone()
        if self._states is None or version != self._data_version:
            with self._connection.begin():
                rows = self._connection.execute(sa.select(subscribers_table)).all()
            self._states = {row.email: _subscriber_state(row) for row in rows}
            self._data_version = version
        return self._states.get(email) or SubscriberState(email)

    def mark_sent(self, delivery_id: int, now: dt.datetime, attempts: int | None = None) -> None:
        counted = {} if attempts is None else {"attempts": attempts}
        self._update(delivery_id, state=SENT, sent_at=_iso(now), last_error=None, **counted)

    def mark_deferred(
        self, delivery_id: int, error: str, next_attempt: dt.datetime, attempts: int
    ) -> None:
        self._update(
            delivery_id,
            state=DEFERRED,
            last_error=error,
            next_attempt=_iso(next_attempt),
            attempts=attempts,
        )

    def mark_failed(self, delivery_id: int, error: str, attempts: int) -> None:
        self._update(delivery_id, state=FAILED, last_error=error, attempts=attempts)

    def mark_skipped(self, delivery_id: int, reason: str) -> None:
        self._update(delivery_id, state=SKIPPED, last_error=reason)

    def _update(self, delivery_id: int, **values: object) -> None:
        params = {"delivery_id": delivery_id, **values}
        if not self._sqlite:
            with self._connection.begin():
                self._connection.execute(_UPDATE_DELIVERY, params)
            return
        # The statement SQLAlchemy compiles, run on the DB-API connection: its execution
        # machinery costs more than SQLite's own work for a one-row update.
        sql, names = self._compiled(tuple(values))
        raw = self._raw()
        now = time.monotonic()
        sync = self._unsynced and now - self._synced_at >= SYNC_INTERVAL
        if sync:  # this commit syncs the log, and with it every commit before it
            raw.execute("PRAGMA synchronous=FULL")
        raw.execute("BEGIN IMMEDIATE")
        try:
            raw.execute(sql, [params[name] for name in names])
        except BaseException:
            raw.execute("ROLLBACK")
            raise
        raw.execute("COMMIT")
        if sync:
            raw.execute("PRAGMA synchronous=NORMAL")
            self._synced_at = now
        self._unsynced = not sync

    def _compiled(self, columns: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
        """The UPDATE of these columns as (SQL, parameter names in order), compiled once."""
        found = self._statements.get(columns)
        if found is None:
            statement = _UPDATE_DELIVERY.values({c: sa.bindparam(c) for c in columns})
            compiled = statement.compile(dialect=self._connection.dialect)
            found = self._statements[columns] = (str(compiled), tuple(compiled.positiontup or ()))
        return found

    def record_hard_failure(self, email: str, error: str, now: dt.datetime, limit: int) -> bool:
        """Count a permanent refusal; True when this one reaches `limit` and the address is
        now suppressed."""
        email = email.lower()
        self._states = None  # written here: this connection's own writes move no version
        with self._connection.begin():
            row = self._connection.execute(_SUBSCRIBER, {"address": email}).first()
            failures = (row.hard_failures if row else 0) + 1
            state = row.state if row else ACTIVE
            suppress = state == ACTIVE and failures >= limit
            values: dict[str, object] = {"hard_failures": failures}
            if suppress:
                values.update(
                    state=SUPPRESSED,
                    changed_at=_iso(now),
                    reason=f"{failures} hard failures, the last: {error}",
                )
            new = {"email": email, "state": state, "changed_at": _iso(now), "reason": ""}
            self._connection.execute(
                self._insert(subscribers_table)
                .values({**new, **values})
                .on_conflict_do_update(index_elements=["email"], set_=values)
            )
        return suppress

    def clear_hard_failures(self, email: str) -> None:
        """A delivery went through: earlier refusals were not about the address for good."""
        self._states = None
        with self._connection.begin():
            self._connection.execute(_CLEAR_FAILURES, {"address": email.lower()})
