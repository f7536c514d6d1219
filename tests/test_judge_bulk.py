"""The reasons worked out for many pairs at once (digest.judge_bulk) are `judge`'s own,
word for word, for every pair of subscribers and papers: strongest first, no overlaps,
at most three per field, fields in order."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from helpers import compiler_for, corpus_papers, long_phrase, subscriber_for
from hypothesis import example, given, settings
from hypothesis import strategies as st

from digest.analysis import FIELDS, CorpusStats, FieldText, PaperText, analyse
from digest.judge_bulk import (
    Wording,
    _candidates,
    _holding,
    _keys,
    _strongest_first,
    best_first,
    field_reasons,
    strongest_reasons,
)
from digest.match import judge, named
from digest.models import Paper, Subscriber
from digest.postings import PaperIndex
from digest.profile import Compiler, Profile, compile_for
from digest.profile_rows import Request, RowCompiler
from digest.weights import REASON_FLOOR, WEIGHTS

FIELD_NAMES = ("title: ", "keywords: ", "abstract: ")


@pytest.fixture(scope="module")
def store() -> tuple[list[Paper], list[PaperText], CorpusStats]:
    papers = corpus_papers()[:250]
    texts = [analyse(p) for p in papers]
    return papers, texts, CorpusStats.from_analysed(texts)


def subscribers(papers: list[Paper], texts: list[PaperText]) -> list[Subscriber]:
    with_authors = next(p for p in papers if len(p.authors) >= 3)
    return [
        subscriber_for("phrases", keywords=["video generation", "mixture of experts", "agents"]),
        subscriber_for(
            "many-words",
            keywords=["language model", "reasoning", "benchmark", "reinforcement learning"],
            description="Reasoning in large language models: chain of thought, math, code.",
        ),
        subscriber_for("long", keywords=[long_phrase(texts)], description=papers[3].title),
        subscriber_for(
            "prose", description="Models that see, read and act; how they learn from feedback."
        ),
        subscriber_for("follows", keywords=["diffusion"], authors=[with_authors.authors[1]]),
        subscriber_for("titles", keywords=[p.title for p in papers[20:24]]),
    ]


def judged_alike(
    papers: list[Paper], texts: list[PaperText], stats: CorpusStats, people: list[Subscriber]
) -> tuple[int, int, int]:
    """Every pair's field reasons, worked out at once, against `judge`'s: (pairs compared,
    of which naming several matches in a field, pairs left to the caller's fallback)."""
    index, compiler = compiler_for(texts, stats)
    chunk: list[Request] = [(s, papers, ()) for s in people]
    rows = compiler.rows(chunk)
    every = np.arange(len(papers), dtype=np.int64)
    owners = np.repeat(np.arange(len(people), dtype=np.int64), len(papers))
    wording: Wording = {}
    named = field_reasons(
        index, WEIGHTS, rows.asked, rows.phrase, (owners, np.tile(every, len(people))), wording
    )
    compared = several = fallbacks = 0
    unnamed: list[tuple[int, int, list[str]]] = []
    for k, said in enumerate(named):
        r, p = divmod(k, len(papers))
        total, reasons = judge(compile_for(people[r], stats), texts[p], index.hits[p])
        by_field = [x for x in reasons if x.startswith(FIELD_NAMES)]
        if said:
            assert list(said) == by_field, (people[r].slug, papers[p].id)
            compared += 1
            several += any(", " in x for x in said)
        elif total > 0 and not any(x.startswith("author: ") for x in reasons):
            # Nothing worth naming on its own: `judge` names the strongest.
            unnamed.append((r, p, by_field))
        else:
            assert by_field == []
    # Those pairs, worked out at once: `judge`'s fallback, word for word.
    pairs = (
        np.array([r for r, _, _ in unnamed], dtype=np.int64),
        np.array([p for _, p, _ in unnamed], dtype=np.int64),
    )
    strongest = strongest_reasons(index, WEIGHTS, rows.weights, pairs, {})
    for (r, p, by_field), said in zip(unnamed, strongest, strict=True):
        assert list(said) == by_field, (people[r].slug, papers[p].id)
        fallbacks += bool(said)
    # Asked again (the wording remembered), the same reasons.
    again = field_reasons(
        index, WEIGHTS, rows.asked, rows.phrase, (owners, np.tile(every, len(people))), wording
    )
    assert again == named
    return compared, several, fallbacks


def test_every_pairs_field_reasons_are_those_judge_gives(
    store: tuple[list[Paper], list[PaperText], CorpusStats],
) -> None:
    papers, texts, stats = store
    compared, several, fallbacks = judged_alike(papers, texts, stats, subscribers(papers, texts))
    assert compared > 200 and several > 10 and fallbacks > 10


def with_a_long_abstract(
    papers: list[Paper], texts: list[PaperText]
) -> tuple[list[Paper], list[PaperText]]:
    """Sixty papers and one whose abstract is said five times over: the reasons in it
    are remembered by keys of more than 64 bits."""
    base = next(p for p in papers if len(p.abstract) > 1000)
    long = dataclasses.replace(base, id="long", abstract=" ".join([base.abstract] * 5))
    papers, texts = [*papers[:60], long], [*texts[:60], analyse(long)]
    longest = max(len(f.tokens) for t in texts for f in t.fields.values())
    assert len(texts) * len(FIELDS) * (longest + 1) ** 6 >= 1 << 63
    return papers, texts


def test_a_field_too_long_for_reasons_known_by_64_bit_keys_gets_judges_reasons(
    store: tuple[list[Paper], list[PaperText], CorpusStats],
) -> None:
    papers, texts = with_a_long_abstract(*store[:2])
    abstract = texts[-1].fields["abstract"]
    late = [abstract.tokens[i] for i in (-3, -40, -90, -200)]
    words = [abstract.text[t.start : t.end] for t in late]
    people = [*subscribers(papers, texts), subscriber_for("late", keywords=words)]
    compared, several, _ = judged_alike(papers, texts, store[2], people)
    assert compared > 50 and several > 5


@pytest.mark.parametrize("long", [False, True])
def test_a_reason_is_known_by_its_paper_field_and_matches_in_mixed_radix(
    store: tuple[list[Paper], list[PaperText], CorpusStats], long: bool
) -> None:
    papers, texts, stats = store
    texts = with_a_long_abstract(papers, texts)[1] if long else texts[:40]
    index = PaperIndex(texts, Profile({}, abstract_length=stats.abstract_length).evidence)
    span = 1 + max(len(f.tokens) for t in index.texts for f in t.fields.values())
    where = np.array([0, 5, 119, 7, 3 * len(texts) - 1], dtype=np.int64)
    start = np.array([0, 2, 9, 1, 3, 0, 4, 8, span - 4, span - 3, span - 2], dtype=np.int64)
    end = start + np.array([1, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1])
    first = np.array([0, 1, 4, 5, 8])
    size = np.array([1, 3, 1, 3, 3])
    keys = _keys(index, where, start, end, first, size)
    codes = [int(s) * span + int(e) for s, e in zip(start, end, strict=True)]
    expected = []
    for w, f, n in zip(where.tolist(), first.tolist(), size.tolist(), strict=True):
        key = w
        for j in range(3):
            key = key * span**2 + (codes[f + j] if j < n else 0)
        expected.append(key)
    assert keys.tolist() == expected
    assert len(set(expected)) == len(expected)
    assert keys.dtype == (object if long else np.int64)


def test_no_pairs_no_reasons(store: tuple[list[Paper], list[PaperText], CorpusStats]) -> None:
    papers, texts, stats = store
    index = PaperIndex(texts[:5], Profile({}, abstract_length=stats.abstract_length).evidence)
    compiler = RowCompiler(index, stats, WEIGHTS, Compiler(stats, WEIGHTS))
    rows = compiler.rows([(subscriber_for("a", keywords=["video"]), papers[:5], ())])
    nothing = np.zeros(0, dtype=np.int64)
    assert field_reasons(index, WEIGHTS, rows.asked, rows.phrase, (nothing, nothing), {}) == []


def test_the_table_of_held_terms_says_what_the_index_look_up_says(
    store: tuple[list[Paper], list[PaperText], CorpusStats],
) -> None:
    papers, texts, stats = store
    index, compiler = compiler_for(texts, stats)
    people = subscribers(papers, texts)
    rows = compiler.rows([(s, papers, ()) for s in people])
    pairs = np.repeat(np.arange(len(people)), 40), np.tile(np.arange(0, 200, 5), len(people))
    asked = rows.asked
    begins = asked.indptr[pairs[0]].astype(np.int64)
    counts = asked.indptr[pairs[0] + 1] - begins
    at = np.concatenate([np.arange(b, b + c) for b, c in zip(begins, counts, strict=True)])
    held = _holding(index, asked, pairs[1], counts, at)
    wanted = (np.repeat(pairs[1], counts) << 32) + asked.indices[at]
    assert held is not None and held.any() and not held.all()
    assert held.tolist() == index.locate(wanted)[0].tolist()
    assert _holding(index, asked, pairs[1], counts, at, limit=100) is None
    # Without the table, every term looked up: the same candidates.
    floor = REASON_FLOOR * WEIGHTS.threshold
    with_table = _candidates(index, WEIGHTS, asked, rows.phrase, *pairs, floor)
    without = _candidates(index, WEIGHTS, asked, rows.phrase, *pairs, floor, table=0)
    assert all(np.array_equal(a, b) for a, b in zip(with_table, without, strict=True))


@given(
    st.lists(
        st.tuples(
            st.integers(0, 6),
            st.sampled_from([0.5, 1.0, 2.0]),
            st.integers(0, 9),
            st.integers(1, 3),
        ),
        min_size=1,
        max_size=40,
    )
)
@settings(max_examples=200, deadline=None)
def test_matches_are_ordered_alike_by_one_packed_key_or_several(
    matches: list[tuple[int, float, int, int]],
) -> None:
    group, value, start, length = (np.array(x) for x in zip(*matches, strict=True))
    group, start = group.astype(np.int64), start.astype(np.int64)
    end = start + length
    # `_field_reason`'s order: strongest first, then the earliest, then the longest.
    expected = np.lexsort((start - end, start, -value, group))
    for packed in (1 << 62, 0):
        order = _strongest_first(group, value, start, end, packed)
        for column in (group, value, start, end):
            assert column[order].tolist() == column[expected].tolist()


_WORDS = re.compile(r"[^\W_]+")


def named_by_the_general_rule(
    text: FieldText, where: str, chosen: list[tuple[int, int]]
) -> str | None:
    """`named` as first written, for any number of matches: each surface once, those
    whose words are found in another's left out."""
    chosen = sorted(chosen)
    surfaces = list(dict.fromkeys([text.surface(s, e - s) for s, e in chosen]))
    if len(surfaces) > 1:
        words = [f" {' '.join(_WORDS.findall(a.casefold()))} " for a in surfaces]
        every = "\0".join(words)
        surfaces = [a for a, mine in zip(surfaces, words, strict=True) if every.count(mine) == 1]
    return f"{where}: {', '.join(surfaces)}" if surfaces else None


# Written pieces of a field: the same words written differently, inside one another.
PIECES = [
    "dark matter halos",
    "Dark-Matter",
    "dark matter",
    "Dark Matter",
    "halos",
    "HALOS",
    "halo",
    "x-ray",
]


@given(
    st.lists(st.sampled_from(PIECES), min_size=1, max_size=8),
    st.lists(st.tuples(st.integers(0, 7), st.booleans()), max_size=3),
)
@example(["halos", "dark matter", "halos"], [(0, False), (1, False), (2, False)])
@example(["halos", "dark matter halos", "halos"], [(0, False), (1, False), (2, False)])
@example(["Dark-Matter", "dark matter", "Dark Matter"], [(0, False), (1, False), (2, False)])
@example(["dark matter halos", "halos", "halo"], [(0, False), (1, False), (2, False)])
@settings(max_examples=400, deadline=None)
def test_named_says_what_the_general_rule_says_for_one_two_or_three_matches(
    written: list[str], wanted: list[tuple[int, bool]]
) -> None:
    text = FieldText.of(", ".join(written))
    # Each piece's tokens; a match is a whole piece or its last word.
    pieces, at = [], 0
    for piece in written:
        count = len(FieldText.of(piece).tokens)
        pieces.append((at, at + count))
        at += count
    assert at == len(text.tokens)
    chosen: list[tuple[int, int]] = []
    for piece, last_word in wanted:
        start, end = pieces[piece % len(pieces)]
        start = end - 1 if last_word else start
        if all(end <= s or e <= start for s, e in chosen):
            chosen.append((start, end))
    if not chosen:
        chosen = [pieces[0]]
    expected = named_by_the_general_rule(text, "title", chosen)
    for _ in range(2):  # the second time from what the field remembers
        assert named(text, "title", list(reversed(chosen))) == expected


@settings(max_examples=80, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(st.integers(0, 6), st.sampled_from([8.5, 9.0, 9.0000000001, 12.25, 40.0])),
        max_size=60,
    ),
    seed=st.integers(0, 2**32 - 1),
    wide=st.booleans(),  # ties so many that the packed keys would not fit: lexsort itself
)
def test_pairs_are_ranked_best_first_row_by_row_as_lexsort_ranks_them(
    pairs: list[tuple[int, float]], seed: int, wide: bool
) -> None:
    rows = np.array(sorted(r for r, _ in pairs), dtype=np.int64)
    values = np.array([v for _, v in pairs], dtype=np.float64)
    # Within a row each pair's tie-break is its own (a paper appears once per row).
    tie = np.random.default_rng(seed).permutation(max(len(pairs), 1))[: len(pairs)]
    ties = 2**62 if wide else max(len(pairs), 1)
    expected = np.lexsort((tie, -values, rows))
    assert best_first(rows, values, tie, ties).tolist() == expected.tolist()
