"""Papers analysed once for every subscriber, and what a store of them says about words.

A paper's title, Hugging Face `ai_keywords` and abstract are read into terms (see
`digest.text`) once per run, independently of any subscriber (`analyse`). `CorpusStats`
counts in how many papers of the store each term occurs, which is how rare (and so how
telling) a term is. `Hit` is what one term's occurrences in one paper are worth as
evidence: the single number both the one-subscriber path (`digest.match`) and the
many-subscribers path (`digest.index`) add up, so both give the same scores.
"""

from __future__ import annotations

import gc
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple

from digest.models import Paper
from digest.text import Name, Token, acronyms, name, tokens

# An abstract's length is measured against the store's average, and against this many
# content words while the store is empty.
DEFAULT_ABSTRACT_LENGTH = 120.0
# IDF prior: before a store has papers, every term is taken to occur in PRIOR_RATE of
# them; the store's own counts take over as it grows past PRIOR_DOCUMENTS papers.
PRIOR_DOCUMENTS = 20.0
PRIOR_RATE = 0.01
# Phrases are counted in the store up to this length; longer ones are estimated.
MAX_COUNTED_PHRASE = 2

FIELDS = ("title", "keywords", "abstract")


@dataclass(frozen=True)
class FieldText:
    """One field of a paper (title, ai_keywords or abstract), ready for phrase look-ups."""

    text: str
    tokens: tuple[Token, ...]
    positions: Mapping[str, tuple[int, ...]]
    # surface() by (start, length): reasons for many subscribers quote the same words.
    _surfaces: dict[tuple[int, int], str] = field(default_factory=dict, compare=False, repr=False)
    # (first token, past the last) → its surface and spaced words (`digest.match.named`).
    _quoted: dict[tuple[int, int], tuple[str, str]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def of(cls, text: str) -> FieldText:
        toks = tuple(tokens(text))
        where: dict[str, list[int]] = {}
        for i, tok in enumerate(toks):
            where.setdefault(tok.stem, []).append(i)
        return cls(text, toks, {k: tuple(v) for k, v in where.items()})

    def find(self, words: Sequence[str], acronym: str | None = None) -> list[tuple[int, int]]:
        """Where the phrase `words` occurs, as (first token, tokens): consecutive content
        words in one clause, or its `acronym` (except where it is being defined)."""
        found = []
        for i in self.positions.get(words[0], ()):
            if i + len(words) > len(self.tokens):
                break
            clause = self.tokens[i].clause
            if all(
                self.tokens[i + k].stem == w and self.tokens[i + k].clause == clause
                for k, w in enumerate(words)
            ):
                found.append((i, len(words)))
        if acronym is not None:
            defined = {i + n for i, n in found}
            found += [(i, 1) for i in self.positions.get(acronym, ()) if i not in defined]
            found.sort()
        return found

    def surface(self, start: int, length: int) -> str:
        """The phrase as the paper wrote it (line breaks and runs of spaces as one space)."""
        known = self._surfaces.get((start, length))
        if known is None:
            written = self.text[self.tokens[start].start : self.tokens[start + length - 1].end]
            known = self._surfaces[start, length] = " ".join(written.split())
        return known


@dataclass(frozen=True)
class PaperText:
    """A paper's analysed text and author names: computed once, shared by every profile."""

    paper: Paper
    fields: Mapping[str, FieldText]
    authors: tuple[tuple[str, Name], ...]
    # Long forms the paper abbreviates (stems → acronym stem), from its title and abstract.
    acronyms: Mapping[str, str] = field(default_factory=dict)

    def find(self, name: str, words: Sequence[str]) -> list[tuple[int, int]]:
        """Where the phrase `words` occurs in field `name`, by its acronym too."""
        return self.fields[name].find(words, self.acronyms.get(" ".join(words)))

    def terms(self, max_len: int) -> set[str]:
        """Every word and phrase of up to `max_len` words in the paper."""
        found: set[str | None] = set()
        for text in self.fields.values():
            found.update(*grams(text.tokens, max_len))
        found.discard(None)
        return found  # type: ignore[return-value]


def grams(toks: Sequence[Token], max_len: int) -> list[list[str | None]]:
    """For n = 1..`max_len` (at least 1): the phrase of n tokens that begins at each token,
    None where it would run into the next clause.

    Built a length at a time from the one before, in list comprehensions: a paper's
    words and phrases are read for every paper of a run, twice (`counted`, the index).
    """
    stems = [t.stem for t in toks]
    found: list[list[str | None]] = [stems]  # type: ignore[list-item]
    if max_len > 1:
        marks = [t.clause for t in toks]
        shorter: list[str | None] = stems  # type: ignore[assignment]
        for n in range(1, max_len):
            # Clauses never decrease: first and last token in one clause is all in one.
            shorter = [
                f"{phrase} {word}" if first == last else None
                for phrase, word, first, last in zip(
                    shorter, stems[n:], marks, marks[n:], strict=False
                )
            ]
            found.append(shorter)
    return found


def counted(text: PaperText) -> tuple[set[str], int]:
    """What a paper adds to `CorpusStats`: the terms counted in it, and its abstract's
    length in content words."""
    return text.terms(MAX_COUNTED_PHRASE), len(text.fields["abstract"].tokens)


def count_terms(texts: Iterable[PaperText]) -> tuple[int, Counter[str], int]:
    """(papers, in how many of them each term occurs, their abstracts' content words), as
    `CorpusStats.from_counts` takes them; the first of each id counts."""
    counts: Counter[str] = Counter()
    seen: set[str] = set()
    words = 0
    for text in texts:
        if text.paper.id in seen:
            continue
        seen.add(text.paper.id)
        terms, abstract_words = counted(text)
        counts.update(terms)
        words += abstract_words
    return len(seen), counts, words


def recount(old: Paper | None, new: Paper) -> tuple[Counter[str], int]:
    """What storing `new` in place of `old` changes in the counts behind `CorpusStats`
    (see `CorpusStats.from_counts`): nothing unless the text analysed changed."""
    if old is not None and _analysed_fields(old) == _analysed_fields(new):
        return Counter(), 0
    terms, words = counted(analyse(new))
    changes = Counter(dict.fromkeys(terms, 1))
    if old is not None:
        old_terms, old_words = counted(analyse(old))
        changes.subtract(dict.fromkeys(old_terms, 1))
        words -= old_words
    return changes, words


def _analysed_fields(paper: Paper) -> tuple[str, str, tuple[str, ...]]:
    return paper.title, paper.abstract, tuple(paper.ai_keywords)


def analyse(paper: Paper) -> PaperText:
    fields = {
        "title": FieldText.of(paper.title),
        # One clause per keyword, so no phrase runs from one keyword into the next.
        "keywords": FieldText.of(". ".join(paper.ai_keywords)),
        "abstract": FieldText.of(paper.abstract),
    }
    defined: dict[str, str] = {}
    for f in ("title", "abstract"):
        defined.update(acronyms(fields[f].text, list(fields[f].tokens)))
    return PaperText(
        paper=paper,
        fields=fields,
        authors=tuple((written, n) for written in paper.authors if (n := name(written))),
        acronyms=defined,
    )


def analyse_all(papers: Iterable[Paper]) -> dict[str, PaperText]:
    """Each paper analysed (by id), for a run to share among its subscribers."""
    with collector_paused():
        return {paper.id: analyse(paper) for paper in papers}


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off meanwhile, and on again after.

    Analysing papers and matching make millions of small objects and no reference
    cycles: with a large heap around (a run's subscribers), the collector would only
    rescan it again and again, half the time of analysing a day's papers.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if not gc.get_freeze_count():
                # The first young collection would scan all that was made meanwhile (a
                # second or two of a large run), mostly objects that live on: they go to
                # the oldest generation at once, as surviving collections would.
                gc.freeze()
                gc.unfreeze()
            gc.enable()


@dataclass(frozen=True)
class CorpusStats:
    """Document frequencies of stemmed terms (and phrases) over a set of papers."""

    documents: int = 0
    frequencies: Mapping[str, int] = field(default_factory=dict)
    abstract_length: float = DEFAULT_ABSTRACT_LENGTH
    # idf() by term: a run asks for the same terms once per subscriber.
    _idf: dict[str, float] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_papers(cls, papers: Iterable[Paper]) -> CorpusStats:
        return cls.from_analysed(analyse(p) for p in papers)

    @classmethod
    def from_analysed(cls, texts: Iterable[PaperText]) -> CorpusStats:
        """`from_papers` on papers analysed beforehand (the first of each id counts)."""
        return cls.from_counts(*count_terms(texts))

    @classmethod
    def from_counts(cls, documents: int, counts: Mapping[str, int], words: int) -> CorpusStats:
        """The stats of `documents` papers in which each term occurs in `counts[term]`
        papers, their abstracts `words` content words long in all (what `counted` gives,
        summed): how a store keeps them from run to run."""
        # A phrase seen once says little more than one never seen; keeping only repeated
        # phrases keeps the table small for a store of many thousand papers.
        kept = {t: n for t, n in counts.items() if n > 1 or (n > 0 and " " not in t)}
        length = words / documents if words and documents else DEFAULT_ABSTRACT_LENGTH
        return cls(documents, kept, length)

    def frequency(self, term: str) -> int:
        """In how many papers `term` occurs (for long phrases: at most how many).

        A phrase missing from the table counts as seen once: phrases seen once are not
        kept, and the papers being scored are in the store, so a phrase that matches one
        has been seen at least once.
        """
        words = term.split()
        if len(words) == 1:
            return self.frequencies.get(term, 0)
        unseen = 1 if self.documents else 0
        return min(
            self.frequencies.get(" ".join(words[i : i + MAX_COUNTED_PHRASE]), unseen)
            for i in range(max(len(words) - MAX_COUNTED_PHRASE + 1, 1))
        )

    def idf(self, term: str) -> float:
        """log(1 / share of papers holding `term`), the share smoothed by the prior."""
        known = self._idf.get(term)
        if known is None:
            held = self.frequency(term) + PRIOR_DOCUMENTS * PRIOR_RATE
            known = self._idf[term] = math.log((self.documents + PRIOR_DOCUMENTS) / held)
        return known


# ---------------------------------------------------------------------------------------
# Evidence


@dataclass(frozen=True)
class Evidence:
    """How occurrences turn into evidence: the numbers of `Weights` that concern a paper
    alone, and the store's average abstract length."""

    title: float
    ai_keywords: float
    saturation: float
    length_normalisation: float
    abstract_length: float


class Hit(NamedTuple):
    """One term in one paper: where it first occurs in each field, and what it is worth
    for each unit of weight a profile gives the term."""

    title: tuple[int, int] | None
    keywords: tuple[int, int] | None
    abstract: tuple[int, int] | None
    # BM25's saturating, length-corrected count of the mentions in the abstract.
    abstract_value: float
    # title, ai_keywords and abstract together: what the term adds per unit of weight.
    value: float


def hit(
    text: PaperText, evidence: Evidence, found: Mapping[str, Sequence[tuple[int, int]]]
) -> Hit | None:
    """The Hit of occurrences `found` (field → (first token, tokens), in order)."""
    title, keywords, abstract = (found.get(f) for f in FIELDS)
    if not (title or keywords or abstract):
        return None
    abstract_value, value = worth(
        evidence,
        len(text.fields["abstract"].tokens),
        bool(title),
        bool(keywords),
        len(abstract) if abstract else 0,
    )
    return Hit(
        title[0] if title else None,
        keywords[0] if keywords else None,
        abstract[0] if abstract else None,
        abstract_value,
        value,
    )


def worth(
    evidence: Evidence, abstract_words: int, title: bool, keywords: bool, mentions: int
) -> tuple[float, float]:
    """(Hit.abstract_value, Hit.value) of a term in (or not in) a paper's title and
    ai_keywords, mentioned `mentions` times in its abstract of `abstract_words` words:
    the arithmetic of every Hit, wherever it is made."""
    value = abstract_value = 0.0
    if title:
        value += evidence.title
    if keywords:
        value += evidence.ai_keywords
    if mentions:
        b, k = evidence.length_normalisation, evidence.saturation
        length = abstract_words / evidence.abstract_length
        count = mentions / (1 - b + b * length)
        abstract_value = count * (k + 1) / (count + k)
        value += abstract_value
    return abstract_value, value


def find_hit(text: PaperText, evidence: Evidence, term: str) -> Hit | None:
    """The Hit of `term` in the paper, looked up field by field."""
    words = term.split()
    return hit(text, evidence, {f: text.find(f, words) for f in FIELDS})
