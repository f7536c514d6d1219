"""`PaperIndex`: the papers of a run as an inverted index, for `digest.index`.

Each term maps to the papers holding it and what each mention is worth there (a `Hit`),
so scoring a batch of profiles is a sparse matrix product instead of a look-up per
(subscriber, paper, term). Terms are numbered in sorted order (`ranks` places long
phrases found later among them), the order in which `judge` adds a profile's terms up;
`locate` finds where many (paper, term) pairs occur at once, for `digest.judge_bulk`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from itertools import chain, filterfalse, product, repeat, zip_longest
from operator import add, is_not, itemgetter
from typing import cast

import numpy as np
import numpy.typing as npt
from scipy import sparse

from digest.analysis import FIELDS, Evidence, Hit, PaperText, grams, hit, worth
from digest.runs import owners
from digest.text import Name, same_person

# Phrases of up to this many words are indexed with every paper; a longer one (rare in
# interests) is looked up when a profile asks for it.
INDEXED_PHRASE = 3

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

# Builds a NamedTuple (a Hit) from a tuple of its fields without its Python-level __new__.
_new = tuple.__new__


class PaperIndex:
    """The papers to score, each term mapped to the papers holding it and their Hits."""

    def __init__(self, texts: Sequence[PaperText], evidence: Evidence) -> None:
        self.texts = list(texts)
        self.papers = [t.paper for t in self.texts]
        # The most tokens any field of any paper has (a match's end is at most this).
        self.longest_field = max(
            (len(f.tokens) for text in self.texts for f in text.fields.values()), default=0
        )
        self.evidence = evidence
        # Per paper: every term it holds (up to INDEXED_PHRASE words) → its Hit.
        self.hits: list[dict[str, Hit]] = [self._paper_hits(t) for t in self.texts]
        # Rows in the terms' sorted order: a profile's row, sorted too, is then summed by the
        # matrix product in the order `judge` sums it, to the last bit (see `ranks`).
        self.names = _sorted_terms(set(chain.from_iterable(self.hits)))
        self.ids = dict(zip(self.names, range(len(self.names)), strict=True))
        sizes = [len(found) for found in self.hits]
        # The Hits of the entries, for `locate` (spans worked out when first needed).
        self._entry_hits = list(chain.from_iterable(map(dict.values, self.hits)))
        entries = len(self._entry_hits)
        titles = map(is_not, map(itemgetter(0), self._entry_hits), repeat(None))
        # The (term, paper) entries of the matrices: row, column, Hit.value, title mention.
        self._entries: tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], Floats, Floats] = (
            np.fromiter(
                map(self.ids.__getitem__, chain.from_iterable(self.hits)), np.int32, entries
            ),
            owners(np.array(sizes, dtype=np.int64)).astype(np.int32),
            np.fromiter(map(itemgetter(4), self._entry_hits), np.float64, entries),
            np.fromiter(titles, np.float64, entries),
        )
        # Long phrases, found when asked for: (row, paper, value, title) each.
        self._extra: list[tuple[int, int, float, float]] = []
        # Long phrases no paper holds: asked for again by other subscribers.
        self._absent: set[str] = set()
        self._built = -1
        self._matrices: tuple[sparse.csr_matrix, sparse.csr_matrix, sparse.csr_matrix]
        self._located: tuple[Ints, Ints, Floats] | None = None
        # Long phrases found later: their entries' keys, spans and abstract values.
        self._extra_located: tuple[list[int], list[tuple[int, ...]], list[float]] = ([], [], [])
        # Where each term stands in the sorted order of all terms (`ranks`).
        self._base_terms = len(self.names)
        self._ranks: Floats = np.arange(len(self.names), dtype=np.float64)
        self._places: tuple[Ints, Ints] = (np.zeros(0, np.int64), np.zeros(0, np.int64))
        self._bounds: Floats = np.zeros(0, dtype=np.float64)
        self._word_papers: dict[str, set[int]] | None = None
        # (Family name, first initial) → (paper, place in its author list, name) of each
        # author who has them.
        self.families: dict[tuple[str, str], list[tuple[int, int, Name]]] = {}
        # Family name → the first initials of its authors ("" for none written).
        self._initials: dict[str, set[str]] = {}
        self._followed: dict[tuple[Name, ...], dict[int, tuple[str, ...]]] = {}
        for p, text in enumerate(self.texts):
            for place, (_, author) in enumerate(text.authors):
                initial = author.given[0][0] if author.given else ""
                self.families.setdefault((author.family, initial), []).append((p, place, author))
                self._initials.setdefault(author.family, set()).add(initial)

    def _paper_hits(self, text: PaperText) -> dict[str, Hit]:
        """Every term of up to INDEXED_PHRASE words in the paper, with its Hit: what
        `find_hit` would give, from one pass over the paper's words.

        Worked out a field at a time in C-level list, dict and map operations; the terms
        come in the order they first occur (title, ai_keywords, abstract; by first word,
        then length).
        """
        order: dict[str | None, None] = {}
        # Per field: each term → its first occurrence (first token, tokens).
        firsts: list[dict[str | None, tuple[int, int]]] = []
        mentions: Counter[str | None] = Counter()
        for f in FIELDS:
            toks = text.fields[f].tokens
            # Every (first token, length) slot of the field in order, None where the
            # phrase would cross a clause or run past the end.
            slots = list(chain.from_iterable(zip_longest(*grams(toks, INDEXED_PHRASE))))
            order.update(dict.fromkeys(slots))
            # Later slots first, so a term's first slot is the one kept.
            spans = reversed(_slot_spans(len(toks)))
            firsts.append(dict(zip(reversed(slots), spans, strict=True)))
            if f == "abstract":
                mentions = Counter(slots)
        order.pop(None, None)
        terms = cast(list[str], list(order))
        titles, keywords, abstracts = (list(map(first.get, terms)) for first in firsts)
        counts = list(map(mentions.get, terms, repeat(0)))
        # What a term is worth depends only on these, which few terms of a paper differ in.
        in_title = map(is_not, titles, repeat(None))
        in_keywords = map(is_not, keywords, repeat(None))
        keys = list(zip(in_title, in_keywords, counts, strict=True))
        size = len(text.fields["abstract"].tokens)
        values = {key: worth(self.evidence, size, *key) for key in set(keys)}
        fields = map(add, zip(titles, keywords, abstracts, strict=True), map(values.get, keys))
        found: dict[str, Hit] = dict(zip(terms, map(_new, repeat(Hit), fields), strict=True))
        for long_form in text.acronyms:
            words = long_form.split()
            if len(words) <= INDEXED_PHRASE:
                acronym_hit = hit(text, self.evidence, {f: text.find(f, words) for f in FIELDS})
                if acronym_hit is None:
                    found.pop(long_form, None)
                else:
                    found[long_form] = acronym_hit
        return found

    def term(self, term: str) -> int | None:
        """The row of `term`, or None when no paper holds it."""
        known = self.ids.get(term)
        if known is not None:
            return known
        if term.count(" ") < INDEXED_PHRASE or term in self._absent:
            return None  # (a term's words are joined by one space)
        words = term.split()
        # A long phrase: only papers holding all of its words can hold it.
        holders = [self.word_papers().get(w, set()) for w in words]
        candidates = set.intersection(*sorted(holders, key=len))
        row = None
        for p in sorted(candidates):
            text = self.texts[p]
            found = hit(text, self.evidence, {f: text.find(f, words) for f in FIELDS})
            if found is None:
                continue
            if row is None:
                row = self.ids[term] = len(self.ids)
                self.names.append(term)
            self.hits[p][term] = found
            self._extra.append((row, p, found.value, 1.0 if found.title is not None else 0.0))
            keys, spans, values = self._extra_located
            keys.append((p << 32) + row)
            spans.append(_spans(found))
            values.append(found.abstract_value)
        if row is None:
            self._absent.add(term)
        return row

    def word_papers(self) -> dict[str, set[int]]:
        """Word → the papers holding it: built when a long phrase is first asked for."""
        if self._word_papers is None:
            self._word_papers = {}
            for p, found in enumerate(self.hits):
                for term in found:
                    if " " not in term:
                        self._word_papers.setdefault(term, set()).add(p)
        return self._word_papers

    def matrices(self) -> tuple[sparse.csr_matrix, sparse.csr_matrix, sparse.csr_matrix]:
        """(value, title, presence): term × paper matrices of Hit.value, of a title
        mention (1.0) and of any mention (1.0)."""
        if self._built != len(self.ids):
            # Rows are only ever added (long phrases found later): the rows built before
            # stay as they are, and only the new ones are made and stacked below them.
            built = self._built
            if built < 0:
                built = self._base_terms
                self._matrices = self._rows_of(*self._entries, 0, built)
            new = [entry for entry in self._extra if entry[0] >= built]
            if new:
                extra = np.array(new, dtype=np.float64)
                rows, cols = extra[:, 0].astype(np.int32), extra[:, 1].astype(np.int32)
                below = self._rows_of(rows, cols, extra[:, 2], extra[:, 3], built, len(self.ids))
                self._matrices = cast(
                    tuple[sparse.csr_matrix, sparse.csr_matrix, sparse.csr_matrix],
                    tuple(
                        sparse.vstack([above, more], format="csr")
                        for above, more in zip(self._matrices, below, strict=True)
                    ),
                )
            self._built = len(self.ids)
        return self._matrices

    def _rows_of(
        self,
        rows: npt.NDArray[np.int32],
        cols: npt.NDArray[np.int32],
        values: Floats,
        titles: Floats,
        first: int,
        past: int,
    ) -> tuple[sparse.csr_matrix, sparse.csr_matrix, sparse.csr_matrix]:
        """The matrices' rows from term row `first` up to `past`, of these entries."""
        shape = (past - first, len(self.texts))
        at = (rows - first, cols)
        return (
            sparse.csr_matrix((values, at), shape=shape),
            sparse.csr_matrix((titles, at), shape=shape),
            sparse.csr_matrix((np.ones_like(values), at), shape=shape),
        )

    def ranks(self) -> Floats:
        """Each term's place in the sorted order of all terms. The rows were numbered in
        that order; a long phrase found later goes between its neighbours."""
        if len(self._ranks) != len(self.names):
            base = self._base_terms
            later = sorted(range(base, len(self.names)), key=self.names.__getitem__)
            ranks = self._ranks = np.resize(self._ranks, len(self.names))
            step = 0.5 / (len(later) + 1)
            for n, row in enumerate(later):
                below = bisect_left(self.names, self.names[row], 0, base)
                ranks[row] = below - 0.5 + step * (n + 1)
        return self._ranks

    def places(self) -> tuple[Ints, Ints]:
        """`ranks` as whole numbers: each term row's place in the sorted order of all
        terms, and the row at each place."""
        if len(self._places[0]) != len(self.names):
            at_place = np.argsort(self.ranks())
            place = np.empty(len(at_place), dtype=np.int64)
            place[at_place] = np.arange(len(at_place))
            self._places = (place, at_place)
        return self._places

    def locate(self, wanted: Ints) -> tuple[npt.NDArray[np.bool_], Ints, Floats]:
        """For paper * 2**32 + term row: whether the paper holds the term; then for those
        it holds, where it first occurs, as (start, length) in title, ai_keywords and
        abstract (-1 where none; n x 6), and its abstract's value. Look-ups grouped by
        paper stay within its part of the entries: much faster."""
        if self._located is None:
            rows, cols, _, _ = self._entries
            keys = (cols.astype(np.int64) << 32) + rows
            order = np.argsort(keys)
            hits = self._entry_hits
            spans = np.column_stack([_field_spans(hits, n) for n in range(len(FIELDS))])
            values = np.fromiter(map(itemgetter(3), hits), np.float64, len(hits))
            self._located = (keys[order], spans[order], values[order])
        keys, spans, values = self._located
        where = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        held = keys[where] == wanted
        extra_keys, extra_spans, extra_values = self._extra_located
        limit = self._base_terms if extra_keys else 1 << 32
        late = np.flatnonzero((wanted & 0xFFFFFFFF) >= limit)
        if not len(late):
            where = where[held]
            return held, spans[where], values[where]
        # Long phrases found later (rows past the first ones): looked up among themselves.
        order = np.argsort(np.array(extra_keys, dtype=np.int64))
        later = np.array(extra_keys, dtype=np.int64)[order]
        there = np.minimum(np.searchsorted(later, wanted[late]), len(later) - 1)
        found = later[there] == wanted[late]
        late, there = late[found], order[there[found]]
        held[late] = True
        kept = np.flatnonzero(held)
        spans_of, values_of = spans[where[kept]], values[where[kept]]
        place = np.searchsorted(kept, late)
        spans_of[place] = np.array(extra_spans, dtype=np.int64).reshape(-1, 6)[there]
        values_of[place] = np.array(extra_values, dtype=np.float64)[there]
        return held, spans_of, values_of

    def bounds(self) -> Floats:
        """Per term row: the most a unit of weight of the term is worth in one field of a
        paper holding it (a title, ai_keywords or an abstract), for leaving out at once
        the terms that cannot be named in a reason."""
        if len(self._bounds) != len(self.names):
            e = self.evidence
            if not len(self._bounds):
                self.locate(np.zeros(0, dtype=np.int64))
                keys, spans, values = self._located  # type: ignore[misc]
                self._bounds = np.zeros(self._base_terms, dtype=np.float64)
                np.maximum.at(self._bounds, keys & 0xFFFFFFFF, _best(e, spans, values))
            # Long phrases found since: the rest of the rows.
            extra_keys, extra_spans, extra_values = self._extra_located
            done = len(self._bounds)
            later = np.zeros(len(self.names) - done, dtype=np.float64)
            rows = (np.array(extra_keys, dtype=np.int64) & 0xFFFFFFFF) - done
            mine = rows >= 0
            spans = np.array(extra_spans, dtype=np.int64).reshape(-1, 6)[mine]
            values = np.array(extra_values, dtype=np.float64)[mine]
            np.maximum.at(later, rows[mine], _best(e, spans, values))
            self._bounds = np.r_[self._bounds, later]
        return self._bounds

    def author_reasons(self, wanted: Iterable[Name]) -> dict[int, tuple[str, ...]]:
        """Paper → "author: …" for each of its authors among `wanted`, in its order: the
        reasons `judge` gives, each worth an author bonus."""
        people = tuple(wanted)
        # Remembered: subscribers follow the same people.
        known = self._followed.get(people)
        if known is not None:
            return known
        # Only authors of the family, with the same first initial or none, can be the same.
        seen: dict[tuple[int, int], Name] = {}
        for w in people:
            initials = [w.given[0][0], ""] if w.given else self._initials.get(w.family, ())
            for initial in initials:
                for p, place, author in self.families.get((w.family, initial), ()):
                    seen[p, place] = author
        matched = sorted(
            key for key, author in seen.items() if any(same_person(w, author) for w in people)
        )
        found: dict[int, tuple[str, ...]] = {}
        for p, place in matched:
            found[p] = (*found.get(p, ()), f"author: {self.texts[p].authors[place][0]}")
        self._followed[people] = found
        return found


