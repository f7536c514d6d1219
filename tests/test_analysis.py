"""A paper's words and phrases (digest.analysis), read a length at a time as the plain
`phrases` reference (tests/helpers.py) reads them."""

from __future__ import annotations

import gc
from collections import Counter

from helpers import corpus_papers, phrases
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.analysis import CorpusStats, analyse, analyse_all, collector_paused, grams
from digest.text import tokens


def test_grams_are_the_phrases_of_each_length_at_each_token() -> None:
    toks = tokens("Dark matter halos, in dwarf galaxies; GalaxyZoo (RFI) radio frequency")
    for max_len in (1, 2, 3, 4):
        wanted: list[list[str | None]] = [[None] * max(len(toks) - n, 0) for n in range(max_len)]
        for term, first, last in phrases(toks, max_len):
            wanted[last - first][first] = term
        assert grams(toks, max_len) == wanted


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["dark", "matter", "halo", ", ", ". ", " ", "-"]), max_size=30))
def test_a_papers_terms_are_every_phrase_of_its_fields(pieces: list[str]) -> None:
    toks = tokens("".join(pieces))
    for max_len in (1, 2, 3):
        terms = {term for term, _, _ in phrases(toks, max_len)}
        found = {t for length in grams(toks, max_len) for t in length if t is not None}
        assert found == terms


def test_the_store_counts_each_term_once_a_paper_as_phrases_read() -> None:
    texts = [analyse(p) for p in corpus_papers()[:150]]
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(
            {term for f in text.fields.values() for term, _, _ in phrases(list(f.tokens), 2)}
        )
    stats = CorpusStats.from_analysed(texts)
    kept = {t: n for t, n in counts.items() if n > 1 or " " not in t}
    assert stats.frequencies == kept
    assert stats.documents == len(texts)
    for text in texts[:20]:
        for max_len in (1, 2, 3, 4):
            assert text.terms(max_len) == {
                term
                for f in text.fields.values()
                for term, _, _ in phrases(list(f.tokens), max_len)
            }


def test_analysing_many_papers_gives_each_papers_analysis_and_leaves_the_collector_on() -> None:
    papers = corpus_papers()[:40]
    assert gc.isenabled()
    analysed = analyse_all(papers)
    assert gc.isenabled()
    assert analysed == {paper.id: analyse(paper) for paper in papers}


def test_the_collector_is_off_while_paused_and_a_callers_frozen_objects_stay_frozen() -> None:
    kept = [object() for _ in range(3)]  # something of the caller's, frozen by them
    gc.freeze()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert gc.isenabled()
        assert all(o is not kept for o in gc.get_objects()), "it stays frozen"
    finally:
        gc.unfreeze()
    with collector_paused():
        made = [object() for _ in range(3)]
    # What was made meanwhile is in the oldest generation, as if it had survived there.
    assert any(o is made for o in gc.get_objects(generation=2))
