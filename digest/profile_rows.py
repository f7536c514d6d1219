"""Subscribers' profiles as sparse rows over a `PaperIndex`, compiled a batch at a time.

`digest.index` scores a batch of subscribers with sparse products, so what it needs of
a profile is rows of numbers over the index's terms, not a `Profile` per subscriber.
Keywords and description clauses recur across subscribers: each is worked out once per
run into the index rows of its terms and their weights (`_Part`), and a subscriber's
rows are the concatenation of their parts'. A term asked for by several parts is summed
again over the parts in order, as `Compiler.compile` sums it (a sum's rounding depends on
its order), so every weight is exactly the `Profile`'s. Subscribers who like papers get
a real `Profile` (their liked papers weigh in), turned into rows term by term.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from operator import mul
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import sparse

from digest.analysis import CorpusStats
from digest.models import Paper, Subscriber
from digest.postings import INDEXED_PHRASE, PaperIndex
from digest.profile import REASON_FLOOR, Asks, Compiler, Parts, Profile, Weights, compile_for
from digest.text import Name, clause_terms, name

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Request = tuple[Subscriber, Sequence[Paper], Sequence[Paper]]


@dataclass(frozen=True)
class Rows:
    """A batch of profiles as sparse rows over the index's terms, each row in the terms'
    sorted order: the order `judge` adds them in, so the products give its sums exactly."""

    weights: sparse.csr_matrix  # combined term weights
    lifts: sparse.csr_matrix  # keyword phrases: what a title mention adds
    vetoes: sparse.csr_matrix  # excluded terms
    asked: sparse.csr_matrix  # the asked weights of profiles without liked papers
    phrase: Bools  # per entry of `asked`: a keyword phrase
    authors: list[tuple[Name, ...]]  # per profile: the people followed
    # Per profile that likes papers: its `Profile` (the others' are compiled if needed).
    profiles: dict[int, Profile]


class _Part(NamedTuple):
    """What one keyword or description piece asks for, over the index's terms."""

    rows: list[int]  # index rows of its terms (those some paper holds)
    summed: list[float]  # each one's additions summed, before IDF
    weights: list[float]  # summed times IDF: the weight if no other part asks for it
    idf: list[float]
    single: list[bool]  # asked for once in the part (so a sum across parts is exact)
    adds: tuple[tuple[str, float], ...]  # every addition, in order (for the rare rest)
    terms: tuple[str, ...]  # aligned with `rows`
    phrases: list[int]  # index rows of its keyword phrases
    asks: bool  # whether it asks for any term at all


# The entries of a batch's rows: index rows, values and the profile each belongs to.
Entries = tuple[Ints, Floats, Ints]


