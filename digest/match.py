"""Scoring papers against a subscriber's interests, with reasons a reader can check.

A subscriber's `[interests]` compile once into a `Profile`: a small mapping of terms (stemmed
words and phrases) to weights. A weight says how much the subscriber asked for the term
(a keyword counts more than a word of the free-text description, a word of a liked paper
less) times how rare the term is among the papers in the store (IDF), so "transformer" in
a corpus of transformer papers says little and "captioning" says a lot. A paper's score
sums, over the profile's terms it contains, that weight times a saturating count of where
the term occurs (the title counts several times the abstract). A fixed threshold keeps
weak matches out, so a quiet day sends fewer papers or none.

A paper's text is analysed once (`analyse`), independently of any subscriber, so the
pipeline can share that work across subscribers.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from digest.errors import ConfigError, UsageError
from digest.models import Interests, Match, Paper, Subscriber
from digest.text import Clause, Token, clauses, fold, phrases, tokens

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Weights:
    """The matcher's few numbers. None of them knows a topic; they were set on the dev
    corpus and checked profile by profile (benchmarks/relevance.py --tune)."""

    # How much each source of interest weighs: a keyword is the subscriber naming a topic,
    # a description word is context.
    keyword: float = 1.0
    description: float = 0.2
    # A short clause of the description ("early exit, pruning") names a topic like a keyword.
    description_item: float = 0.5
    # The words of a multi-word keyword or item on their own, as a share of its weight
    # ("grounding" for "temporal grounding").
    part: float = 0.0
    # Where a term occurs: a title states what the paper is about, an abstract also
    # mentions what it is not about; ai_keywords (Hugging Face) sit in between.
    title: float = 3.0
    keywords_field: float = 2.0
    abstract: float = 1.0
    # BM25's saturation: the third mention of a word adds less than the first.
    saturation: float = 1.2
    # Longer abstracts mention more words in passing (BM25's b, abstract only).
    length_normalisation: float = 0.3
    # The evidence a paper needs to be sent: about a rare keyword in the title, or a
    # common one several times in the abstract along with description words.
    threshold: float = 3.0
    # Liked papers: their most distinctive terms, weighing `liked_budget` together, so a
    # paper sharing most of them passes alone; "like <id>" is named from this share of
    # the threshold on.
    liked_terms: int = 20
    liked_budget: float = 6.0
    like_reason_share: float = 0.25
    # An author match alone is enough: following a person means wanting their papers.
    author: float = 6.0

    def field(self, name: str) -> float:
        return {"title": self.title, "keywords": self.keywords_field}.get(name, self.abstract)


WEIGHTS = Weights()
AVERAGE_ABSTRACT_TOKENS = 120.0
# IDF prior: before a corpus is seen every term is as rare as one document in
# PRIOR_DOCUMENTS; the corpus pulls the estimate towards its own counts as it grows.
PRIOR_DOCUMENTS = 50.0
PRIOR_RATE = 0.01
# Phrases are counted in the corpus up to this length; longer ones are estimated.
MAX_COUNTED_PHRASE = 2
MAX_REASON_TERMS = 3
# A description clause of at most this many words is an item of a list, not prose.
ITEM_WORDS = 3
# A match worth less than this share of the paper's strongest is not worth naming.
REASON_SHARE = 0.2

FIELDS = ("title", "keywords", "abstract")


# ---------------------------------------------------------------------------------------
# Papers, analysed once


@dataclass(frozen=True)
class FieldText:
    """One field of a paper (title, ai_keywords or abstract), ready for phrase look-ups."""

    text: str
    tokens: tuple[Token, ...]
    positions: Mapping[str, tuple[int, ...]]

    @classmethod
    def of(cls, text: str) -> FieldText:
        toks = tuple(tokens(text))
        where: dict[str, list[int]] = {}
        for i, tok in enumerate(toks):
            where.setdefault(tok.stem, []).append(i)
        return cls(text, toks, {k: tuple(v) for k, v in where.items()})

    def find(self, words: Sequence[str]) -> list[int]:
        """Where the phrase `words` starts: consecutive content words in one clause."""
        found = []
        for i in self.positions.get(words[0], ()):
            end = i + len(words)
            if end > len(self.tokens):
                break
            clause = self.tokens[i].clause
            if all(
                self.tokens[i + k].stem == w and self.tokens[i + k].clause == clause
                for k, w in enumerate(words)
            ):
                found.append(i)
        return found

    def surface(self, start: int, length: int) -> str:
        """The phrase as the paper wrote it."""
        return self.text[self.tokens[start].start : self.tokens[start + length - 1].end]


@dataclass(frozen=True)
class PaperText:
    """A paper's analysed text and author names: computed once, shared by every profile."""

    paper: Paper
    fields: Mapping[str, FieldText]
    authors: tuple[tuple[str, NameKey], ...]

    def terms(self, max_len: int, fields: Sequence[str] = FIELDS) -> set[str]:
        """Every word and phrase of up to `max_len` words in these fields."""
        found: set[str] = set()
        for name in fields:
            toks = list(self.fields[name].tokens)
            found.update(term for term, _, _ in phrases(toks, max_len))
        return found


