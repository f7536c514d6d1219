"""Compiling a subscriber's `[interests]` into a `Profile`: the terms they asked for, each
weighed by how much they asked (a keyword more than a word of the description) and how
rare it is among the papers in the store (IDF); their authors, exclusions and liked
papers. `digest.match` scores papers against a Profile; `digest.index` scores many.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from digest.analysis import (
    DEFAULT_ABSTRACT_LENGTH,
    MAX_COUNTED_PHRASE,
    CorpusStats,
    Evidence,
    analyse,
    find_hit,
)
from digest.errors import ConfigError
from digest.models import Interests, Paper, Subscriber
from digest.parts import Asks, Parts, keyword_scale, part_sums, strongest_head
from digest.text import Name, clause_terms, name
from digest.weights import REASON_FLOOR, WEIGHTS, Weights

# ---------------------------------------------------------------------------------------
# Profiles


@dataclass(frozen=True)
class Profile:
    """A compiled subscriber profile: term → weight, plus the veto, authors and likes.

    `terms` holds what the subscriber asked for (keywords and description); `liked`
    holds, per liked paper id, the terms that make that paper distinctive.
    """

    terms: Mapping[str, float]
    # Keywords of several words: one written in a title is enough on its own, however
    # common it is in the store ("weak lensing" in a title says what the paper is about;
    # a single word, "lensing", may not).
    phrases: frozenset[str] = frozenset()
    exclude: tuple[str, ...] = ()
    authors: tuple[Name, ...] = ()
    liked: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    weights: Weights = WEIGHTS
    abstract_length: float = DEFAULT_ABSTRACT_LENGTH

    @property
    def threshold(self) -> float:
        return self.weights.threshold

    @cached_property
    def combined(self) -> tuple[tuple[str, float], ...]:
        """Every term with its whole weight (asked and liked), in one fixed order."""
        total = dict(self.terms)
        for _, terms in sorted(self.liked.items()):
            for term, weight in terms.items():
                total[term] = total.get(term, 0.0) + weight
        return tuple(sorted(total.items()))

    @cached_property
    def notable(self) -> Mapping[str, float]:
        """The asked terms that can be named as a reason: those that could be worth
        REASON_FLOOR of the threshold in some field (most words of prose cannot)."""
        w = self.weights
        return {t: v for t, v in self.terms.items() if _is_notable(w, v, t in self.phrases)}

    @cached_property
    def table(self) -> Mapping[str, Entry]:
        """Per term of `combined`: its whole weight, then what it brings to reasons (see
        `_found`): its value in a title and in ai_keywords when that reaches the reason
        floor, and its asked weight; None where it brings nothing, as for a term that is
        not notable."""
        notable = self.notable
        return {
            term: _entry(self.weights, weight, notable.get(term), term in self.phrases)
            for term, weight in self.combined
        }

    @cached_property
    def families(self) -> frozenset[str]:
        """The family names of `authors`."""
        return frozenset(wanted.family for wanted in self.authors)

    @cached_property
    def weight_of(self) -> Mapping[str, float]:
        """`combined` as a mapping."""
        return dict(self.combined)

    @cached_property
    def settles(self) -> tuple[tuple[str, float], ...]:
        """Per keyword phrase, what a title mention adds to reach the threshold."""
        title = self.weights.title
        return tuple(
            (t, max(self.threshold - title * self.terms[t], 0.0)) for t in sorted(self.phrases)
        )

    @cached_property
    def evidence(self) -> Evidence:
        w = self.weights
        return Evidence(
            w.title, w.ai_keywords, w.saturation, w.length_normalisation, self.abstract_length
        )


def compile_profile(
    interests: Interests,
    stats: CorpusStats,
    liked_papers: Sequence[Paper] = (),
    weights: Weights = WEIGHTS,
    *,
    distinctive: Mapping[str, Mapping[str, float]] | None = None,
) -> Profile:
    """Compile `[interests]` into a `Profile`.

    `distinctive` (paper id → `distinctive_terms`) spares recomputing a liked paper's
    terms when many subscribers like it. Raises ValueError when the interests give
    nothing to match on: no keyword or description word, no author and no liked paper.
    """
    return Compiler(stats, weights).compile(interests, liked_papers, distinctive=distinctive)


# A term's entry in `Profile.table`: its whole weight, then its value in a title and in
# ai_keywords (None below the reason floor) and its asked weight (None unless notable).
Entry = tuple[float, float | None, float | None, float | None]


def _entry(weights: Weights, weight: float, asked: float | None, phrase: bool) -> Entry:
    """A term's `Profile.table` entry; `asked` is None for a term that is not notable."""
    if asked is None:
        return (weight, None, None, None)
    floor = REASON_FLOOR * weights.threshold
    in_title = max(weights.title * asked, weights.threshold if phrase else 0.0)
    in_keywords = weights.ai_keywords * asked
    return (
        weight,
        in_title if in_title >= floor else None,
        in_keywords if in_keywords >= floor else None,
        asked,
    )


