"""`PaperIndex`: the papers of a run as an inverted index, for `digest.index`.

Each term maps to the papers holding it and what each mention is worth there (a `Hit`),
so scoring a batch of profiles is a sparse matrix product instead of a look-up per
(subscriber, paper, term).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt
from scipy import sparse

from digest.analysis import FIELDS, Evidence, Hit, PaperText, hit
from digest.text import Name, same_person

# Phrases of up to this many words are indexed with every paper; a longer one (rare in
# interests) is looked up when a profile asks for it.
INDEXED_PHRASE = 3

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


class PaperIndex:
    """The papers to score, each term mapped to the papers holding it and their Hits."""

    def __init__(self, texts: Sequence[PaperText], evidence: Evidence) -> None:
        self.texts = list(texts)
        self.papers = [t.paper for t in self.texts]
        self.evidence = evidence
        # Per paper: every term it holds (up to INDEXED_PHRASE words) → its Hit.
        self.hits: list[dict[str, Hit]] = [self._paper_hits(t) for t in self.texts]
        ids: dict[str, int] = {}
        for found in self.hits:
            for term in found:
                if term not in ids:
                    ids[term] = len(ids)
        self.ids = ids
        sizes = [len(found) for found in self.hits]
        get = ids.__getitem__
        # The (term, paper) entries of the matrices: row, column, Hit.value, title mention.
        self._entries: tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], Floats, Floats] = (
            np.fromiter((get(t) for found in self.hits for t in found), np.int32, sum(sizes)),
            np.repeat(np.arange(len(self.hits), dtype=np.int32), sizes),
            np.fromiter((h.value for found in self.hits for h in found.values()), np.float64),
            np.fromiter(
                (h.title is not None for found in self.hits for h in found.values()), np.float64
            ),
        )
        # Long phrases, found when asked for: (row, paper, value, title) each.
        self._extra: list[tuple[int, int, float, float]] = []
        # Long phrases no paper holds: asked for again by other subscribers.
        self._absent: set[str] = set()
        self._built = -1
        self._matrices: tuple[sparse.csr_matrix, sparse.csr_matrix, sparse.csr_matrix]
        self._word_papers: dict[str, set[int]] | None = None
        self.families: dict[str, list[tuple[int, Name]]] = {}
        self._followed: dict[tuple[Name, ...], dict[int, int]] = {}
        for p, text in enumerate(self.texts):
            for _, author in text.authors:
                self.families.setdefault(author.family, []).append((p, author))

    def _paper_hits(self, text: PaperText) -> dict[str, Hit]:
        """Every term of up to INDEXED_PHRASE words in the paper, with its Hit: what
        `find_hit` would give, from one pass over the paper's words."""
        # Per term: its first occurrence in title, keywords and abstract, and how many
        # times the abstract holds it.
        seen: dict[str, list[tuple[int, int] | int | None]] = {}
        for slot, f in enumerate(FIELDS):
            toks = text.fields[f].tokens
            stems = [t.stem for t in toks]
            marks = [t.clause for t in toks]
            size = len(toks)
            for i in range(size):
                clause = marks[i]
                term = stems[i]
                for j in range(i, min(i + INDEXED_PHRASE, size)):
                    if j > i:
                        if marks[j] != clause:
                            break
                        term = f"{term} {stems[j]}"
                    entry = seen.get(term)
                    if entry is None:
                        entry = seen[term] = [None, None, None, 0]
                    if entry[slot] is None:
                        entry[slot] = (i, j - i + 1)
                    if slot == 2:
                        entry[3] += 1  # type: ignore[operator]
        found: dict[str, Hit] = {}
        evidence = self.evidence
        b, k = evidence.length_normalisation, evidence.saturation
        length = len(text.fields["abstract"].tokens) / evidence.abstract_length
        for term, (title, keywords, abstract, mentions) in seen.items():
            value = abstract_value = 0.0
            if title is not None:
                value += evidence.title
            if keywords is not None:
                value += evidence.ai_keywords
            if abstract is not None:
                count = mentions / (1 - b + b * length)  # type: ignore[operator]
                abstract_value = count * (k + 1) / (count + k)
                value += abstract_value
            found[term] = Hit(title, keywords, abstract, abstract_value, value)  # type: ignore[arg-type]
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
        words = term.split()
        if len(words) <= INDEXED_PHRASE or term in self._absent:
            return None
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
            self.hits[p][term] = found
            self._extra.append((row, p, found.value, 1.0 if found.title is not None else 0.0))
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
            extra = np.array(self._extra, dtype=np.float64).reshape(-1, 4)
            rows, cols, values, titles = self._entries
            rows = np.concatenate([rows, extra[:, 0].astype(np.int32)])
            cols = np.concatenate([cols, extra[:, 1].astype(np.int32)])
            values = np.concatenate([values, extra[:, 2]])
            titles = np.concatenate([titles, extra[:, 3]])
            shape = (len(self.ids), len(self.texts))
            self._matrices = (
                sparse.csr_matrix((values, (rows, cols)), shape=shape),
                sparse.csr_matrix((titles, (rows, cols)), shape=shape),
                sparse.csr_matrix((np.ones_like(values), (rows, cols)), shape=shape),
            )
            self._built = len(self.ids)
        return self._matrices

    def author_matches(self, wanted: Iterable[Name]) -> dict[int, int]:
        """Paper → how many of its authors are among `wanted`."""
        people = tuple(wanted)
        # Remembered: subscribers follow the same people.
        known = self._followed.get(people)
        if known is not None:
            return known
        matched: dict[int, int] = {}
        for family in {n.family for n in people}:
            for p, author in self.families.get(family, ()):
                if any(same_person(w, author) for w in people):
                    matched[p] = matched.get(p, 0) + 1
        self._followed[people] = matched
        return matched
