"""The index's terms of each paper (digest.postings): what looking each term up gives."""

from __future__ import annotations

import datetime as dt
from itertools import chain

import numpy as np
from helpers import corpus_papers, phrases
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.analysis import FIELDS, CorpusStats, PaperText, analyse, find_hit
from digest.models import Paper
from digest.postings import INDEXED_PHRASE, PaperIndex
from digest.profile import Profile
from digest.text import tokens


def expected_hits(text: PaperText, index: PaperIndex) -> dict[str, object]:
    """Every term of up to INDEXED_PHRASE words looked up one by one, in the order the
    paper first holds it (title, ai_keywords, abstract), acronyms' long forms last."""
    order = dict.fromkeys(
        term for f in FIELDS for term, _, _ in phrases(list(text.fields[f].tokens), INDEXED_PHRASE)
    )
    order.update(dict.fromkeys(f for f in text.acronyms if f.count(" ") < INDEXED_PHRASE))
    found = {term: find_hit(text, index.evidence, term) for term in order}
    return {term: h for term, h in found.items() if h is not None}


def index_of(papers: list[Paper]) -> PaperIndex:
    texts = [analyse(p) for p in papers]
    stats = CorpusStats.from_analysed(texts)
    return PaperIndex(texts, Profile({}, abstract_length=stats.abstract_length).evidence)


def test_each_papers_terms_are_exactly_what_looking_each_up_finds_in_order() -> None:
    index = index_of(corpus_papers()[:120])
    for p, text in enumerate(index.texts):
        wanted = expected_hits(text, index)
        assert list(index.hits[p].items()) == list(wanted.items())


def test_rows_are_the_terms_sorted_and_the_matrices_hold_each_papers_hits() -> None:
    papers = corpus_papers()[:60]
    # Words of other scripts and accents kept by folding sort among the rest.
    papers.append(
        Paper(
            "x1",
            "Straße of μ-mesons",
            "The Øresund flow: ΛCDM and Ω scale.",
            dt.date(2026, 1, 5),
            "t",
            "",
        )
    )
    index = index_of(papers)
    terms = set(chain.from_iterable(index.hits))
    assert any(not t.isascii() for t in terms)
    assert index.names == sorted(terms)
    assert index.ids == {t: row for row, t in enumerate(sorted(terms))}
    value, title, presence = (m.toarray() for m in index.matrices())
    for p, found in enumerate(index.hits):
        rows = [index.ids[t] for t in found]
        assert value[rows, p].tolist() == [h.value for h in found.values()]
        assert title[rows, p].tolist() == [float(h.title is not None) for h in found.values()]
        assert presence[:, p].sum() == len(found)


def test_long_phrases_found_between_uses_of_the_matrices_widen_them_as_if_found_first() -> None:
    papers = corpus_papers()[:80]
    # Five words in a row of one clause of several titles: terms longer than the index holds.
    firsts = [tokens(p.title)[:5] for p in papers]
    wanted = [
        " ".join(t.stem for t in f)
        for f in firsts
        if len(f) == 5 and len({t.clause for t in f}) == 1
    ][:4]
    assert len(wanted) == 4
    early, late = index_of(papers), index_of(papers)
    for phrase in wanted:
        assert early.term(phrase) is not None
    for phrase in wanted:
        late.matrices()
        assert late.term(phrase) == early.term(phrase)
    for grown, whole in zip(late.matrices(), early.matrices(), strict=True):
        assert grown.shape == whole.shape == (len(early.names), len(papers))
        assert np.array_equal(grown.indptr, whole.indptr)
        assert np.array_equal(grown.indices, whole.indices)
        assert np.array_equal(grown.data, whole.data)


words = st.sampled_from(
    ["dark", "matter", "Matter", "galaxies", "GalaxyZoo", "AGNs", "the", "of", "José", "μ", "RFI"]
)
gaps = st.sampled_from([" ", "-", ", ", ". ", " (", ") ", " \\emph{", "} ", "; "])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(words, gaps), max_size=40), st.lists(st.tuples(words, gaps), max_size=12))
def test_generated_papers_index_what_looking_each_term_up_finds(
    abstract: list[tuple[str, str]], title: list[tuple[str, str]]
) -> None:
    paper = Paper(
        "g1",
        "".join(w + g for w, g in title) + "radio frequency interference (RFI)",
        "".join(w + g for w, g in abstract),
        dt.date(2026, 1, 5),
        "t",
        "",
        ai_keywords=("dark matter", "RFI"),
    )
    index = index_of([paper, paper])
    for p, text in enumerate(index.texts):
        assert list(index.hits[p].items()) == list(expected_hits(text, index).items())
    assert np.array_equal(index.bounds() > 0, np.ones(len(index.names), dtype=bool))