def _sorted_terms(terms: set[str]) -> list[str]:
    """`sorted(terms)`, the ASCII ones sorted apart: Python compares strings of one byte a
    character much faster, and the rest (a few words of other scripts) merge in cheaply."""
    ascii_terms = sorted(filter(str.isascii, terms))
    if len(ascii_terms) < len(terms):
        ascii_terms += sorted(filterfalse(str.isascii, terms))
        ascii_terms.sort()  # two sorted runs: merged
    return ascii_terms


@lru_cache(maxsize=1 << 10)
def _slot_spans(size: int) -> tuple[tuple[int, int], ...]:
    """(first token, length) of each phrase slot of a field of `size` tokens, first token
    by first token, lengths 1..INDEXED_PHRASE (the order of `PaperIndex._paper_hits`'s
    slots). Shared: fields of one size recur."""
    return tuple(product(range(size), range(1, INDEXED_PHRASE + 1)))


def _spans(found: Hit) -> tuple[int, int, int, int, int, int]:
    """A Hit's first occurrences as (start, length) in title, ai_keywords and abstract."""
    title = found.title or (-1, -1)
    keywords = found.keywords or (-1, -1)
    abstract = found.abstract or (-1, -1)
    return (*title, *keywords, *abstract)


def _field_spans(hits: Sequence[Hit], field: int) -> Ints:
    """The hits' first occurrences in one field, `_spans` of many at once (n x 2)."""
    found = list(map(itemgetter(field), hits))
    # (-1, -1) for None, each span itself otherwise: a mapping's get, at C speed.
    spans = cast(Iterable[tuple[int, int]], map({None: (-1, -1)}.get, found, found))
    return np.fromiter(chain.from_iterable(spans), np.int64, 2 * len(hits)).reshape(-1, 2)


def _best(evidence: Evidence, spans: Ints, abstract_values: Floats) -> Floats:
    """Per entry: the most a unit of weight is worth in one of its fields."""
    best = np.maximum(abstract_values, np.where(spans[:, 0] >= 0, evidence.title, 0.0))
    return np.maximum(best, np.where(spans[:, 2] >= 0, evidence.ai_keywords, 0.0))
