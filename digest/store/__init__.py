"""Everything `digest` remembers; the only package that speaks SQL.

`schema` holds the tables, `records` the values handed out, `db` the `Store` and its
queries, `outbox` the delivery loop's bookkeeping (`Store.outbox()`), `ledger` the
ledger's bulk queries (a run's digests queued at once, many subscribers' history),
`corpus` the term counts.

Tables:

- `papers`: one row per paper id, merged across sources (the first source owns the text,
  others fill gaps; links are the union), with the day it was first listed.
- `sightings`: each time a source listed a paper: when, for which day, with how many
  upvotes (upvotes change over time).
- `runs`: every `digest run`, its date and outcome; a date with a successful run is
  decided, and replaying it sends nothing new.
- `source_days`: the days each source was fetched completely; a source's next run
  catches up from its last one.
- `http_cache`: ETag / Last-Modified and the body they validate, per URL.
- `deliveries`: the ledger and outbox, one unique row per (subscriber, digest key) holding
  the complete rendered message, moving queued → sent | deferred | failed | skipped.
- `delivered_papers`: which papers each subscriber has been given, written in the same
  transaction as the delivery row, so "not yet sent" is a query, never a flag.
- `subscribers`: addresses that are not simply active: unsubscribed (one click, from
  `digest serve`) or suppressed after repeated hard failures, with the count of those.
- `term_counts` and `corpus`: in how many stored papers each term occurs, and the
  abstracts' total length, updated as papers are recorded (`corpus`), so that a run
  knows how rare a word is without reading every paper it ever stored.

SQLite runs in WAL mode with `synchronous=FULL` and a busy timeout, and every transaction
starts with `BEGIN IMMEDIATE` so a read-then-write never fails with "database is locked".
"""

from digest.store.db import Store
from digest.store.outbox import Outbox
from digest.store.records import (
    Delivery,
    DeliveryItem,
    DigestRecord,
    OutboxEntry,
    Run,
    SubscriberState,
    merge_papers,
    paper_from_json,
    paper_to_json,
)
from digest.store.schema import (
    ACTIVE,
    DEFERRED,
    FAILED,
    QUEUED,
    SENT,
    SKIPPED,
    SUPPRESSED,
    UNSUBSCRIBED,
    metadata,
)

__all__ = [
    "ACTIVE",
    "DEFERRED",
    "FAILED",
    "QUEUED",
    "SENT",
    "SKIPPED",
    "SUPPRESSED",
    "UNSUBSCRIBED",
    "Delivery",
    "DeliveryItem",
    "DigestRecord",
    "Outbox",
    "OutboxEntry",
    "Run",
    "Store",
    "SubscriberState",
    "merge_papers",
    "metadata",
    "paper_from_json",
    "paper_to_json",
]