def analyse(paper: Paper) -> PaperText:
    return PaperText(
        paper=paper,
        fields={
            "title": FieldText.of(paper.title),
            "keywords": FieldText.of(". ".join(paper.ai_keywords)),
            "abstract": FieldText.of(paper.abstract),
        },
        authors=tuple((name, key) for name in paper.authors if (key := name_key(name))),
    )


# ---------------------------------------------------------------------------------------
# Corpus statistics


@dataclass(frozen=True)
class CorpusStats:
    """Document frequencies of stemmed terms (and phrases) over a set of papers.

    Counted twice: in whole papers, and in titles alone. A word common in abstracts can be
    rare in titles ("efficient" is said in passing by many abstracts, put in the title by
    the papers about efficiency), so a title match is weighed by how rare it is in titles.
    """

    documents: int = 0
    frequencies: Mapping[str, int] = field(default_factory=dict)
    title_frequencies: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_papers(cls, papers: Iterable[Paper]) -> CorpusStats:
        counts: Counter[str] = Counter()
        title_counts: Counter[str] = Counter()
        seen: set[str] = set()
        for paper in papers:
            if paper.id in seen:
                continue
            seen.add(paper.id)
            text = analyse(paper)
            counts.update(text.terms(MAX_COUNTED_PHRASE))
            title_counts.update(text.terms(MAX_COUNTED_PHRASE, ("title",)))
        return cls(len(seen), _prune(counts), _prune(title_counts))

    def frequency(self, term: str, *, in_titles: bool = False) -> float:
        table = self.title_frequencies if in_titles else self.frequencies
        words = term.split()
        if len(words) <= MAX_COUNTED_PHRASE:
            return table.get(term, 0)
        # A longer phrase occurs at most as often as its rarest counted part.
        return min(
            table.get(" ".join(words[i : i + MAX_COUNTED_PHRASE]), 0)
            for i in range(len(words) - MAX_COUNTED_PHRASE + 1)
        )

    def idf(self, term: str) -> float:
        """log(1 / share of papers holding `term`), smoothed by a prior of
        PRIOR_DOCUMENTS papers, PRIOR_RATE of which hold it."""
        return self._idf(self.frequency(term))

    def title_idf(self, term: str) -> float:
        """`idf` counted over titles only."""
        return self._idf(self.frequency(term, in_titles=True))

    def _idf(self, frequency: float) -> float:
        held = frequency + PRIOR_DOCUMENTS * PRIOR_RATE
        return math.log((self.documents + PRIOR_DOCUMENTS) / held)


def _prune(counts: Counter[str]) -> dict[str, int]:
    """Drop phrases seen once: a count of one says little more than none, and keeping
    only repeated phrases keeps the table small for a store of many thousand papers."""
    return {t: n for t, n in counts.items() if n > 1 or " " not in t}


# ---------------------------------------------------------------------------------------
# Profiles


@dataclass(frozen=True)
class TermWeight:
    """What finding a term is worth: in the abstract (or ai_keywords), and in the title."""

    body: float
    title: float


@dataclass(frozen=True)
class Profile:
    """A compiled subscriber profile: term → weight, plus the veto, authors and likes.

    `terms` holds what the subscriber asked for (keywords and description); `liked`
    holds, per liked paper id, the terms that make that paper distinctive.
    """

    terms: Mapping[str, TermWeight]
    exclude: tuple[str, ...] = ()
    authors: tuple[tuple[str, NameKey], ...] = ()
    liked: Mapping[str, Mapping[str, TermWeight]] = field(default_factory=dict)
    weights: Weights = WEIGHTS

    @property
    def threshold(self) -> float:
        return self.weights.threshold


