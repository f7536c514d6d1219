"""Scoring papers against a subscriber's interests, with reasons a reader can check.

A subscriber's `[interests]` compile once into a `Profile`: a small mapping of terms
(stemmed words and phrases, see `digest.text`) to weights. A weight is how much the
subscriber asked for the term (a keyword more than a word of the free-text description)
times how rare the term is among the papers in the store (IDF): "galaxy" in a store of
astronomy papers says little, "kilonova" says a lot. A paper's score adds up, for
each profile term it contains, that weight times the evidence: a mention in the title, and
a saturating count of mentions in the abstract (BM25-style, corrected for the abstract's
length). A keyword of several words found in a title is enough on its own. A fixed
threshold keeps weak matches out, so a quiet day sends fewer papers or none. Authors and
liked papers add to the score; `exclude` vetoes.

A paper's text is analysed once (`analyse`), independently of any subscriber, so a run
can share that work across its subscribers (`select(..., analysed=...)`).
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

from digest.config import load_subscriber
from digest.errors import ConfigError, UsageError
from digest.models import Interests, Match, Paper, Subscriber
from digest.text import (
    Clause,
    Name,
    Token,
    acronyms,
    clauses,
    name,
    phrases,
    same_person,
    tokens,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Weights:
    """The matcher's few numbers. None of them knows a topic; they were chosen on the dev
    corpus and checked profile by profile (`benchmarks/relevance.py --tune`)."""

    # How much each way of asking weighs. A keyword names a topic. A short clause of the
    # description ("…: weak lensing, rotation curves") names one too, less deliberately. A word of
    # descriptive prose only gives context.
    keyword: float = 1.0
    description_item: float = 0.4
    description: float = 0.1
    # Each word of a multi-word keyword or item on its own, as a share of the item's
    # weight: "lensing" alone is a weak sign of "weak lensing".
    part: float = 0.35
    # A mention in the title counts as much as one in the abstract; as a title has a
    # tenth of the words, that already makes each title word weigh more.
    title: float = 1.0
    # ai_keywords (Hugging Face) summarise the paper like a title, but are many, and
    # generic ones among them.
    ai_keywords: float = 0.5
    # BM25's k1 and b for the abstract: the third mention adds less than the first, and a
    # long abstract mentions more words in passing.
    saturation: float = 3.0
    length_normalisation: float = 0.6
    # The evidence a paper needs: a rare keyword (IDF about 5, in one paper of 150) in
    # the title and once in the abstract, or in the abstract alone three times, or a
    # common one along with other terms.
    threshold: float = 8.5
    # A liked paper's most distinctive terms, weighing `liked_budget` thresholds
    # together (what the liked paper itself would score): a paper sharing half of that
    # passes on it alone. It is named as a reason ("like 2312.00752") when it brings at
    # least `like_reason_share` of the threshold.
    liked_terms: int = 25
    liked_budget: float = 2.0
    like_reason_share: float = 0.25
    # An author match alone, in thresholds: following a person means wanting their papers.
    author: float = 2.0


WEIGHTS = Weights()
# An abstract's length is measured against the store's average, and against this many
# content words while the store is empty.
DEFAULT_ABSTRACT_LENGTH = 120.0
# IDF prior: before a store has papers, every term is taken to occur in PRIOR_RATE of
# them; the store's own counts take over as it grows past PRIOR_DOCUMENTS papers.
PRIOR_DOCUMENTS = 20.0
PRIOR_RATE = 0.01
# Phrases are counted in the store up to this length; longer ones are estimated.
MAX_COUNTED_PHRASE = 2
# A description clause of at most this many words is a list item, not prose.
ITEM_WORDS = 3
# Reasons name at most this many matches per field, each worth at least REASON_SHARE of
# the field's strongest one and REASON_FLOOR of the threshold.
MAX_REASON_TERMS = 3
REASON_SHARE = 0.2
REASON_FLOOR = 0.1

FIELDS = ("title", "keywords", "abstract")
_WORDS = re.compile(r"[^\W_]+")


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
        written = self.text[self.tokens[start].start : self.tokens[start + length - 1].end]
        return " ".join(written.split())


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
        found: set[str] = set()
        for text in self.fields.values():
            found.update(term for term, _, _ in phrases(list(text.tokens), max_len))
        return found


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


# ---------------------------------------------------------------------------------------
# Corpus statistics


@dataclass(frozen=True)
class CorpusStats:
    """Document frequencies of stemmed terms (and phrases) over a set of papers."""

    documents: int = 0
    frequencies: Mapping[str, int] = field(default_factory=dict)
    abstract_length: float = DEFAULT_ABSTRACT_LENGTH

    @classmethod
    def from_papers(cls, papers: Iterable[Paper]) -> CorpusStats:
        return cls.from_analysed(analyse(p) for p in papers)

    @classmethod
    def from_analysed(cls, texts: Iterable[PaperText]) -> CorpusStats:
        """`from_papers` on papers analysed beforehand (the first of each id counts)."""
        counts: Counter[str] = Counter()
        seen: set[str] = set()
        words = 0
        for text in texts:
            if text.paper.id in seen:
                continue
            seen.add(text.paper.id)
            counts.update(text.terms(MAX_COUNTED_PHRASE))
            words += len(text.fields["abstract"].tokens)
        # A phrase seen once says little more than one never seen; keeping only repeated
        # phrases keeps the table small for a store of many thousand papers.
        kept = {t: n for t, n in counts.items() if n > 1 or " " not in t}
        length = words / len(seen) if words else DEFAULT_ABSTRACT_LENGTH
        return cls(len(seen), kept, length)

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
        held = self.frequency(term) + PRIOR_DOCUMENTS * PRIOR_RATE
        return math.log((self.documents + PRIOR_DOCUMENTS) / held)


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


def compile_profile(
    interests: Interests,
    stats: CorpusStats,
    liked_papers: Sequence[Paper] = (),
    weights: Weights = WEIGHTS,
) -> Profile:
    """Compile `[interests]` into a `Profile`.

    Raises ValueError when the interests give nothing to match on: no keyword or
    description word, no author and no liked paper.
    """
    asked: dict[str, float] = {}

    def add(term: str, weight: float) -> None:
        asked[term] = asked.get(term, 0.0) + weight

    def add_item(stems: Sequence[str], weight: float) -> None:
        add(" ".join(stems), weight)
        if len(stems) > 1 and weights.part:
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
    authors = tuple(n for written in interests.authors if (n := name(written)))
    if not asked and not authors and not interests.liked:
        raise ValueError(
            "interests give nothing to match: add keywords, a description, authors or liked"
        )
    wanted = set(interests.liked)
    return Profile(
        terms={term: weight * stats.idf(term) for term, weight in asked.items()},
        phrases=frozenset(
            " ".join(c.stems) for k in interests.keywords for c in clauses(k) if len(c.stems) > 1
        ),
        exclude=tuple(" ".join(c.stems) for e in interests.exclude for c in clauses(e)),
        authors=authors,
        liked={p.id: _distinctive(p, stats, weights) for p in liked_papers if p.id in wanted},
        weights=weights,
        abstract_length=stats.abstract_length,
    )


def _joined_phrases(clause: Clause) -> Iterator[str]:
    """The phrases of two or three words written together in a clause of prose."""
    stems = clause.stems
    for i in range(len(stems)):
        for j in range(i + 1, min(i + 3, len(stems))):
            if not clause.joined[j - 1]:
                break
            yield " ".join(stems[i : j + 1])


def _distinctive(paper: Paper, stats: CorpusStats, weights: Weights) -> dict[str, float]:
    """The terms that set a liked paper apart (tf-idf), weighing `liked_budget` together.

    Terms found in no other paper of the store (the paper's own coinages) are left out:
    they cannot make another paper look similar.
    """
    text = analyse(paper)
    profile = Profile({}, weights=weights, abstract_length=stats.abstract_length)
    strength = {}
    for term in text.terms(MAX_COUNTED_PHRASE):
        if stats.documents > 1 and stats.frequency(term) < 2:
            continue
        idf = stats.idf(term)
        strength[term] = sum(v for v, _ in _contributions(profile, text, term.split(), idf))
    top = sorted(strength.items(), key=lambda kv: (-kv[1], kv[0]))[: weights.liked_terms]
    total = sum(s for _, s in top)
    if not total:
        return {}
    # Scaled so that the liked paper itself would score the budget.
    budget = weights.liked_budget * weights.threshold
    return {t: budget * stats.idf(t) / total for t, _ in top}


# ---------------------------------------------------------------------------------------
# Scoring


def _contributions(
    profile: Profile, text: PaperText, words: Sequence[str], weight: float
) -> Iterator[tuple[float, tuple[str, tuple[int, int]]]]:
    """What a term of this weight adds, field by field, and where it first occurs there."""
    w = profile.weights
    title = text.find("title", words)
    if title:
        settles = profile.threshold if " ".join(words) in profile.phrases else 0.0
        yield max(w.title * weight, settles), ("title", title[0])
    keywords = text.find("keywords", words)
    if keywords:
        yield w.ai_keywords * weight, ("keywords", keywords[0])
    found = text.find("abstract", words)
    if found:
        b, k = w.length_normalisation, w.saturation
        length = len(text.fields["abstract"].tokens) / profile.abstract_length
        count = len(found) / (1 - b + b * length)
        yield weight * count * (k + 1) / (count + k), ("abstract", found[0])


def score(profile: Profile, paper: Paper) -> tuple[float, tuple[str, ...]]:
    """The paper's score for this profile, and the reasons for it (none when vetoed)."""
    return score_text(profile, analyse(paper))


def score_text(profile: Profile, text: PaperText) -> tuple[float, tuple[str, ...]]:
    """`score` on a paper analysed beforehand (one analysis serves every subscriber)."""
    for term in profile.exclude:
        words = term.split()
        if any(text.find(f, words) for f in FIELDS):
            return 0.0, ()
    total = 0.0
    found: dict[str, list[tuple[float, int, int]]] = {f: [] for f in FIELDS}
    for term, weight in profile.terms.items():
        for value, (where, (start, length)) in _contributions(profile, text, term.split(), weight):
            total += value
            found[where].append((value, start, length))
    floor = REASON_FLOOR * profile.threshold
    reasons = [r for f in FIELDS if (r := _field_reason(text.fields[f], f, found[f], floor))]
    for written, author in text.authors:
        if any(same_person(wanted, author) for wanted in profile.authors):
            total += profile.weights.author * profile.threshold
            reasons.append(f"author: {written}")
    likes = []
    for liked_id, terms in sorted(profile.liked.items()):
        part = sum(
            v for t, w in terms.items() for v, _ in _contributions(profile, text, t.split(), w)
        )
        total += part
        likes.append((part, liked_id))
    likes.sort(key=lambda like: -like[0])
    floor = profile.weights.like_reason_share * profile.threshold
    reasons += [f"like {liked_id}" for part, liked_id in likes if part >= floor]
    if not reasons and total > 0:
        # Many small matches made the score: name the strongest of them.
        best = max(FIELDS, key=lambda f: max((v for v, _, _ in found[f]), default=0.0))
        strongest = max((v for v, _, _ in found[best]), default=0.0)
        if likes and likes[0][0] > strongest:
            reasons.append(f"like {likes[0][1]}")
        elif reason := _field_reason(text.fields[best], best, found[best], 0.0):
            reasons.append(reason)
    return total, tuple(reasons)


def _field_reason(
    text: FieldText, where: str, found: list[tuple[float, int, int]], floor: float
) -> str | None:
    """ "title: Weak Lensing, halos": the field's strongest matches, as written, none
    overlapping another, none worth less than `floor`."""
    strongest = max((v for v, _, _ in found), default=0.0)
    chosen: list[tuple[int, int]] = []
    for value, start, length in sorted(found, key=lambda m: (-m[0], m[1], -m[2])):
        if value < max(REASON_SHARE * strongest, floor) or len(chosen) == MAX_REASON_TERMS:
            break
        if not any(start < s + n and s < start + length for s, n in chosen):
            chosen.append((start, length))
    surfaces = list(dict.fromkeys(text.surface(s, n) for s, n in sorted(chosen)))
    # "halos" says nothing more beside "dark matter halos" found elsewhere in the field.
    shown = [a for a in surfaces if not any(_within(a, b) for b in surfaces if b != a)]
    return f"{where}: {', '.join(shown)}" if shown else None


def _within(short: str, long: str) -> bool:
    """Whether the words of `short` appear in a row in `long`, whatever the case."""
    words = " ".join(_WORDS.findall(short.casefold()))
    return f" {words} " in f" {' '.join(_WORDS.findall(long.casefold()))} "


def select(
    subscriber: Subscriber,
    papers: Sequence[Paper],
    stats: CorpusStats,
    liked_papers: Sequence[Paper] = (),
    *,
    analysed: Mapping[str, PaperText] | None = None,
    weights: Weights = WEIGHTS,
) -> list[Match]:
    """The papers this subscriber gets, best first, each with its reasons.

    Papers below `min_upvotes` or the threshold are dropped; ties go to the paper with more
    upvotes, then the smaller id; at most `max_papers`. `analysed` (paper id →
    `analyse(paper)`) lets a run analyse a day's papers once for all its subscribers.
    """
    try:
        profile = compile_profile(subscriber.interests, stats, liked_papers, weights)
    except ValueError as exc:
        raise ConfigError(subscriber.path or subscriber.slug, str(exc), key="interests") from exc
    matches = []
    for paper in papers:
        # A liked paper has been read: it widens the profile but is not sent again.
        if paper.upvotes < subscriber.min_upvotes or paper.id in subscriber.interests.liked:
            continue
        text = analysed.get(paper.id) if analysed is not None else None
        if text is None or text.paper != paper:
            text = analyse(paper)
        value, reasons = score_text(profile, text)
        if value >= profile.threshold and reasons:
            matches.append(Match(paper, value, reasons))
    matches.sort(key=lambda m: (-m.score, -m.paper.upvotes, m.paper.id))
    log.debug("%s: %d of %d papers selected", subscriber.slug, len(matches), len(papers))
    return matches[: max(subscriber.max_papers, 0)]


# ---------------------------------------------------------------------------------------
# `digest rank`


def read_papers_jsonl(path: Path) -> list[Paper]:
    """Papers from JSON lines of {"id", "title", "abstract"} (+ "authors", "upvotes")."""
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
    """What `digest rank` prints: the papers this subscriber file would get, best first.

    The papers themselves are the store: IDF comes from them, and liked ids among them
    widen the profile.
    """
    subscriber = load_subscriber(profile_path)
    papers = read_papers_jsonl(papers_path)
    liked_ids = set(subscriber.interests.liked)
    liked = [p for p in papers if p.id in liked_ids]
    stats = CorpusStats.from_papers(papers)
    return [
        {"id": m.paper.id, "score": round(m.score, 4), "reasons": list(m.reasons)}
        for m in select(subscriber, papers, stats, liked)
    ]
