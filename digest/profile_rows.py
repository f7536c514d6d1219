"""Subscribers' profiles as sparse rows over a `PaperIndex`, compiled a batch at a time.

`digest.index` scores a batch of subscribers with sparse products, so what it needs of
a profile is rows of numbers over the index's terms, not a `Profile` per subscriber.
Keywords and description clauses recur across subscribers: each is worked out once per
run into a *part*, one row of a parts x terms matrix holding what the part asks of each
term before IDF. A batch of subscribers is then a 0/1 matrix of the parts they are made
of, in order, and one more sparse product adds each term up over the parts in that order,
starting from zero: how `Compiler.compile` adds it, so every weight is exactly the
`Profile`'s. Subscribers who like papers get a real `Profile` (their liked papers weigh
in), turned into rows term by term.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import repeat
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse

from digest.analysis import CorpusStats
from digest.models import Paper, Subscriber
from digest.parts import Asks, Parts, keyword_scale, part_sums, strongest_head
from digest.postings import PaperIndex
from digest.profile import Compiler, Profile, compile_for
from digest.runs import owners, spans
from digest.text import Name, clause_terms, name
from digest.weights import REASON_FLOOR, Weights

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
    # Per profile that likes papers: its `Profile` (the others': `held_profile`).
    profiles: dict[int, Profile]


class _Column:
    """A column of numbers that grows at its end (doubling its room), kept as an array."""

    def __init__(self, dtype: type[np.generic]) -> None:
        self.values: npt.NDArray[Any] = np.zeros(1024, dtype=dtype)
        self.size = 0

    def extend(self, more: Sequence[float] | Sequence[int]) -> None:
        end = self.size + len(more)
        if end > len(self.values):
            self.values = np.resize(self.values, max(end, 2 * len(self.values)))
        self.values[self.size : end] = more
        self.size = end


class _PartRows:
    """The parts of a run, each a row: what it asks of each term (summed, before IDF),
    and its keyword phrases. Parts are added as they are met (to lists, then to arrays
    once per batch); a batch reads the rows of the parts it uses."""

    def __init__(self) -> None:
        self._terms, self._summed = _Column(np.int64), _Column(np.float64)
        self._phrases = _Column(np.int64)
        # Per part: where its entries and its phrases start and end, and whether it asks
        # for any term at all.
        self._bounds, self._asks = _Column(np.int64), _Column(np.bool_)
        self._strongest = _Column(np.float64)  # per part: its strongest head's weight
        self._new: tuple[list[int], list[float], list[int], list[int], list[bool], list[float]]
        self._new = ([], [], [], [], [], [])
        self._count = 0

    def add(
        self,
        terms: list[int],
        summed: list[float],
        phrases: list[int],
        asks: bool,
        strongest: float,
    ) -> int:
        new_terms, new_summed, new_phrases, bounds, new_asks, new_strongest = self._new
        begin = self._terms.size + len(new_terms)
        phrases_begin = self._phrases.size + len(new_phrases)
        new_terms += terms
        new_summed += summed
        new_phrases += phrases
        bounds += (begin, begin + len(terms), phrases_begin, phrases_begin + len(phrases))
        new_asks.append(asks)
        new_strongest.append(strongest)
        self._count += 1
        return self._count - 1

    def matrices(
        self, used: Ints, width: int
    ) -> tuple[sparse.csr_matrix, sparse.csr_matrix, Bools, Floats]:
        """The `used` parts' rows (asked, phrases: len(used) x `width`), whether each
        asks for any term, and the weight of its strongest head."""
        new_terms, new_summed, new_phrases, bounds, new_asks, new_strongest = self._new
        if new_asks:
            self._terms.extend(new_terms)
            self._summed.extend(new_summed)
            self._phrases.extend(new_phrases)
            self._bounds.extend(bounds)
            self._asks.extend(new_asks)
            self._strongest.extend(new_strongest)
            self._new = ([], [], [], [], [], [])
        where = self._bounds.values[: 4 * self._count].reshape(-1, 4)[used]
        entries, ends = spans(where[:, 0], where[:, 1])
        phrases, phrase_ends = spans(where[:, 2], where[:, 3])
        shape = (len(used), width)
        asked = _csr(self._summed.values[entries], self._terms.values[entries], ends, shape)
        ones = np.ones(len(phrases))
        return (
            asked,
            _csr(ones, self._phrases.values[phrases], phrase_ends, shape),
            self._asks.values[used].astype(np.bool_),
            self._strongest.values[used],
        )


class RowCompiler:
    """Rows for batches of subscribers of one run (one index, store and `Weights`)."""

    def __init__(
        self, index: PaperIndex, stats: CorpusStats, weights: Weights, compiler: Compiler
    ) -> None:
        self.index = index
        self.stats = stats
        self.weights = weights
        self.compiler = compiler
        self._part_rows = _PartRows()
        # A part is a row of `_part_rows` however often it is met: remember each one.
        self._parts = Parts(weights, self._part, every_piece=True)
        self._excluded: dict[str, list[int]] = {}
        # Term → its index row (None when no paper holds it).
        self._terms: dict[str, int | None] = {}
        self._idf: Floats = np.zeros(0, dtype=np.float64)  # per index row, once asked for
        self._idf_known: dict[int, float] = {}

    def profile(self, request: Request) -> Profile:
        """The request's `Profile`, compiled (for those who like papers)."""
        subscriber, _, liked = request
        return compile_for(subscriber, self.stats, liked, self.weights, compiler=self.compiler)

    def held_profile(self, request: Request, rows: Rows, r: int) -> Profile:
        """The `Profile` of `request`, row r of `rows`, as far as the index's papers can
        tell: its terms that no paper holds left out (`judge` finds none of them there).
        Read off the rows, which is much cheaper than compiling it again."""
        if r in rows.profiles:
            return rows.profiles[r]
        names = self.index.names
        start, stop = rows.weights.indptr[r], rows.weights.indptr[r + 1]
        held = rows.weights.indices[start:stop].tolist()
        terms = dict(
            zip([names[i] for i in held], rows.weights.data[start:stop].tolist(), strict=True)
        )
        start, stop = rows.asked.indptr[r], rows.asked.indptr[r + 1]
        phrases = rows.asked.indices[start:stop][rows.phrase[start:stop]].tolist()
        interests = request[0].interests
        return Profile(
            terms=terms,
            phrases=frozenset(names[i] for i in phrases),
            exclude=tuple(t for e in interests.exclude for t in clause_terms(e)),
            authors=rows.authors[r],
            weights=self.weights,
            abstract_length=self.stats.abstract_length,
        )

    def rows(self, chunk: Sequence[Request]) -> Rows:
        """The rows of a batch of requests. Raises ConfigError (naming the file) for a
        subscriber whose interests give nothing to match."""
        made_of: list[int] = []  # the parts of each profile in turn
        sizes: list[int] = []
        vetoes: list[tuple[int, int]] = []
        authors: list[tuple[Name, ...]] = []
        profiles: dict[int, Profile] = {}
        of = self._parts.of
        excluded = self._excluded
        for r, request in enumerate(chunk):
            interests = request[0].interests
            people: tuple[Name, ...] = ()
            if interests.authors:
                people = tuple(n for written in interests.authors if (n := name(written)))
            authors.append(people)
            if interests.liked:
                profiles[r] = self.profile(request)
                sizes.append(0)
                continue
            parts = of(interests)
            made_of += parts
            sizes.append(len(parts))
            for written in interests.exclude:
                found = excluded[written] if written in excluded else self._exclude(written)
                vetoes += zip(repeat(r), found)
        width = len(self.index.ids)
        used, local = np.unique(np.array(made_of, dtype=np.int64), return_inverse=True)
        asked, phrases, asks, strongest = self._part_rows.matrices(used, width)
        made = _csr(np.ones(len(made_of)), local, np.cumsum(sizes), (len(chunk), len(used)))
        asking = made @ asks.astype(np.float64)  # per profile: its parts that ask anything
        for r in np.flatnonzero(asking == 0).tolist():
            if r not in profiles and not authors[r]:
                self.profile(chunk[r])  # raises the subscriber's ConfigError
        summed = made @ asked
        summed.data *= self._idf_of(width)[summed.indices]
        scales = self._scales(strongest[local], np.array(sizes, dtype=np.int64))
        if (scales != 1.0).any():
            summed.data *= scales[owners(np.diff(summed.indptr))]
        return self._rows(len(chunk), summed, made @ phrases, vetoes, authors, profiles)

    def _rows(
        self,
        size: int,
        weights: sparse.csr_matrix,
        phrases: sparse.csr_matrix,
        vetoes: list[tuple[int, int]],
        authors: list[tuple[Name, ...]],
        profiles: dict[int, Profile],
    ) -> Rows:
        index = self.index
        width = len(index.ids)
        ranks = index.ranks()
        entries = _in_order(weights, index.places())
        ids, values, owner = entries
        # Keyword phrases (each once per profile) and what a title mention of each adds.
        phrase_owner = owners(np.diff(phrases.indptr))
        phrase_keys = np.unique(phrase_owner * width + phrases.indices)
        keys = owner * width + ids
        phrase = np.isin(keys, phrase_keys, assume_unique=True)
        w = self.weights
        lifts = (
            ids[phrase],
            np.maximum(w.threshold - w.title * values[phrase], 0.0),
            owner[phrase],
        )
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
            # Their long phrases may be new to the index: more terms, ranked among the rest.
            width, ranks = len(index.ids), index.ranks()
        # Only the terms that could be named in a reason (keyword phrases always can).
        floor = REASON_FLOOR * w.threshold
        nameable = phrase | (values * index.bounds()[ids] >= floor)
        asked, order = _matrix(size, width, None, _kept(entries, nameable))
        return Rows(
            weights=_matrix(
                size, width, ranks if profiles else None, _kept(combined, combined[1] != 0)
            )[0],
            lifts=_matrix(size, width, ranks, _kept(lifts, lifts[1] != 0))[0],
            vetoes=_matrix(size, width, ranks, vetoed)[0],
            asked=asked,
            phrase=phrase[nameable][order],
            authors=authors,
            profiles=profiles,
        )

    def _scales(self, strongest: Floats, sizes: Ints) -> Floats:
        """Per profile: `keyword_scale` of its strongest head (`strongest` holds its
        parts' in turn, `sizes` how many parts each profile has)."""
        most = np.zeros(len(sizes), dtype=np.float64)
        np.maximum.at(most, owners(sizes), strongest)
        # The one definition, profile by profile (a batch's few thousand calls cost
        # about a millisecond): the same scale, to the bit, as `Compiler.compile`'s.
        scale = partial(keyword_scale, self.weights)
        return np.fromiter(map(scale, most.tolist()), np.float64, len(most))

    def _part(self, adds: Asks, phrases: tuple[str, ...], heads: tuple[str, ...]) -> int:
        summed = part_sums(adds)
        known = self._terms
        rows: list[int] = []
        kept: list[float] = []
        for term, value in summed.items():
            row = known[term] if term in known else self._learn(term)
            if row is not None:
                rows.append(row)
                kept.append(value)
        found = [row for t in phrases if (row := self.index.term(t)) is not None]
        strongest = strongest_head(summed, heads, self.stats.idf)
        return self._part_rows.add(rows, kept, found, bool(summed), strongest)

    def _learn(self, term: str) -> int | None:
        # Only a term some paper holds needs its IDF (the others are left out of rows).
        row = self._terms[term] = self.index.term(term)
        if row is not None:
            self._idf_known[row] = self.stats.idf(term)
        return row

    def _idf_of(self, width: int) -> Floats:
        """Per index row: its IDF, for the rows asked for so far."""
        if self._idf_known:
            if len(self._idf) < width:
                self._idf = np.r_[self._idf, np.zeros(width - len(self._idf))]
            rows = np.fromiter(self._idf_known.keys(), np.int64, len(self._idf_known))
            self._idf[rows] = np.fromiter(self._idf_known.values(), np.float64, len(rows))
            self._idf_known = {}
        return self._idf

    def _exclude(self, excluded: str) -> list[int]:
        rows = [row for t in clause_terms(excluded) if (row := self.index.term(t)) is not None]
        self._excluded[excluded] = rows
        return rows


