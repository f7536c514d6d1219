"""Everything `digest` remembers, and the only module that speaks SQL.

Tables:

- `papers`: one row per paper id, merged across sources (the richest fields win, links
  are the union), with the day it was first listed.
- `sightings`: each time a source listed a paper: when, for which day, with how many
  upvotes (upvotes change over time).
- `runs`: every `digest run`, its date and outcome; the last successful run's date is
  where the next run's catch-up window starts.
- `deliveries`: the ledger and outbox, one unique row per (subscriber, digest key) holding
  the complete rendered message, moving queued → sent | deferred | failed | skipped.
- `delivered_papers`: which papers each subscriber has been given, written in the same
  transaction as the delivery row, so "not yet sent" is a query, never a flag.
- `subscribers`: addresses that are not simply active: unsubscribed (one click, from
  `digest serve`) or suppressed after repeated hard failures, with the count of those.

SQLite runs in WAL mode with `synchronous=FULL` and a busy timeout, and every transaction
starts with `BEGIN IMMEDIATE` so a read-then-write never fails with "database is locked".
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from digest.errors import DigestError
from digest.fetch import Cached
from digest.models import Link, Paper

metadata = sa.MetaData()

papers_table = sa.Table(
    "papers",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("day", sa.String, nullable=False, index=True),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("first_seen", sa.String, nullable=False),
    sa.Column("updated", sa.String, nullable=False),
)

sightings_table = sa.Table(
    "sightings",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("paper_id", sa.String, nullable=False, index=True),
    sa.Column("source", sa.String, nullable=False),
    sa.Column("day", sa.String, nullable=False),
    sa.Column("seen_at", sa.String, nullable=False),
    sa.Column("upvotes", sa.Integer, nullable=False),
    sa.Column("comments", sa.Integer, nullable=False),
)

runs_table = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_date", sa.String, nullable=False),
    sa.Column("started_at", sa.String, nullable=False),
    sa.Column("finished_at", sa.String),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("message", sa.Text, nullable=False, default=""),
)

deliveries_table = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subscriber", sa.String, nullable=False),
    sa.Column("digest_key", sa.String, nullable=False),
    sa.Column("digest_date", sa.String, nullable=False),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("message_id", sa.String, nullable=False),
    sa.Column("message", sa.LargeBinary, nullable=False),
    sa.Column("items", sa.Text, nullable=False),
    sa.Column("created_at", sa.String, nullable=False),
    sa.Column("sent_at", sa.String),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt", sa.String),
    sa.Column("last_error", sa.Text),
    sa.UniqueConstraint("subscriber", "digest_key", name="one_digest_per_subscriber"),
)

delivered_papers_table = sa.Table(
    "delivered_papers",
    metadata,
    sa.Column("subscriber", sa.String, primary_key=True),
    sa.Column("paper_id", sa.String, primary_key=True),
    sa.Column("digest_key", sa.String, nullable=False),
)

source_days_table = sa.Table(
    "source_days",
    metadata,
    sa.Column("source", sa.String, primary_key=True),
    sa.Column("day", sa.String, primary_key=True),
    sa.Column("fetched_at", sa.String, nullable=False),
    sa.Column("papers", sa.Integer, nullable=False),
)

http_cache_table = sa.Table(
    "http_cache",
    metadata,
    sa.Column("url", sa.String, primary_key=True),
    sa.Column("etag", sa.String),
    sa.Column("last_modified", sa.String),
    sa.Column("content", sa.LargeBinary, nullable=False),
)

subscribers_table = sa.Table(
    "subscribers",
    metadata,
    sa.Column("email", sa.String, primary_key=True),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("hard_failures", sa.Integer, nullable=False, default=0),
    sa.Column("changed_at", sa.String, nullable=False),
    sa.Column("reason", sa.Text, nullable=False, default=""),
)

QUEUED, SENT, DEFERRED, FAILED = "queued", "sent", "deferred", "failed"
# A delivery whose subscriber unsubscribed (or was suppressed) after it was queued.
SKIPPED = "skipped"
# Subscriber states; an address with no row is active.
ACTIVE, UNSUBSCRIBED, SUPPRESSED = "active", "unsubscribed", "suppressed"


@dataclass(frozen=True)
class SubscriberState:
    email: str
    state: str = ACTIVE
    hard_failures: int = 0
    changed_at: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class DeliveryItem:
    """One paper as a digest held it: enough to rebuild the subscriber's private feed."""

    paper_id: str
    score: float
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class OutboxEntry:
    """A rendered digest on its way into the outbox (see `Store.queue_many`)."""

    subscriber: str
    digest_key: str
    digest_date: dt.date
    message_id: str
    message: bytes
    items: tuple[DeliveryItem, ...]


