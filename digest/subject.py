"""What an issue is about, in the subscriber's own words: its subject line and dates.

A subject names the count and one or two topics ("5 papers on video generation and
diffusion — Tue 6 Jan"). The topics are the subscriber's keywords (or the words of them)
that the picked papers matched, chosen so that together they account for as many of the
papers as possible. Words that only the description or a liked paper brought in ("model",
"language") are shown only when no keyword matched at all: the subscriber recognises
their own keywords, and the subject stays meaningful.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from digest.headers import fits_one_line
from digest.ids import is_arxiv_id
from digest.models import Digest
from digest.sanitize import and_list, clean_header_text, clean_text, plural, truncate
from digest.text import Name, name, same_person, tokens

TOPIC_CHARS = 40
_MONTHS = (
    *("January", "February", "March", "April", "May", "June", "July", "August"),
    *("September", "October", "November", "December"),
)
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_FIELD_WEIGHT = {"title": 3, "keywords": 2, "abstract": 1}


@dataclass(eq=False)  # compared by identity: one candidate is one topic
class _Topic:
    label: str
    stems: tuple[str, ...]
    whole: bool  # a whole keyword or author, not one word of a keyword
    order: int  # its place in the subscriber's file
    person: Name | None = None  # for an author the subscriber follows
    papers: set[int] = field(default_factory=set)
    weight: int = 0  # where it matched, summed over papers: a title match says the most


@lru_cache(maxsize=1 << 14)  # the same keywords and reasons recur across subscribers
def _stems(text: str) -> tuple[str, ...]:
    return tuple(token.stem for token in tokens(text))


def _contains(long: tuple[str, ...], short: tuple[str, ...]) -> bool:
    n = len(short)
    if n <= 1:
        return not short or short[0] in long
    first = short[0]
    return any(long[i] == first and long[i : i + n] == short for i in range(len(long) - n + 1))


def _keyword_topics(keywords: Sequence[str]) -> list[_Topic]:
    """Every keyword, then each word of the keywords of several words, once per stem."""
    whole: list[_Topic] = []
    parts: list[_Topic] = []
    for order, keyword in enumerate(keywords):
        if specs := _keyword(keyword):
            whole.append(_Topic(*specs[0], True, order))
            parts.extend(_Topic(label, stems, False, order) for label, stems in specs[1:])
    seen: set[tuple[str, ...]] = set()
    unique = []
    for topic in whole + parts:
        if topic.stems not in seen:
            seen.add(topic.stems)
            unique.append(topic)
    return unique


@lru_cache(maxsize=1 << 14)  # subscribers share keywords; tokenising was a fifth of `topics`
def _keyword(keyword: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(label, stems) of the keyword, then of each of its words if it has several."""
    written = clean_text(keyword)
    toks = tokens(written)
    if not toks:
        return ()
    whole = (truncate(written, TOPIC_CHARS), tuple(tok.stem for tok in toks))
    if len(toks) == 1:
        return (whole,)
    words = ((truncate(written[t.start : t.end], TOPIC_CHARS), (t.stem,)) for t in toks)
    return (whole, *words)


def _reason_terms(reason: str) -> Iterator[tuple[str, str]]:
    """(field, term) for each term of a reason: "title: mamba, state space" gives
    ("title", "mamba") and ("title", "state space"); "like 2312.00752" gives nothing."""
    for part in reason.split(";"):
        where, colon, terms = part.partition(":")
        if not colon:
            continue
        for term in terms.split(","):
            term = clean_text(term).strip("\"'“”")
            if term and not is_arxiv_id(term):
                yield where.strip().lower(), term


@dataclass(frozen=True)
class _Evidence:
    """What one reason names: each run of words of its matched terms, with the field it
    matched in, and the authors."""

    runs: dict[tuple[str, ...], int]  # stems of a run of words -> field weight
    authors: tuple[Name, ...]


@lru_cache(maxsize=1 << 14)  # the same reasons recur across subscribers
def _evidence(reason: str) -> _Evidence:
    runs: dict[tuple[str, ...], int] = {}
    authors = []
    for where, term in _reason_terms(reason):
        if where == "author":
            if person := name(term):
                authors.append(person)
            continue
        weight, stems = _FIELD_WEIGHT.get(where, 1), _stems(term)
        for start in range(len(stems)):
            for end in range(start + 1, len(stems) + 1):
                run = stems[start:end]
                runs[run] = max(weight, runs.get(run, 0))
    return _Evidence(runs, tuple(authors))


def _lower_capitalised(term: str) -> str:
    """ "Vision" and "Policy Optimization" as a subject word, "KV" and "GRPO" as written."""
    return " ".join(w.lower() if w[:1].isupper() and w[1:].islower() else w for w in term.split())


