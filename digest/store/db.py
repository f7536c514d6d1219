"""`Store`: every query `digest` makes (see the package docstring for the tables)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from digest.errors import DigestError
from digest.fetch import Cached
from digest.models import Paper
from digest.store import corpus, ledger
from digest.store.corpus import Recount
from digest.store.outbox import Outbox
from digest.store.records import (
    Delivery,
    DeliveryItem,
    DigestRecord,
    OutboxEntry,
    Run,
    SubscriberState,
    _delivery,
    _iso,
    _subscriber_state,
    merge_papers,
    paper_from_json,
    paper_to_json,
)
from digest.store.schema import (
    ACTIVE,
    DEFERRED,
    QUEUED,
    SENT,
    SUPPRESSED,
    UNSUBSCRIBED,
    _connect_args,
    _make_sqlite_durable,
    delivered_papers_table,
    deliveries_table,
    http_cache_table,
    metadata,
    papers_table,
    runs_table,
    sightings_table,
    source_days_table,
    subscribers_table,
)


class Store:
    """A connection to the database; create one per run (or per command)."""

    def __init__(self, url: str) -> None:
        try:
            self.engine = sa.create_engine(url, connect_args=_connect_args(url))
        except (sa.exc.ArgumentError, ImportError) as error:
            raise DigestError(f"database {url!r}: {error}") from error
        if self.engine.dialect.name == "sqlite":
            _make_sqlite_durable(self.engine)
        # Reads need no write lock: they take a plain (deferred) transaction.
        self._reader = self.engine.execution_options(sqlite_begin="DEFERRED")
        self._insert: Callable[[sa.Table], Any] = sqlite.insert
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects import postgresql  # only then: it is slow to import

            self._insert = postgresql.insert
        try:
            metadata.create_all(self.engine)
        except sa.exc.OperationalError as error:
            raise DigestError(f"database {url!r}: {error.orig}") from error

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        with self.engine.begin() as connection:
            yield connection

    # papers and sightings -------------------------------------------------------------

    def record_papers(
        self, papers: Iterable[Paper], seen_at: dt.datetime, recount: Recount | None = None
    ) -> None:
        """Upsert papers (merging with what is known) and log one sighting each. With
        `recount`, the term counts follow (once built: see `corpus_counts`); without it,
        they are dropped, to be counted again when next needed."""
        now = _iso(seen_at)
        with self.transaction() as connection:
            counter = recount if recount is not None and corpus.built(connection) else None
            changes: Counter[str] = Counter()
            words = 0
            for paper in papers:
                row = connection.execute(
                    sa.select(papers_table.c.data).where(papers_table.c.id == paper.id)
                ).first()
                old = paper_from_json(row.data) if row else None
                merged = merge_papers(old, paper) if old else paper
                if counter is not None:
                    changed, more = counter(old, merged)
                    changes.update(changed)
                    words += more
                values = {
                    "day": merged.day.isoformat(),
                    "data": paper_to_json(merged),
                    "updated": now,
                }
                if row:
                    connection.execute(
                        papers_table.update().where(papers_table.c.id == paper.id), values
                    )
                else:
                    connection.execute(
                        papers_table.insert(), {"id": paper.id, "first_seen": now, **values}
                    )
                connection.execute(
                    sightings_table.insert(),
                    {
                        "paper_id": paper.id,
                        "source": paper.source,
                        "day": paper.day.isoformat(),
                        "seen_at": now,
                        "upvotes": paper.upvotes,
                        "comments": paper.comments,
                    },
                )
            if counter is not None:
                corpus.add(connection, self._insert, changes, words)
            elif recount is None:
                corpus.forget(connection)

    def corpus_counts(self) -> tuple[int, dict[str, int], int] | None:
        """(papers, in how many each term occurs, their abstracts' words), as
        `CorpusStats.from_counts` takes them; None until `rebuild_corpus_counts`."""
        with self._reader.connect() as connection:
            return corpus.read(connection)

    def rebuild_corpus_counts(self, counts: Mapping[str, int], words: int) -> None:
        with self.transaction() as connection:
            corpus.replace(connection, counts, words)

    def papers_between(self, first: dt.date, last: dt.date) -> list[Paper]:
        """Papers listed on a day in [first, last], oldest day first, then by id."""
        query = (
            sa.select(papers_table.c.data)
            .where(papers_table.c.day.between(first.isoformat(), last.isoformat()))
            .order_by(papers_table.c.day, papers_table.c.id)
        )
        with self._reader.connect() as connection:
            return [paper_from_json(row.data) for row in connection.execute(query)]

    def papers_by_id(self, ids: Iterable[str]) -> dict[str, Paper]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        query = sa.select(papers_table.c.data).where(papers_table.c.id.in_(wanted))
        with self._reader.connect() as connection:
            papers = [paper_from_json(row.data) for row in connection.execute(query)]
        return {paper.id: paper for paper in papers}

    def all_papers(self) -> list[Paper]:
        query = sa.select(papers_table.c.data).order_by(papers_table.c.id)
        with self._reader.connect() as connection:
            return [paper_from_json(row.data) for row in connection.execute(query)]

    def latest_day(self) -> dt.date | None:
        with self._reader.connect() as connection:
            day = connection.execute(sa.select(sa.func.max(papers_table.c.day))).scalar()
        return dt.date.fromisoformat(day) if day else None

    def sighting_count(self) -> int:
        with self._reader.connect() as connection:
            return int(
                connection.execute(
                    sa.select(sa.func.count()).select_from(sightings_table)
                ).scalar_one()
            )

    # runs -------------------------------------------------------------------------------

    def start_run(self, run_date: dt.date, now: dt.datetime) -> int:
        with self.transaction() as connection:
            result = connection.execute(
                runs_table.insert().returning(runs_table.c.id),
                {
                    "run_date": run_date.isoformat(),
                    "started_at": _iso(now),
                    "status": "running",
                    "message": "",
                },
            )
            return int(result.scalar_one())

    def finish_run(self, run_id: int, status: str, message: str, now: dt.datetime) -> None:
        with self.transaction() as connection:
            connection.execute(
                runs_table.update().where(runs_table.c.id == run_id),
                {"status": status, "message": message, "finished_at": _iso(now)},
            )

    def decided(self, run_date: dt.date) -> bool:
        """True once a run for this date (or a later one) delivered: that date's digests
        were decided then, and replaying it must not send anything new."""
        query = sa.select(sa.func.count()).where(
            runs_table.c.status.in_(("ok", "partial")),
            runs_table.c.run_date >= run_date.isoformat(),
        )
        with self._reader.connect() as connection:
            return bool(connection.execute(query).scalar_one())

    def record_source_days(self, source: str, counts: dict[dt.date, int], now: dt.datetime) -> None:
        """Remember that `source` was fetched completely for these days."""
        with self.transaction() as connection:
            for day, papers in counts.items():
                values = {"fetched_at": _iso(now), "papers": papers}
                connection.execute(
                    self._insert(source_days_table)
                    .values(source=source, day=day.isoformat(), **values)
                    .on_conflict_do_update(index_elements=["source", "day"], set_=values)
                )

    def last_fetched_day(self, source: str, on_or_before: dt.date) -> dt.date | None:
        query = sa.select(sa.func.max(source_days_table.c.day)).where(
            source_days_table.c.source == source,
            source_days_table.c.day <= on_or_before.isoformat(),
        )
        with self._reader.connect() as connection:
            value = connection.execute(query).scalar()
        return dt.date.fromisoformat(value) if value else None

    def days_with_papers(self, source: str, first: dt.date, last: dt.date) -> set[dt.date]:
        """The days from `first` to `last` that `source` was fetched with papers for."""
        c = source_days_table.c
        query = sa.select(c.day).where(
            (c.source == source)
            & (c.day >= first.isoformat())
            & (c.day <= last.isoformat())
            & (c.papers > 0)
        )
        with self._reader.connect() as connection:
            return {dt.date.fromisoformat(day) for day in connection.scalars(query)}

    def recent_runs(self, limit: int = 10) -> list[Run]:
        query = sa.select(runs_table).order_by(runs_table.c.id.desc()).limit(limit)
        with self._reader.connect() as connection:
            return [
                Run(
                    id=row.id,
                    run_date=dt.date.fromisoformat(row.run_date),
                    started_at=row.started_at,
                    finished_at=row.finished_at,
                    status=row.status,
                    message=row.message,
                )
                for row in connection.execute(query)
            ]

    # the ledger and outbox ----------------------------------------------------------------

    def sent_paper_ids(self, subscriber: str) -> set[str]:
        query = sa.select(delivered_papers_table.c.paper_id).where(
            delivered_papers_table.c.subscriber == subscriber.lower()
        )
        with self._reader.connect() as connection:
            return set(connection.execute(query).scalars())

    def sent_paper_ids_by_subscriber(self) -> dict[str, set[str]]:
        """One query for everyone: a run with thousands of subscribers must not issue
        thousands of them."""
        query = sa.select(delivered_papers_table.c.subscriber, delivered_papers_table.c.paper_id)
        result: dict[str, set[str]] = {}
        with self._reader.connect() as connection:
            for subscriber, paper_id in connection.execute(query):
                result.setdefault(subscriber, set()).add(paper_id)
        return result

    def digest_keys_by_subscriber(self) -> dict[str, set[str]]:
        query = sa.select(deliveries_table.c.subscriber, deliveries_table.c.digest_key)
        result: dict[str, set[str]] = {}
        with self._reader.connect() as connection:
            for subscriber, key in connection.execute(query):
                result.setdefault(subscriber, set()).add(key)
        return result

    def queue(
        self,
        subscriber: str,
        digest_key: str,
        digest_date: dt.date,
        message_id: str,
        message: bytes,
        items: Sequence[DeliveryItem],
        now: dt.datetime,
    ) -> bool:
        """Put a rendered digest in the outbox and mark its papers as given, atomically.

        Returns False (and changes nothing) when this subscriber already has a digest with
        this key: a rerun never queues a second one.
        """
        entry = OutboxEntry(subscriber, digest_key, digest_date, message_id, message, tuple(items))
        return self.queue_many([entry], now) == 1

    def queue_many(self, entries: Iterable[OutboxEntry], now: dt.datetime) -> int:
        """`queue` for many digests in one transaction, which commits (and syncs) once:
        at thousands of subscribers a commit per digest costs more than rendering them.
        Returns how many were queued; those already queued are left as they were."""
        entries = list(entries)
        if not entries:
            return 0  # (no write transaction: it would wait for the lock)
        with self.transaction() as connection:
            return ledger.queue(connection, self._insert, entries, now)

    def due_deliveries(self, now: dt.datetime) -> list[Delivery]:
        """Queued messages, and deferred ones whose retry time has come, oldest first."""
        query = (
            sa.select(deliveries_table)
            .where(
                (deliveries_table.c.state == QUEUED)
                | (
                    (deliveries_table.c.state == DEFERRED)
                    & (deliveries_table.c.next_attempt <= _iso(now))
                )
            )
            .order_by(deliveries_table.c.id)
        )
        with self._reader.connect() as connection:
            return [_delivery(row) for row in connection.execute(query)]

    @contextmanager
    def outbox(self) -> Iterator[Outbox]:
        """The delivery loop's bookkeeping, on one connection held until the block ends."""
        with self.engine.connect() as connection:
            outbox = Outbox(connection, self._insert)
            try:
                yield outbox
            finally:
                outbox.close()

    def deliveries_for(self, subscriber: str, limit: int = 30) -> list[Delivery]:
        """A subscriber's digests, newest first (their private feed is built from these)."""
        query = (
            sa.select(deliveries_table)
            .where(deliveries_table.c.subscriber == subscriber.lower())
            .order_by(deliveries_table.c.digest_date.desc(), deliveries_table.c.id.desc())
            .limit(limit)
        )
        with self._reader.connect() as connection:
            return [_delivery(row) for row in connection.execute(query)]

    def digest_history(
        self, subscribers: Iterable[str], limit: int = 30
    ) -> dict[str, list[DigestRecord]]:
        """`deliveries_for` for many subscribers in one query (lower-cased address → their
        latest `limit` digests, newest first), without the message bytes. Callers pass a
        few hundred addresses at a time: each is a bound parameter."""
        with self._reader.connect() as connection:
            return ledger.history(connection, subscribers, limit)

    def deliveries_in_state(self, *states: str) -> list[Delivery]:
        query = (
            sa.select(deliveries_table)
            .where(deliveries_table.c.state.in_(states))
            .order_by(deliveries_table.c.id)
        )
        with self._reader.connect() as connection:
            return [_delivery(row) for row in connection.execute(query)]

    # conditional requests ----------------------------------------------------------------

    def cached(self, url: str) -> Cached | None:
        """The last full answer for `url` and its validators (see `fetch.ValidatorCache`)."""
        query = sa.select(http_cache_table).where(http_cache_table.c.url == url)
        with self._reader.connect() as connection:
            row = connection.execute(query).first()
        return Cached(row.content, row.etag, row.last_modified) if row else None

    def remember(self, url: str, cached: Cached) -> None:
        values = {
            "etag": cached.etag,
            "last_modified": cached.last_modified,
            "content": cached.content,
        }
        with self.transaction() as connection:
            connection.execute(
                self._insert(http_cache_table)
                .values(url=url, **values)
                .on_conflict_do_update(index_elements=["url"], set_=values)
            )

    # subscriber state: unsubscribes and suppressed addresses --------------------------

    def subscriber_state(self, email: str) -> SubscriberState:
        query = sa.select(subscribers_table).where(subscribers_table.c.email == email.lower())
        with self._reader.connect() as connection:
            row = connection.execute(query).first()
        return _subscriber_state(row) if row else SubscriberState(email.lower())

    def subscriber_states(self) -> dict[str, SubscriberState]:
        """Every address with a recorded state (addresses without one are active)."""
        with self._reader.connect() as connection:
            rows = connection.execute(sa.select(subscribers_table)).all()
        return {row.email: _subscriber_state(row) for row in rows}

    def blocked_addresses(self) -> set[str]:
        """Addresses that must not be sent anything: unsubscribed or suppressed."""
        query = sa.select(subscribers_table.c.email).where(
            subscribers_table.c.state.in_((UNSUBSCRIBED, SUPPRESSED))
        )
        with self._reader.connect() as connection:
            return set(connection.execute(query).scalars())

    def set_subscriber_state(self, email: str, state: str, reason: str, now: dt.datetime) -> bool:
        """Record `state` for `email`; False when it already was in that state. Going back
        to active also forgets earlier hard failures."""
        email = email.lower()
        with self.transaction() as connection:
            row = connection.execute(
                sa.select(subscribers_table).where(subscribers_table.c.email == email)
            ).first()
            current = _subscriber_state(row) if row else SubscriberState(email)
            if current.state == state and not (state == ACTIVE and current.hard_failures):
                return False
            values: dict[str, object] = {"state": state, "changed_at": _iso(now), "reason": reason}
            if state == ACTIVE:
                values["hard_failures"] = 0
            connection.execute(
                self._insert(subscribers_table)
                .values({"email": email, "hard_failures": 0, **values})
                .on_conflict_do_update(index_elements=["email"], set_=values)
            )
        return True

    def last_sent_by_subscriber(self) -> dict[str, str]:
        """When each address was last sent a digest (ISO time, UTC)."""
        query = (
            sa.select(deliveries_table.c.subscriber, sa.func.max(deliveries_table.c.sent_at))
            .where(deliveries_table.c.state == SENT)
            .group_by(deliveries_table.c.subscriber)
        )
        with self._reader.connect() as connection:
            return {subscriber: sent for subscriber, sent in connection.execute(query)}

    def known_addresses(self) -> set[str]:
        """Every address the ledger or the subscriber table has seen."""
        with self._reader.connect() as connection:
            ledger = set(connection.execute(sa.select(deliveries_table.c.subscriber).distinct()))
            states = set(connection.execute(sa.select(subscribers_table.c.email)).scalars())
        return {row[0] for row in ledger} | states