def compile_profile(
    interests: Interests,
    stats: CorpusStats,
    liked_papers: Sequence[Paper] = (),
    weights: Weights = WEIGHTS,
) -> Profile:
    """Compile `[interests]` into a `Profile`; ValueError if they ask for nothing."""
    asked: dict[str, float] = {}

    def add(term: str, weight: float) -> None:
        if weight > 0:
            asked[term] = asked.get(term, 0.0) + weight

    def add_item(stems: Sequence[str], weight: float) -> None:
        add(" ".join(stems), weight)
        if len(stems) > 1:
            for word in stems:
                add(word, weights.part * weight)

    for keyword in interests.keywords:
        for clause in clauses(keyword):
            add_item(clause.stems, weights.keyword)
    for clause in clauses(interests.description):
        if clause.words <= ITEM_WORDS:
            add_item(clause.stems, weights.description_item)
            continue
        for word in clause.stems:
            add(word, weights.description)
        for term in _joined_phrases(clause):
            add(term, weights.description)
    exclude = tuple(" ".join(c.stems) for e in interests.exclude for c in clauses(e))
    authors = tuple((name, key) for name in interests.authors if (key := name_key(name)))
    if not asked and not authors and not interests.liked:
        raise ValueError(
            "interests name nothing to match: give keywords, a description, authors or liked"
        )
    wanted = set(interests.liked)
    liked = {p.id: _distinctive(analyse(p), stats, weights) for p in liked_papers if p.id in wanted}
    return Profile(
        terms={t: _weigh(t, w, stats, weights) for t, w in asked.items()},
        exclude=exclude,
        authors=authors,
        liked=liked,
        weights=weights,
    )


def _joined_phrases(clause: Clause) -> Iterator[str]:
    """The phrases of two or three words written together in a clause of prose."""
    stems = clause.stems
    for i in range(len(stems)):
        for j in range(i + 1, min(i + 3, len(stems))):
            if not clause.joined[j - 1]:
                break
            yield " ".join(stems[i : j + 1])


def _weigh(term: str, asked: float, stats: CorpusStats, weights: Weights) -> TermWeight:
    return TermWeight(
        body=asked * stats.idf(term), title=asked * weights.title * stats.title_idf(term)
    )


def _distinctive(text: PaperText, stats: CorpusStats, weights: Weights) -> dict[str, TermWeight]:
    """The terms that set a liked paper apart, weighing `liked_budget` together."""
    strength = {}
    for term in text.terms(MAX_COUNTED_PHRASE):
        strength[term] = _strength(text, term.split(), _weigh(term, 1.0, stats, weights), weights)
    top = sorted(strength.items(), key=lambda kv: (-kv[1], kv[0]))[: weights.liked_terms]
    total = sum(w for _, w in top)
    if not total:
        return {}
    return {t: _weigh(t, weights.liked_budget * w / total, stats, weights) for t, w in top}


# ---------------------------------------------------------------------------------------
# Scoring


def _contributions(
    text: PaperText, words: Sequence[str], weight: TermWeight, weights: Weights
) -> dict[str, tuple[float, int]]:
    """What the term adds in each field where it occurs, and where it first occurs there."""
    found: dict[str, tuple[float, int]] = {}
    title = text.fields["title"].find(words)
    if title:
        found["title"] = (weight.title, title[0])
    for name, field_weight in (("keywords", weights.keywords_field), ("abstract", 1.0)):
        where = text.fields[name].find(words)
        if not where:
            continue
        count = float(len(where))
        if name == "abstract":
            length = len(text.fields[name].tokens) / AVERAGE_ABSTRACT_TOKENS
            b = weights.length_normalisation
            count /= 1 - b + b * length
        k = weights.saturation
        saturated = count * (k + 1) / (count + k)
        found[name] = (field_weight * weights.abstract * weight.body * saturated, where[0])
    return found


def _strength(text: PaperText, words: Sequence[str], weight: TermWeight, weights: Weights) -> float:
    return sum(v for v, _ in _contributions(text, words, weight, weights).values())


def score(profile: Profile, paper: Paper) -> tuple[float, tuple[str, ...]]:
    """The paper's score for this profile and the reasons behind it."""
    return score_text(profile, analyse(paper))


def score_text(profile: Profile, text: PaperText) -> tuple[float, tuple[str, ...]]:
    """`score` on a paper analysed beforehand (one analysis serves every subscriber)."""
    for term in profile.exclude:
        words = term.split()
        if any(text.fields[name].find(words) for name in FIELDS):
            return 0.0, ()
    weights = profile.weights
    total = 0.0
    shown: dict[str, list[tuple[float, int, int]]] = {name: [] for name in FIELDS}
    for term, weight in profile.terms.items():
        words = term.split()
        for name, (value, start) in _contributions(text, words, weight, weights).items():
            total += value
            shown[name].append((value, start, len(words)))
    strongest = max((v for found in shown.values() for v, _, _ in found), default=0.0)
    reasons = [
        r
        for name in FIELDS
        if (r := _field_reason(text.fields[name], name, shown[name], strongest))
    ]
    for name, key in text.authors:
        if any(same_person(wanted, key) for _, wanted in profile.authors):
            total += weights.author
            reasons.append(f"author: {name}")
    likes = []
    for liked_id, liked_terms in profile.liked.items():
        part = sum(_strength(text, t.split(), w, weights) for t, w in liked_terms.items())
        total += part
        likes.append((part, liked_id))
    for part, liked_id in sorted(likes, reverse=True):
        if part >= weights.like_reason_share * profile.threshold:
            reasons.append(f"like {liked_id}")
    if not reasons and likes and total > 0:
        reasons.append(f"like {max(likes)[1]}")
    return total, tuple(reasons)


