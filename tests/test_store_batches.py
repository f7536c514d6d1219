"""The store's batch paths, which keep a run of thousands of subscribers from paying a
commit or a query per subscriber: queueing many digests at once, and their history."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from digest.store import QUEUED, DeliveryItem, OutboxEntry, Store

NOW = dt.datetime(2026, 1, 13, 7, 0, tzinfo=dt.UTC)
DAY = dt.date(2026, 1, 13)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'digest.db'}")
    yield store
    store.close()


def entry(address: str, day: dt.date = DAY, *papers: str) -> OutboxEntry:
    items = tuple(DeliveryItem(p, 9.5, (f"title: {p}",)) for p in papers or ("2601.00001",))
    key = day.isoformat()
    return OutboxEntry(address, key, day, f"<{key}.{address}>", f"to {address}".encode(), items)


def commits(store: Store) -> list[int]:
    counted: list[int] = []
    sa.event.listen(store.engine, "commit", lambda _connection: counted.append(1))
    return counted


def test_a_batch_of_digests_is_queued_with_one_commit_and_its_papers_marked_given(
    store: Store,
) -> None:
    counted = commits(store)
    queued = store.queue_many(
        [entry("ada@example.org"), entry("Bob@Example.org", DAY, "2601.00002", "2601.00003")],
        NOW,
    )
    assert queued == 2
    assert len(counted) == 1
    assert {d.subscriber for d in store.deliveries_in_state(QUEUED)} == {
        "ada@example.org",
        "bob@example.org",
    }
    assert store.sent_paper_ids_by_subscriber() == {
        "ada@example.org": {"2601.00001"},
        "bob@example.org": {"2601.00002", "2601.00003"},
    }


def test_a_rerun_of_the_batch_queues_only_the_digests_not_queued_before(store: Store) -> None:
    store.queue_many([entry("ada@example.org")], NOW)
    again = store.queue_many([entry("ada@example.org"), entry("bob@example.org")], NOW)
    assert again == 1
    assert len(store.deliveries_in_state(QUEUED)) == 2


def test_a_batch_queues_one_digest_per_subscriber_and_key_whatever_else_is_queued(
    store: Store,
) -> None:
    yesterday = DAY - dt.timedelta(days=1)
    store.queue_many([entry("ada@example.org", yesterday), entry("bob@example.org")], NOW)
    queued = store.queue_many(
        [entry("ada@example.org"), entry("ADA@example.org"), entry("bob@example.org", yesterday)],
        NOW,
    )
    assert queued == 2
    assert sorted((d.subscriber, d.digest_key) for d in store.deliveries_in_state(QUEUED)) == [
        ("ada@example.org", "2026-01-12"),
        ("ada@example.org", "2026-01-13"),
        ("bob@example.org", "2026-01-12"),
        ("bob@example.org", "2026-01-13"),
    ]


def test_a_batch_that_fails_half_way_queues_nothing_of_it(store: Store) -> None:
    def entries() -> Iterator[OutboxEntry]:
        yield entry("ada@example.org")
        raise RuntimeError("rendering failed")

    with pytest.raises(RuntimeError):
        store.queue_many(entries(), NOW)
    assert store.deliveries_in_state(QUEUED) == []
    assert store.sent_paper_ids_by_subscriber() == {}


def test_the_history_of_many_subscribers_is_their_latest_digests_newest_first(
    store: Store,
) -> None:
    days = [DAY - dt.timedelta(days=n) for n in range(4)]
    store.queue_many(
        [entry("ada@example.org", day, f"2601.0000{n}") for n, day in enumerate(days)], NOW
    )
    store.queue_many([entry("bob@example.org"), entry("carol@example.org")], NOW)

    history = store.digest_history(["ADA@example.org", "bob@example.org"], limit=3)

    assert sorted(history) == ["ada@example.org", "bob@example.org"]
    assert [record.digest_date for record in history["ada@example.org"]] == days[:3]
    assert history["ada@example.org"][0].items == (
        DeliveryItem("2601.00000", 9.5, ("title: 2601.00000",)),
    )
    assert [record.digest_key for record in history["bob@example.org"]] == [DAY.isoformat()]


def test_the_history_of_nobody_asks_the_database_nothing(store: Store) -> None:
    assert store.digest_history([]) == {}