@dataclass(frozen=True)
class DigestRecord:
    """What a digest held, without its message: a private feed is built from these."""

    digest_key: str
    digest_date: dt.date
    items: tuple[DeliveryItem, ...]


@dataclass(frozen=True)
class Delivery:
    id: int
    subscriber: str
    digest_key: str
    digest_date: dt.date
    state: str
    message_id: str
    message: bytes
    items: tuple[DeliveryItem, ...]
    attempts: int
    created_at: str
    sent_at: str | None
    last_error: str | None


@dataclass(frozen=True)
class Run:
    id: int
    run_date: dt.date
    started_at: str
    finished_at: str | None
    status: str
    message: str


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def paper_to_json(paper: Paper) -> str:
    data = dataclasses.asdict(paper)
    data["day"] = paper.day.isoformat()
    data["published"] = paper.published.isoformat() if paper.published else None
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


def paper_from_json(text: str) -> Paper:
    data: dict[str, Any] = json.loads(text)
    data["day"] = dt.date.fromisoformat(data["day"])
    if data.get("published"):
        data["published"] = dt.datetime.fromisoformat(data["published"])
    for key in ("authors", "ai_keywords"):
        data[key] = tuple(data.get(key) or ())
    data["links"] = tuple(Link(**link) for link in data.get("links") or ())
    return Paper(**data)