class RowCompiler:
    """Rows for batches of subscribers of one run (one index, store and `Weights`)."""

    def __init__(
        self, index: PaperIndex, stats: CorpusStats, weights: Weights, compiler: Compiler
    ) -> None:
        self.index = index
        self.stats = stats
        self.weights = weights
        self.compiler = compiler
        self._parts = Parts(weights, self._part)
        self._excluded: dict[str, list[int]] = {}
        # Term → its index row (None when no paper holds it) and IDF.
        self._terms: dict[str, tuple[int | None, float]] = {}

    def profile(self, request: Request) -> Profile:
        """The request's `Profile` (for `judge`, which a few pairs need)."""
        subscriber, _, liked = request
        return compile_for(subscriber, self.stats, liked, self.weights, compiler=self.compiler)

    def rows(self, chunk: Sequence[Request]) -> Rows:
        """The rows of a batch of requests. Raises ConfigError (naming the file) for a
        subscriber whose interests give nothing to match."""
        found: list[int] = []
        summed: list[float] = []
        weights: list[float] = []
        idf: list[float] = []
        single: list[bool] = []
        sizes: list[int] = []
        plain: list[int] = []
        phrases: list[tuple[int, int]] = []
        vetoes: list[tuple[int, int]] = []
        authors: list[tuple[Name, ...]] = []
        profiles: dict[int, Profile] = {}
        parts_of: dict[int, list[_Part]] = {}
        of = self._parts.of
        for r, request in enumerate(chunk):
            interests = request[0].interests
            people: tuple[Name, ...] = ()
            if interests.authors:
                people = tuple(n for written in interests.authors if (n := name(written)))
            authors.append(people)
            if interests.liked:
                profiles[r] = self.profile(request)
                continue
            parts = of(interests)
            if not people and not any(part.asks for part in parts):
                self.profile(request)  # raises the subscriber's ConfigError
            before = len(found)
            for part in parts:
                found += part.rows
                summed += part.summed
                weights += part.weights
                idf += part.idf
                single += part.single
                if part.phrases:
                    phrases += zip(repeat(r), part.phrases)
            sizes.append(len(found) - before)
            plain.append(r)
            parts_of[r] = parts
            for excluded in interests.exclude:
                vetoes += zip(repeat(r), self._excluded.get(excluded) or self._exclude(excluded))
        owner = np.repeat(np.array(plain, dtype=np.int64), sizes)
        entries = _summed(
            self.index,
            (np.array(found, dtype=np.int64), np.array(weights, dtype=np.float64), owner),
            np.array(summed, dtype=np.float64),
            np.array(idf, dtype=np.float64),
            np.array(single, dtype=np.bool_),
            parts_of,
        )
        return self._rows(len(chunk), entries, phrases, vetoes, authors, profiles)

    def _rows(
        self,
        size: int,
        entries: Entries,
        phrases: list[tuple[int, int]],
        vetoes: list[tuple[int, int]],
        authors: list[tuple[Name, ...]],
        profiles: dict[int, Profile],
    ) -> Rows:
        index = self.index
        width = len(index.ids)
        ids, values, owner = entries
        # Keyword phrases (each once per profile) and what a title mention of each adds.
        pairs = np.unique(np.array(phrases, dtype=np.int64).reshape(-1, 2), axis=0)
        phrase_keys = pairs[:, 0] * width + pairs[:, 1]
        keys = owner * width + ids
        by_key = np.argsort(keys)
        at = by_key[np.searchsorted(keys, phrase_keys, sorter=by_key)]
        w = self.weights
        lifts = (pairs[:, 1], np.maximum(w.threshold - w.title * values[at], 0.0), pairs[:, 0])
        veto_pairs = np.array(vetoes, dtype=np.int64).reshape(-1, 2)
        vetoed = (veto_pairs[:, 1], np.ones(len(veto_pairs)), veto_pairs[:, 0])
        combined = entries
        if profiles:
            # Those who like papers: from their profiles, term by term.
            liked = list(profiles.items())
            more = _lookup(index, [r for r, _ in liked], [p.combined for _, p in liked])
            combined = _joined(entries, more)
            lifts = _joined(
                lifts, _lookup(index, [r for r, _ in liked], [p.settles for _, p in liked])
            )
            excluded = [[(t, 1.0) for t in p.exclude] for _, p in liked]
            vetoed = _joined(vetoed, _lookup(index, [r for r, _ in liked], excluded))
        ranks = index.ranks()
        # Only the terms that could be named in a reason (keyword phrases always can).
        floor = REASON_FLOOR * w.threshold
        phrase = np.isin(keys, phrase_keys)
        nameable = phrase | (values * index.bounds()[ids] >= floor)
        asked, order = _matrix(size, len(index.ids), None, _kept(entries, nameable))
        return Rows(
            weights=_matrix(
                size, len(index.ids), ranks if profiles else None, _kept(combined, combined[1] != 0)
            )[0],
            lifts=_matrix(size, len(index.ids), ranks, _kept(lifts, lifts[1] != 0))[0],
            vetoes=_matrix(size, len(index.ids), ranks, vetoed)[0],
            asked=asked,
            phrase=phrase[nameable][order],
            authors=authors,
            profiles=profiles,
        )

    def _part(self, adds: Asks, phrases: tuple[str, ...]) -> _Part:
        summed: dict[str, float] = {}
        repeated: set[str] = set()
        for term, weight in adds:
            if term in summed:
                summed[term] += weight
                repeated.add(term)
            else:
                summed[term] = 0.0 + weight  # as `Compiler._asked` sums, from 0.0
        known = self._terms
        terms = list(summed)
        found = [known.get(t) or self._learn(t) for t in terms]
        idf = [rarity for _, rarity in found]
        kept = list(summed.values())
        if any(row is None for row, _ in found):
            held = [row is not None for row, _ in found]
            found = list(compress(found, held))
            idf, kept = list(compress(idf, held)), list(compress(kept, held))
            terms = list(compress(terms, held))
        rows = [row for row, _ in found if row is not None]
        return _Part(
            rows=rows,
            summed=kept,
            weights=list(map(mul, kept, idf)),
            idf=idf,
            single=[t not in repeated for t in terms] if repeated else [True] * len(terms),
            adds=adds,
            terms=tuple(terms),
            phrases=[row for t in phrases if (row := self._row(t)) is not None],
            asks=bool(summed),
        )

    def _learn(self, term: str) -> tuple[int | None, float]:
        # Only a term some paper holds needs its IDF (the others are left out of rows).
        row = self._row(term)
        found = self._terms[term] = (row, 0.0 if row is None else self.stats.idf(term))
        return found

    def _exclude(self, excluded: str) -> list[int]:
        rows = [row for t in clause_terms(excluded) if (row := self._row(t)) is not None]
        self._excluded[excluded] = rows
        return rows

    def _row(self, term: str) -> int | None:
        row = self.index.ids.get(term)
        if row is None and term.count(" ") >= INDEXED_PHRASE:
            row = self.index.term(term)
        return row