# The entries of a batch's rows: index rows, values and the profile each belongs to.
Entries = tuple[Ints, Floats, Ints]


def _csr(
    data: npt.ArrayLike, indices: npt.ArrayLike, ends: npt.ArrayLike, shape: tuple[int, int]
) -> sparse.csr_matrix:
    """A CSR matrix with its entries exactly as given, in that order (duplicates too)."""
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    indptr[1:] = ends
    return sparse.csr_matrix(
        (np.asarray(data, dtype=np.float64), np.asarray(indices, dtype=np.int64), indptr),
        shape=shape,
    )


def _in_order(matrix: sparse.csr_matrix, places: tuple[Ints, Ints]) -> Entries:
    """The matrix's entries, each row in the terms' sorted order (`PaperIndex.places`)."""
    place, at_place = places
    ordered = sparse.csr_matrix((matrix.data, place[matrix.indices], matrix.indptr), matrix.shape)
    ordered.sort_indices()
    owner = owners(np.diff(ordered.indptr))
    return at_place[ordered.indices], ordered.data, owner


def _lookup(
    index: PaperIndex, owners: list[int], per_profile: Sequence[Iterable[tuple[str, float]]]
) -> Entries:
    """Entries of the terms of some profiles, looked up one by one (long phrases found)."""
    ids: list[int] = []
    values: list[float] = []
    owned: list[int] = []
    for r, pairs in zip(owners, per_profile, strict=True):
        for term, value in pairs:
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
