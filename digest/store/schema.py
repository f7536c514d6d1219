"""The tables, the states a delivery or an address can be in, and SQLite's settings."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

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

# In how many stored papers each term occurs (see digest.analysis.CorpusStats), kept up
# to date as papers are recorded, so a run never reads every paper to know.
term_counts_table = sa.Table(
    "term_counts",
    metadata,
    sa.Column("term", sa.String, primary_key=True),
    sa.Column("papers", sa.Integer, nullable=False),
)

# Totals beside the counts: "abstract_words" (all abstracts' content words). No row yet
# means the counts were never built (a store from before they existed).
corpus_table = sa.Table(
    "corpus",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("value", sa.Integer, nullable=False),
)

QUEUED, SENT, DEFERRED, FAILED = "queued", "sent", "deferred", "failed"
# A delivery whose subscriber unsubscribed (or was suppressed) after it was queued.
SKIPPED = "skipped"
# Subscriber states; an address with no row is active.
ACTIVE, UNSUBSCRIBED, SUPPRESSED = "active", "unsubscribed", "suppressed"


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