def _field_reason(
    text: FieldText, name: str, found: list[tuple[float, int, int]], strongest: float
) -> str | None:
    """ "title: video captioning, grounding": the strongest matches, none overlapping."""
    chosen: list[tuple[int, int]] = []
    for value, start, length in sorted(found, key=lambda x: (-x[0], x[1], -x[2])):
        if value < REASON_SHARE * strongest:
            break
        if any(start < s + n and s < start + length for s, n in chosen):
            continue
        chosen.append((start, length))
        if len(chosen) == MAX_REASON_TERMS:
            break
    surfaces = list(dict.fromkeys(text.surface(s, n) for s, n in sorted(chosen)))
    return f"{name}: {', '.join(surfaces)}" if surfaces else None


def select(
    subscriber: Subscriber,
    papers: Sequence[Paper],
    stats: CorpusStats,
    liked_papers: Sequence[Paper] = (),
    *,
    analysed: Mapping[str, PaperText] | None = None,
    weights: Weights = WEIGHTS,
) -> list[Match]:
    """The papers this subscriber gets, best first, with reasons.

    Papers below `min_upvotes` or the threshold are dropped; ties go to the paper with
    more upvotes, then the smaller id; at most `max_papers`. `analysed` (paper id →
    `analyse(paper)`) lets a caller analyse a day's papers once for all subscribers.
    """
    try:
        profile = compile_profile(subscriber.interests, stats, liked_papers, weights)
    except ValueError as exc:
        raise ConfigError(subscriber.path or subscriber.slug, str(exc), key="interests") from exc
    matches = []
    for paper in papers:
        if paper.upvotes < subscriber.min_upvotes:
            continue
        cached = analysed.get(paper.id) if analysed is not None else None
        text = cached if cached is not None and cached.paper == paper else analyse(paper)
        value, reasons = score_text(profile, text)
        if value >= profile.threshold and reasons:
            matches.append(Match(paper, value, reasons))
    matches.sort(key=lambda m: (-m.score, -m.paper.upvotes, m.paper.id))
    return matches[: max(subscriber.max_papers, 0)]


# ---------------------------------------------------------------------------------------
# `digest rank`


def read_papers_jsonl(path: Path) -> list[Paper]:
    """Papers from JSONL lines of {"id","title","abstract"} (+ "authors", "upvotes")."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read papers: {exc}") from exc
    papers = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}, line {number}: not JSON: {exc.msg}") from exc
        papers.append(_paper_from_json(item, f"{path}, line {number}"))
    return papers


def _paper_from_json(item: object, where: str) -> Paper:
    if not isinstance(item, dict):
        raise UsageError(f"{where}: expected a JSON object")
    for key in ("id", "title", "abstract"):
        if not isinstance(item.get(key), str):
            raise UsageError(f"{where}: '{key}' must be a string")
    authors = item.get("authors", [])
    if not isinstance(authors, list) or not all(isinstance(a, str) for a in authors):
        raise UsageError(f"{where}: 'authors' must be a list of strings")
    upvotes = item.get("upvotes", 0)
    if isinstance(upvotes, bool) or not isinstance(upvotes, int):
        raise UsageError(f"{where}: 'upvotes' must be an integer")
    return Paper(
        id=item["id"],
        title=item["title"],
        abstract=item["abstract"],
        day=date.min,
        source="rank",
        url="",
        authors=tuple(authors),
        upvotes=upvotes,
    )


def rank_file(profile_path: Path, papers_path: Path) -> list[dict[str, object]]:
    """What `digest rank` prints: the digest this subscriber file would get from these papers."""
    from digest.config import load_subscriber

    subscriber = load_subscriber(profile_path)
    papers = read_papers_jsonl(papers_path)
    stats = CorpusStats.from_papers(papers)
    liked = [p for p in papers if p.id in set(subscriber.interests.liked)]
    return [
        {"id": m.paper.id, "score": round(m.score, 4), "reasons": list(m.reasons)}
        for m in select(subscriber, papers, stats, liked)
    ]