def _fallback_topics(digest: Digest, limit: int) -> list[str]:
    """The matched terms most papers share, when no keyword or author matched."""
    counts: Counter[str] = Counter()
    shown: dict[str, str] = {}
    for match in digest.matches:
        terms = {
            term.lower(): term
            for reason in match.reasons
            for where, term in _reason_terms(reason)
            if where != "author"
        }
        counts.update(terms.keys())
        for key, term in terms.items():
            shown.setdefault(key, term)
    ranked = sorted(shown, key=lambda key: -counts[key])  # stable: ties keep their order
    return [truncate(_lower_capitalised(shown[key]), TOPIC_CHARS) for key in ranked[:limit]]


def topics(digest: Digest, limit: int = 2) -> list[str]:
    """What this issue is about, best first (see the module docstring)."""
    interests = digest.subscriber.interests
    candidates = _keyword_topics(interests.keywords)
    for order, written in enumerate(interests.authors, start=len(interests.keywords)):
        if person := name(written):
            label = truncate(clean_text(written), TOPIC_CHARS)
            candidates.append(_Topic(label, (), True, order, person))
    by_stems = {topic.stems: topic for topic in candidates if not topic.person}
    people = [(topic, topic.person) for topic in candidates if topic.person]
    for number, match in enumerate(digest.matches):
        found: dict[_Topic, int] = {}  # the topics this paper matched: the best field weight
        for evidence in map(_evidence, match.reasons):
            for run, weight in evidence.runs.items():
                if (topic := by_stems.get(run)) and weight > found.get(topic, 0):
                    found[topic] = weight
            for topic, person in people:
                if any(same_person(person, a) for a in evidence.authors):
                    found[topic] = _FIELD_WEIGHT["title"]  # an author counts as a title match
        for topic, weight in found.items():
            topic.papers.add(number)
            topic.weight += weight
    chosen = _greedy_cover(candidates, limit) or _fallback_topics(digest, limit)
    if chosen:
        return chosen
    # Nothing matched to name (an empty issue): what the subscriber follows.
    keywords = (clean_text(k) for k in interests.keywords)
    return [truncate(k, TOPIC_CHARS) for k in keywords if k][:limit]


def _greedy_cover(candidates: list[_Topic], limit: int) -> list[str]:
    """Topics that together account for the most papers: whole keywords first; a word of
    a keyword only to account for papers no chosen topic accounts for."""
    chosen: list[_Topic] = []
    covered: set[int] = set()
    while len(chosen) < limit:
        best: tuple[tuple[int, ...], _Topic] | None = None
        for topic in candidates:
            new = len(topic.papers - covered)
            if not topic.papers or topic in chosen or (not topic.whole and not new):
                continue
            if any(_overlaps(topic, other) for other in chosen):
                continue
            key = (0 if topic.whole else 1, -new, -len(topic.papers), -topic.weight, topic.order)
            if best is None or key < best[0]:
                best = (key, topic)
        if best is None:
            break
        chosen.append(best[1])
        covered |= best[1].papers
    return [topic.label for topic in chosen]


def _overlaps(a: _Topic, b: _Topic) -> bool:
    """ "diffusion" beside "diffusion transformer" would say the same thing twice."""
    if a.person or b.person:
        return a is b
    return _contains(a.stems, b.stems) or _contains(b.stems, a.stems)


def short_date(digest: Digest) -> str:
    day = digest.date
    text = f"{day.day} {_MONTHS[day.month - 1][:3]}"
    return f"week of {text}" if "W" in digest.key else f"{_DAYS[day.weekday()][:3]} {text}"


def long_day(day: dt.date) -> str:
    """ "Monday 5 January 2026": in English whatever the locale, like the rest of the text."""
    return f"{_DAYS[day.weekday()]} {day.day} {_MONTHS[day.month - 1]} {day.year}"


def long_date(digest: Digest) -> str:
    text = long_day(digest.date)
    return f"Week of {text}" if "W" in digest.key else text


def _one_line(subject: str) -> bool:
    """Whether the Subject field stays on one line on the wire: a folded subject shows
    extra spaces in some readers, and inboxes cut long subjects anyway."""
    return fits_one_line("Subject", subject)


def subject_for(digest: Digest) -> str:
    """The count and what it is about: "5 papers on quantization and robots — Mon 5 Jan".

    As many topics as fit on one header line: inboxes cut long subjects anyway.
    """
    about = topics(digest)
    count = len(digest.matches)
    head = plural(count, "paper") if count else "No new papers"
    when = short_date(digest)
    subject = clean_header_text(f"{head} — {when}")
    for n in range(len(about), 0, -1):
        candidate = clean_header_text(f"{head} on {and_list(about[:n])} — {when}")
        if _one_line(candidate):
            return candidate
    return subject
