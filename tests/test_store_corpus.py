"""The term counts the store keeps as papers are recorded: always what counting every
stored paper again would give, so a run never has to (digest.store.corpus)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import MONTH, corpus_papers

from digest.analysis import CorpusStats, recount
from digest.config import Config
from digest.models import Paper
from digest.pipeline import corpus_stats, run
from digest.store import Store

NOW = dt.datetime(2026, 1, 5, 7, 0, tzinfo=dt.UTC)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'digest.db'}")


def kept(store: Store) -> CorpusStats:
    counts = store.corpus_counts()
    assert counts is not None, "the counts were never built"
    return CorpusStats.from_counts(*counts)


def counted_again(store: Store) -> CorpusStats:
    return CorpusStats.from_papers(store.all_papers())


def same(a: CorpusStats, b: CorpusStats) -> bool:
    return (a.documents, dict(a.frequencies), a.abstract_length) == (
        b.documents,
        dict(b.frequencies),
        b.abstract_length,
    )


def test_the_kept_counts_follow_new_changed_and_resighted_papers(store: Store) -> None:
    papers = corpus_papers()[:120]
    corpus_stats(store, build=True)  # an empty store: counts built, all zero
    store.record_papers(papers[:80], NOW, recount)
    assert same(kept(store), counted_again(store))

    # The owning source lists some papers again: one rewritten (a new version of its
    # abstract), one with only more upvotes, one twice in the batch; and new papers.
    rewritten = dataclasses.replace(papers[0], abstract=papers[1].abstract + " New results.")
    upvoted = dataclasses.replace(papers[2], upvotes=papers[2].upvotes + 40)
    retitled = dataclasses.replace(papers[3], title=papers[4].title)
    batch = [
        rewritten,
        upvoted,
        retitled,
        dataclasses.replace(retitled, title="Again"),
        *papers[80:],
    ]
    store.record_papers(batch, NOW, recount)

    assert kept(store).documents == 120
    assert same(kept(store), counted_again(store))


def test_a_store_from_before_the_counts_counts_its_papers_once_then_keeps_up(
    store: Store,
) -> None:
    papers = corpus_papers()[:60]
    store.record_papers(papers[:40], NOW)  # as before counts were kept
    assert store.corpus_counts() is None

    assert same(corpus_stats(store, build=False), counted_again(store))
    assert store.corpus_counts() is None, "a preview writes nothing"

    assert same(corpus_stats(store, build=True), counted_again(store))
    store.record_papers(papers[40:], NOW, recount)
    assert same(kept(store), counted_again(store))


def test_papers_recorded_without_counting_them_make_the_counts_be_counted_again(
    store: Store,
) -> None:
    papers = corpus_papers()[:30]
    corpus_stats(store, build=True)
    store.record_papers(papers[:20], NOW, recount)
    store.record_papers(papers[20:], NOW)  # a caller that does not count
    assert store.corpus_counts() is None
    assert same(corpus_stats(store, build=True), counted_again(store))
    assert same(kept(store), counted_again(store))


def test_phrases_held_by_one_paper_are_counted_but_not_read_back(store: Store) -> None:
    corpus_stats(store, build=True)
    one = Paper("2601.00001", "Quasar lensing survey", "Quasar lensing maps.", NOW.date(), "hf", "")
    two = Paper("2601.00002", "Quasar lensing maps", "Weak signals.", NOW.date(), "hf", "")
    store.record_papers([one], NOW, recount)
    assert "quasar lens" not in kept(store).frequencies  # one paper: not telling
    store.record_papers([two], NOW, recount)
    assert kept(store).frequencies["quasar lens"] == 2  # the first one was kept all along


def test_runs_keep_the_counts_of_everything_they_fetched(
    make_config: Callable[..., Config],
) -> None:
    config = make_config()
    days = sorted(MONTH.glob("*.json"))[:4]
    for path in days:
        run(config, today=dt.date.fromisoformat(path.stem))
    listed = {item["paper"]["id"] for path in days for item in json.loads(path.read_bytes())}
    store = Store(config.database)
    try:
        assert same(kept(store), counted_again(store))
        assert kept(store).documents == len(listed) == len(store.all_papers())
    finally:
        store.close()
