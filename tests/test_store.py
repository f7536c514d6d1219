"""The store on a real SQLite file: durability settings, merging, sightings, the ledger."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from digest.models import Link, Paper
from digest.store import QUEUED, SENT, DeliveryItem, Store

NOW = dt.datetime(2026, 1, 5, 7, 0, tzinfo=dt.UTC)
DAY = dt.date(2026, 1, 5)


def paper(**changes: object) -> Paper:
    fields: dict[str, object] = {
        "id": "2601.00001",
        "title": "A paper",
        "abstract": "An abstract.",
        "day": DAY,
        "source": "huggingface",
        "url": "https://huggingface.co/papers/2601.00001",
        "upvotes": 3,
        "links": (Link("arXiv", "https://arxiv.org/abs/2601.00001"),),
    }
    fields.update(changes)
    return Paper(**fields)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'digest.db'}")


def test_the_database_is_durable_wal_with_full_sync_and_a_busy_timeout(
    store: Store, tmp_path: Path
) -> None:
    with store.transaction() as connection:
        synchronous = connection.exec_driver_sql("PRAGMA synchronous").scalar()
        busy = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
    assert (synchronous, busy) == (2, 30000)  # 2 = FULL
    raw = sqlite3.connect(tmp_path / "digest.db")
    assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    raw.close()


def test_a_delivery_mark_is_committed_at_once_and_the_connection_returns_syncing_every_commit(
    store: Store, tmp_path: Path
) -> None:
    assert store.queue("ada@example.org", "2026-01-05", DAY, "<id@x>", b"message", [], NOW)
    [delivery] = store.deliveries_in_state(QUEUED)
    with store.outbox() as outbox:
        outbox.mark_sent(delivery.id, NOW, 1)
        # Committed: another process sees it now (a kill from here on loses nothing).
        raw = sqlite3.connect(tmp_path / "digest.db")
        assert raw.execute("SELECT state FROM deliveries").fetchall() == [(SENT,)]
        raw.close()
    with store.transaction() as connection:
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2


def test_the_same_paper_from_two_sources_is_one_paper_with_links_from_both(store: Store) -> None:
    store.record_papers([paper()], NOW)
    store.record_papers(
        [paper(source="feed", url="https://lab.example.org/p/1", upvotes=0, links=())], NOW
    )
    [merged] = store.all_papers()
    assert merged.source == "huggingface"
    assert merged.upvotes == 3, "a source without counts does not erase them"
    assert [link.url for link in merged.links] == [
        "https://arxiv.org/abs/2601.00001",
        "https://lab.example.org/p/1",
    ]


def test_every_sighting_records_the_upvotes_of_that_moment(store: Store) -> None:
    store.record_papers([paper(upvotes=3)], NOW)
    store.record_papers([paper(upvotes=40)], NOW + dt.timedelta(hours=8))
    [current] = store.all_papers()
    assert current.upvotes == 40
    assert store.sighting_count() == 2


def test_a_date_is_decided_once_a_run_for_it_or_a_later_date_succeeded(store: Store) -> None:
    assert not store.decided(DAY)
    failed = store.start_run(DAY, NOW)
    store.finish_run(failed, "failed", "source down", NOW)
    assert not store.decided(DAY)
    later = store.start_run(DAY + dt.timedelta(days=1), NOW)
    store.finish_run(later, "ok", "", NOW)
    assert store.decided(DAY) and store.decided(DAY + dt.timedelta(days=1))
    assert not store.decided(DAY + dt.timedelta(days=2))


def test_queueing_a_digest_marks_its_papers_as_given_in_the_same_transaction(store: Store) -> None:
    items = [DeliveryItem("2601.00001", 1.5, ("title: paper",))]
    assert store.queue("Ada@Example.org", "2026-01-05", DAY, "<id@x>", b"message", items, NOW)
    assert store.sent_paper_ids("ada@example.org") == {"2601.00001"}
    assert store.sent_paper_ids_by_subscriber() == {"ada@example.org": {"2601.00001"}}
    assert store.digest_keys_by_subscriber() == {"ada@example.org": {"2026-01-05"}}
    [delivery] = store.deliveries_for("ada@example.org")
    assert delivery.items == tuple(items) and delivery.message == b"message"