def merge_papers(old: Paper, new: Paper) -> Paper:
    """The same paper seen again, or from another source.

    The source that listed it first owns its text: a later sighting from that source
    refreshes every field, another source only fills what is missing (a lab feed's post
    title must not replace the paper's). Links are the union; counts take the larger
    value, since a source that does not count upvotes reports 0; the day stays the first.
    """
    same_source = new.source == old.source
    filled = {
        field.name: getattr(new, field.name)
        for field in dataclasses.fields(Paper)
        if field.name not in ("id", "day", "source", "url", "links", "upvotes", "comments")
        and getattr(new, field.name) not in (None, "", ())
        and (same_source or getattr(old, field.name) in (None, "", ()))
    }
    filled["upvotes"] = max(old.upvotes, new.upvotes)
    filled["comments"] = max(old.comments, new.comments)
    links = list(old.links)
    known = {link.url for link in links} | {old.url}
    links.extend(link for link in new.links if link.url not in known)
    if new.url and new.url not in known:
        links.append(Link(urlsplit(new.url).hostname or new.source, new.url))
    return dataclasses.replace(old, **filled, day=min(old.day, new.day), links=tuple(links))


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
        self._insert = (
            postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        )
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

    def record_papers(self, papers: Iterable[Paper], seen_at: dt.datetime) -> None:
        """Upsert papers (merging with what is known) and log one sighting each."""
        now = _iso(seen_at)
        with self.transaction() as connection:
            for paper in papers:
                row = connection.execute(
                    sa.select(papers_table.c.data).where(papers_table.c.id == paper.id)
                ).first()
                merged = merge_papers(paper_from_json(row.data), paper) if row else paper
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
        queued = 0
        with self.transaction() as connection:
            for entry in entries:
                queued += self._queue_row(connection, entry, now)
        return queued

    def _queue_row(self, connection: sa.Connection, entry: OutboxEntry, now: dt.datetime) -> bool:
        subscriber = entry.subscriber.lower()
        inserted = connection.execute(
            self._insert(deliveries_table)
            .values(
                subscriber=subscriber,
                digest_key=entry.digest_key,
                digest_date=entry.digest_date.isoformat(),
                state=QUEUED,
                message_id=entry.message_id,
                message=entry.message,
                items=json.dumps(
                    [
                        {"id": item.paper_id, "score": item.score, "reasons": item.reasons}
                        for item in entry.items
                    ]
                ),
                created_at=_iso(now),
                attempts=0,
            )
            .on_conflict_do_nothing()
        )
        if inserted.rowcount == 0:
            return False
        if entry.items:
            connection.execute(
                self._insert(delivered_papers_table).on_conflict_do_nothing(),
                [
                    {
                        "subscriber": subscriber,
                        "paper_id": item.paper_id,
                        "digest_key": entry.digest_key,
                    }
                    for item in entry.items
                ],
            )
        return True

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

    def mark_sent(self, delivery_id: int, now: dt.datetime, attempts: int | None = None) -> None:
        counted = {} if attempts is None else {"attempts": attempts}
        self._update_delivery(
            delivery_id, state=SENT, sent_at=_iso(now), last_error=None, **counted
        )

    def mark_deferred(
        self, delivery_id: int, error: str, next_attempt: dt.datetime, attempts: int
    ) -> None:
        self._update_delivery(
            delivery_id,
            state=DEFERRED,
            last_error=error,
            next_attempt=_iso(next_attempt),
            attempts=attempts,
        )

    def mark_failed(self, delivery_id: int, error: str, attempts: int) -> None:
        self._update_delivery(delivery_id, state=FAILED, last_error=error, attempts=attempts)

    def _update_delivery(self, delivery_id: int, **values: object) -> None:
        with self.transaction() as connection:
            connection.execute(
                deliveries_table.update().where(deliveries_table.c.id == delivery_id), values
            )

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
        with self._reader.connect() as connection:
            for row in connection.execute(query):
                history.setdefault(row.subscriber, []).append(
                    DigestRecord(
                        row.digest_key, dt.date.fromisoformat(row.digest_date), _items(row.items)
                    )
                )
        return history

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

    def record_hard_failure(self, email: str, error: str, now: dt.datetime, limit: int) -> bool:
        """Count a permanent refusal; True when this one reaches `limit` and the address is
        now suppressed."""
        email = email.lower()
        with self.transaction() as connection:
            row = connection.execute(
                sa.select(subscribers_table).where(subscribers_table.c.email == email)
            ).first()
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
            connection.execute(
                self._insert(subscribers_table)
                .values({**new, **values})
                .on_conflict_do_update(index_elements=["email"], set_=values)
            )
        return suppress

    def clear_hard_failures(self, email: str) -> None:
        """A delivery went through: earlier refusals were not about the address for good."""
        with self.transaction() as connection:
            connection.execute(
                subscribers_table.update()
                .where(subscribers_table.c.email == email.lower())
                .values(hard_failures=0)
            )

    def mark_skipped(self, delivery_id: int, reason: str) -> None:
        self._update_delivery(delivery_id, state=SKIPPED, last_error=reason)

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


def _subscriber_state(row: sa.Row[Any]) -> SubscriberState:
    return SubscriberState(
        email=row.email,
        state=row.state,
        hard_failures=row.hard_failures,
        changed_at=row.changed_at,
        reason=row.reason,
    )


def _delivery(row: sa.Row[Any]) -> Delivery:
    return Delivery(
        id=row.id,
        subscriber=row.subscriber,
        digest_key=row.digest_key,
        digest_date=dt.date.fromisoformat(row.digest_date),
        state=row.state,
        message_id=row.message_id,
        message=row.message,
        items=_items(row.items),
        attempts=row.attempts,
        created_at=row.created_at,
        sent_at=row.sent_at,
        last_error=row.last_error,
    )


def _items(text: str) -> tuple[DeliveryItem, ...]:
    return tuple(
        DeliveryItem(item["id"], float(item["score"]), tuple(item["reasons"]))
        for item in json.loads(text)
    )


def _connect_args(url: str) -> dict[str, Any]:
    return {"timeout": 30.0} if url.startswith("sqlite") else {}


def _make_sqlite_durable(engine: sa.Engine) -> None:
    """WAL, synchronous=FULL, a busy timeout, and BEGIN IMMEDIATE for every transaction
    (pysqlite's own implicit BEGIN comes too late, after the first SELECT)."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")