def _is_notable(weights: Weights, asked: float, phrase: bool) -> bool:
    """Whether an asked term can be named as a reason: worth REASON_FLOOR of the
    threshold in some field (most words of prose cannot), or a keyword phrase."""
    most = max(weights.title, weights.ai_keywords, weights.saturation + 1)
    return asked * most >= REASON_FLOOR * weights.threshold or phrase


@dataclass(frozen=True)
class _Asked:
    """What one keyword, or one clause-delimited piece of a description, asks for."""

    summed: dict[str, float]  # term → what the part asks of it in all (`part_sums`)
    phrases: tuple[str, ...]
    terms: dict[str, float]  # term → its summed weight times its IDF
    table: dict[str, Entry]  # the `Profile.table` entries of `terms`
    strongest: float  # `strongest_head` of the part (0 where it has no head)


class Compiler:
    """`compile_profile` for the many subscribers of one store and one `Weights`.

    Subscribers share keywords, and descriptions share clauses: each is weighed (IDF)
    and tabled once, and a profile is the union of its parts. Where two parts ask for
    the same term, its weight is the parts' own sums added in order, then weighed.
    """

    def __init__(self, stats: CorpusStats, weights: Weights = WEIGHTS) -> None:
        self.stats = stats
        self.weights = weights
        self._parts = Parts(weights, self._asked)
        # Liked paper id → `distinctive_terms`: subscribers like the same papers.
        self._distinctive: dict[str, Mapping[str, float]] = {}

    def compile(
        self,
        interests: Interests,
        liked_papers: Sequence[Paper] = (),
        *,
        distinctive: Mapping[str, Mapping[str, float]] | None = None,
    ) -> Profile:
        """`compile_profile(interests, stats, liked_papers, weights, distinctive=...)`."""
        parts = self._parts.of(interests)
        terms: dict[str, float] = {}
        table: dict[str, Entry] = {}
        size = 0
        phrases: list[str] = []
        for part in parts:
            terms.update(part.terms)
            table.update(part.table)
            size += len(part.terms)
            phrases += part.phrases
        if size != len(terms):
            self._repeated(parts, terms, table, frozenset(phrases))
        scale = keyword_scale(self.weights, max((part.strongest for part in parts), default=0.0))
        if scale != 1.0:
            terms = {term: weight * scale for term, weight in terms.items()}
        authors = tuple(n for written in interests.authors if (n := name(written)))
        if not terms and not authors and not interests.liked:
            raise ValueError(
                "interests give nothing to match: add keywords, a description, authors or liked"
            )
        liked = {}
        if interests.liked:
            wanted = set(interests.liked)
            known = self._distinctive if distinctive is None else distinctive
            for paper in liked_papers:
                if paper.id in wanted and paper.id not in liked:
                    terms_of = known.get(paper.id)
                    if terms_of is None:
                        terms_of = self._distinctive[paper.id] = distinctive_terms(
                            paper, self.stats, self.weights
                        )
                    liked[paper.id] = terms_of
        profile = Profile(
            terms=terms,
            phrases=frozenset(phrases),
            exclude=tuple(t for e in interests.exclude for t in clause_terms(e)),
            authors=authors,
            liked=liked,
            weights=self.weights,
            abstract_length=self.stats.abstract_length,
        )
        if not liked and scale == 1.0:
            # What `Profile.table` would compute: each term's entry depends on its own
            # weight and on whether it is a keyword phrase, both settled above.
            profile.__dict__["table"] = table
        return profile

    def _asked(self, adds: Asks, phrases: tuple[str, ...], heads: tuple[str, ...]) -> _Asked:
        summed = part_sums(adds)
        idf = self.stats.idf
        terms = {term: weight * idf(term) for term, weight in summed.items()}
        table = self._table(terms, frozenset(phrases))
        return _Asked(summed, phrases, terms, table, strongest_head(summed, heads, idf))

    def _table(self, terms: Mapping[str, float], phrases: frozenset[str]) -> dict[str, Entry]:
        w = self.weights
        most = max(w.title, w.ai_keywords, w.saturation + 1)
        floor = REASON_FLOOR * w.threshold
        table = {}
        for term, weight in terms.items():
            # `_is_notable`, inline: a description clause has a few dozen terms.
            if weight * most >= floor or term in phrases:
                table[term] = _entry(w, weight, weight, term in phrases)
            else:
                table[term] = (weight, None, None, None)
        return table

    def _repeated(
        self,
        parts: Sequence[_Asked],
        terms: dict[str, float],
        table: dict[str, Entry],
        phrases: frozenset[str],
    ) -> None:
        """Terms asked by more than one part: each part's own sum, added up part by part
        in order (a sum's rounding depends on its order, and the batch path adds them so),
        then weighed and tabled."""
        seen: set[str] = set()
        repeated: set[str] = set()
        for part in parts:
            repeated.update(seen.intersection(part.terms))
            seen.update(part.terms)
        summed = dict.fromkeys(repeated, 0.0)
        for part in parts:
            for term in repeated.intersection(part.summed):
                summed[term] += part.summed[term]
        idf = self.stats.idf
        again = {term: weight * idf(term) for term, weight in summed.items()}
        terms.update(again)
        table.update(self._table(again, phrases))