def _summed(
    index: PaperIndex,
    entries: Entries,
    summed: Floats,
    idf: Floats,
    single: Bools,
    parts_of: dict[int, list[_Part]],
) -> Entries:
    """Each profile's terms once, in sorted order, weighed as `Compiler.compile` weighs
    them: a term several parts ask for is summed over every addition, in order."""
    ids, weights, owner = entries
    order = np.lexsort((index.ranks()[ids], owner))  # stable: parts stay in order
    ids, weights, owner = ids[order], weights[order], owner[order]
    summed, idf, single = summed[order], idf[order], single[order]
    again = np.r_[False, (owner[1:] == owner[:-1]) & (ids[1:] == ids[:-1])]
    first = np.flatnonzero(~again)
    if len(first) >= len(ids):  # (one more when there are none)
        return ids, weights, owner
    count = np.diff(np.r_[first, len(ids)])
    repeated = np.flatnonzero(count > 1)
    starts, counts = first[repeated], count[repeated]
    exact = np.minimum.reduceat(single, first)[repeated]
    # Parts that each add the term once: their sums, added in order, are the additions.
    total = np.zeros(len(repeated))
    for k in range(int(counts.max())):
        more = counts > k
        total[more] += summed[starts[more] + k]
    weights = weights.copy()
    weights[starts] = total * idf[starts]
    for g in np.flatnonzero(~exact).tolist():
        # A part adds the term more than once: summed addition by addition.
        start = int(starts[g])
        r, row = int(owner[start]), int(ids[start])
        value = 0.0
        for part in parts_of[r]:
            if row in part.rows:
                term = part.terms[part.rows.index(row)]
                for added, weight in part.adds:
                    if added == term:
                        value += weight
        weights[start] = value * float(idf[start])
    return ids[first], weights[first], owner[first]


def _lookup(
    index: PaperIndex, owners: list[int], per_profile: Sequence[Iterable[tuple[str, float]]]
) -> Entries:
    """Entries of the terms of some profiles, looked up one by one (long phrases found)."""
    ids: list[int] = []
    values: list[float] = []
    owned: list[int] = []
    for r, pairs in zip(owners, per_profile, strict=True):
        for term, value in pairs:
            row = index.ids.get(term)
            if row is None and term.count(" ") >= INDEXED_PHRASE:
                row = index.term(term)
            if row is not None:
                ids.append(row)
                values.append(value)
                owned.append(r)
    return (
        np.array(ids, dtype=np.int64),
        np.array(values, dtype=np.float64),
        np.array(owned, dtype=np.int64),
    )


def _joined(a: Entries, b: Entries) -> Entries:
    return (np.r_[a[0], b[0]], np.r_[a[1], b[1]], np.r_[a[2], b[2]])


def _kept(entries: Entries, keep: Bools) -> Entries:
    return entries[0][keep], entries[1][keep], entries[2][keep]


def _matrix(
    size: int, width: int, ranks: Floats | None, entries: Entries
) -> tuple[sparse.csr_matrix, Ints]:
    """The entries as `size` rows, each in the terms' sorted order (`ranks`; None when
    the entries are in that order already); and which entry each stored value is."""
    ids, values, owner = entries
    order = np.arange(len(ids)) if ranks is None else np.lexsort((ranks[ids], owner))
    indptr = np.zeros(size + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=size), out=indptr[1:])
    matrix = sparse.csr_matrix(
        (values[order], ids[order].astype(np.int32), indptr), shape=(size, width)
    )
    return matrix, order