def distinctive_terms(
    paper: Paper, stats: CorpusStats, weights: Weights = WEIGHTS
) -> dict[str, float]:
    """The terms that set a liked paper apart (tf-idf), weighing `liked_budget` together.

    Terms found in no other paper of the store (the paper's own coinages) are left out:
    they cannot make another paper look similar.
    """
    text = analyse(paper)
    evidence = Profile({}, weights=weights, abstract_length=stats.abstract_length).evidence
    strength = {}
    for term in text.terms(MAX_COUNTED_PHRASE):
        if stats.documents > 1 and stats.frequency(term) < 2:
            continue
        found = find_hit(text, evidence, term)
        strength[term] = stats.idf(term) * found.value if found else 0.0
    top = sorted(strength.items(), key=lambda kv: (-kv[1], kv[0]))[: weights.liked_terms]
    total = sum(s for _, s in top)
    if not total:
        return {}
    # Scaled so that the liked paper itself would score the budget.
    budget = weights.liked_budget * weights.threshold
    return {t: budget * stats.idf(t) / total for t, _ in top}


# ---------------------------------------------------------------------------------------
# Scoring


def compile_for(
    subscriber: Subscriber,
    stats: CorpusStats,
    liked_papers: Sequence[Paper] = (),
    weights: Weights = WEIGHTS,
    *,
    distinctive: Mapping[str, Mapping[str, float]] | None = None,
    compiler: Compiler | None = None,
) -> Profile:
    """`compile_profile` for a subscriber file: an empty profile is that file's error.

    `compiler` (a `Compiler` of the same stats and weights) compiles many subscribers'.
    """
    try:
        if compiler is not None:
            return compiler.compile(subscriber.interests, liked_papers, distinctive=distinctive)
        return compile_profile(
            subscriber.interests, stats, liked_papers, weights, distinctive=distinctive
        )
    except ValueError as exc:
        raise ConfigError(subscriber.path or subscriber.slug, str(exc), key="interests") from exc
