"""Scoring papers against a subscriber's interests, with reasons a reader can check.

A subscriber's `[interests]` compile once into a `Profile` (`digest.profile`): a mapping of terms
(stemmed words and phrases, see `digest.text`) to weights. A weight is how much the
subscriber asked for the term (a keyword more than a word of the free-text description)
times how rare the term is among the papers in the store (IDF): "galaxy" in a store of
astronomy papers says little, "kilonova" says a lot. A paper's score adds up, for
each profile term it contains, that weight times the evidence (`digest.analysis.Hit`): a
mention in the title, and a saturating count of mentions in the abstract (BM25-style,
corrected for the abstract's length). A keyword of several words found in a title is
enough on its own. A fixed threshold keeps weak matches out, so a quiet day sends fewer
papers or none. Authors and liked papers add to the score; `exclude` vetoes.

`select` serves one subscriber; `digest.index.select_many` serves many at once with the
same numbers, so a run analyses each paper once and scores a hundred thousand subscribers
without a hundred million Python calls. `judge` below is the one definition of a match:
the batch path adds scores in its order and works out its reasons for many pairs at once
(`digest.judge_bulk`, ending in `named` as `judge` does), and the tests hold both equal.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

from digest.analysis import (
    FIELDS,
    CorpusStats,
    FieldText,
    Hit,
    PaperText,
    analyse,
    find_hit,
)
from digest.config import load_subscriber
from digest.jsonl import read_papers_jsonl
from digest.models import Match, Paper, Subscriber
from digest.profile import Profile, compile_for, compile_profile
from digest.text import (
    same_person,
)
from digest.weights import MAX_REASON_TERMS, REASON_FLOOR, REASON_SHARE, WEIGHTS, Weights

__all__ = [
    "WEIGHTS",
    "CorpusStats",
    "PaperText",
    "Profile",
    "Weights",
    "analyse",
    "compile_profile",
    "judge",
    "rank_file",
    "read_papers_jsonl",
    "score",
    "score_text",
    "select",
]

log = logging.getLogger(__name__)


_WORDS = re.compile(r"[^\W_]+")


def score(profile: Profile, paper: Paper) -> tuple[float, tuple[str, ...]]:
    """The paper's score for this profile, and the reasons for it (none when vetoed)."""
    return score_text(profile, analyse(paper))


def score_text(profile: Profile, text: PaperText) -> tuple[float, tuple[str, ...]]:
    """`score` on a paper analysed beforehand (one analysis serves every subscriber)."""
    evidence = profile.evidence
    hits = {}
    for term in {*profile.exclude, *(t for t, _ in profile.combined)}:
        if (found := find_hit(text, evidence, term)) is not None:
            hits[term] = found
    return judge(profile, text, hits)


def judge(
    profile: Profile, text: PaperText, hits: Mapping[str, Hit]
) -> tuple[float, tuple[str, ...]]:
    """The score and reasons of a paper, given the Hits of the profile's terms in it.

    `hits` may hold other terms too (`digest.index` passes every term of the paper).
    """
    for term in profile.exclude:
        if term in hits:
            return 0.0, ()
    total = 0.0
    floor = REASON_FLOOR * profile.threshold
    # What each notable term brings per field (see `_found`), built in the same pass.
    title: list[tuple[float, int, int]] = []
    keywords: list[tuple[float, int, int]] = []
    abstract: list[tuple[float, int, int]] = []
    table = profile.table
    # The profile's terms the paper holds, in one fixed order (sums must not depend on
    # which of the two is larger). The intersection walks the smaller of the two, so a
    # paper's few matches cost little however large the profile or the paper.
    present = sorted(hits.keys() & table.keys())
    for term in present:
        weight, in_title, in_keywords, asked = table[term]
        found = hits[term]
        total += weight * found.value
        if asked is None:
            continue
        if in_title is not None and found.title is not None:
            title.append((in_title, *found.title))
        if in_keywords is not None and found.keywords is not None:
            keywords.append((in_keywords, *found.keywords))
        if found.abstract is not None and (value := asked * found.abstract_value) >= floor:
            abstract.append((value, *found.abstract))
    get = hits.get
    lifted = 0.0
    for term, lift in profile.settles:
        titled = get(term)
        if lift and titled is not None and titled.title is not None:
            lifted += lift
    total += lifted
    reasons = []
    fields = text.fields
    if title and (reason := _field_reason(fields["title"], "title", title, floor)):
        reasons.append(reason)
    if keywords and (reason := _field_reason(fields["keywords"], "keywords", keywords, floor)):
        reasons.append(reason)
    if abstract and (reason := _field_reason(fields["abstract"], "abstract", abstract, floor)):
        reasons.append(reason)
    if profile.authors:
        bonus = profile.weights.author * profile.threshold
        families = profile.families
        for written, author in text.authors:
            if author.family in families and any(
                same_person(wanted, author) for wanted in profile.authors
            ):
                total += bonus
                reasons.append(f"author: {written}")
    likes = []
    if profile.liked:
        for liked_id, terms in sorted(profile.liked.items()):
            part = sum(w * h.value for t, w in terms.items() if (h := get(t)) is not None)
            likes.append((part, liked_id))
        likes.sort(key=lambda like: -like[0])
        floor = profile.weights.like_reason_share * profile.threshold
        reasons += [f"like {liked_id}" for part, liked_id in likes if part >= floor]
    if not reasons and total > 0:
        # Many small matches made the score: name the strongest of them.
        by_field = _found(profile, [(t, hits[t]) for t in present], 0.0)
        best = max(FIELDS, key=lambda f: max((v for v, _, _ in by_field[f]), default=0.0))
        strongest = max((v for v, _, _ in by_field[best]), default=0.0)
        if likes and likes[0][0] > strongest:
            reasons.append(f"like {likes[0][1]}")
        elif reason := _field_reason(text.fields[best], best, by_field[best], 0.0):
            reasons.append(reason)
    return total, tuple(reasons)


def _found(
    profile: Profile, matched: Sequence[tuple[str, Hit]], floor: float
) -> dict[str, list[tuple[float, int, int]]]:
    """What each asked term among `matched` brings, field by field, and where it first
    occurs there: the matches worth at least `floor`."""
    w = profile.weights
    found: dict[str, list[tuple[float, int, int]]] = {f: [] for f in FIELDS}
    for term, h in matched:
        weight = profile.terms.get(term)
        if weight is None:
            continue
        if h.title is not None:
            settles = profile.threshold if term in profile.phrases else 0.0
            if (value := max(w.title * weight, settles)) >= floor:
                found["title"].append((value, *h.title))
        if h.keywords is not None and (value := w.ai_keywords * weight) >= floor:
            found["keywords"].append((value, *h.keywords))
        if h.abstract is not None and (value := weight * h.abstract_value) >= floor:
            found["abstract"].append((value, *h.abstract))
    return found


def _field_reason(
    text: FieldText, where: str, found: list[tuple[float, int, int]], floor: float
) -> str | None:
    """ "title: Weak Lensing, halos": the field's strongest matches, as written, none
    overlapping another, none worth less than `floor`."""
    if not found:
        return None
    if len(found) == 1:
        value, start, length = found[0]
        return f"{where}: {text.surface(start, length)}" if value >= floor else None
    cutoff = max(REASON_SHARE * max(found)[0], floor)
    chosen: list[tuple[int, int]] = []  # (first token, past the last)
    # Strongest first, then the earliest, then the longest.
    for _, start, shorter in sorted([(-v, s, -n) for v, s, n in found if v >= cutoff]):
        end = start - shorter
        for s, e in chosen:
            if start < e and s < end:
                break
        else:
            chosen.append((start, end))
            if len(chosen) == MAX_REASON_TERMS:
                break
    return named(text, where, chosen)


def named(text: FieldText, where: str, chosen: list[tuple[int, int]]) -> str | None:
    """The reason naming the matches `chosen` in a field, as (first token, past the last),
    none overlapping another; `digest.judge_bulk` chooses them too.

    The matches are named in order, each surface once, leaving out any whose words are
    found in another named beside it: "halos" says nothing more beside "dark matter
    halos" found elsewhere in the field (and two surfaces with the same words drop both).
    """
    if len(chosen) == 1:
        start, end = chosen[0]
        return f"{where}: {text.surface(start, end - start)}"
    chosen.sort()
    # Per match: its surface and its words, worked out once per field.
    quoted = text._quoted
    found = []
    for span in chosen:
        known = quoted.get(span)
        if known is None:
            start, end = span
            surface = text.surface(start, end - start)
            known = quoted[span] = (surface, _spaced_words(surface))
        found.append(known)
    # Two or three matches, the common cases, spelled out (the same as the general rule).
    if len(found) == 2:
        (a, words_a), (b, words_b) = found
        if a == b:
            return f"{where}: {a}"
        if words_a in words_b:
            return None if words_b in words_a else f"{where}: {b}"
        return f"{where}: {a}" if words_b in words_a else f"{where}: {a}, {b}"
    if len(found) == 3:
        (a, words_a), (b, words_b), (c, words_c) = found
        if a != b and b != c and a != c:
            kept = [
                s
                for s, mine, one, two in (
                    (a, words_a, words_b, words_c),
                    (b, words_b, words_a, words_c),
                    (c, words_c, words_a, words_b),
                )
                if mine not in one and mine not in two
            ]
            return f"{where}: {', '.join(kept)}" if kept else None
    distinct = list(dict.fromkeys(found))
    if len(distinct) == 1:
        return f"{where}: {distinct[0][0]}"
    # Found once, in its own place only (the NULs keep matches within one surface).
    every = "\0".join([words for _, words in distinct])
    surfaces = [surface for surface, words in distinct if every.count(words) == 1]
    return f"{where}: {', '.join(surfaces)}" if surfaces else None


@lru_cache(maxsize=1 << 16)
def _spaced_words(surface: str) -> str:
    """ " dark matter halos ": the words of a quoted match, for finding one inside another."""
    return f" {' '.join(_WORDS.findall(surface.casefold()))} "


def eligible(subscriber: Subscriber, paper: Paper) -> bool:
    """Whether the paper may be sent at all: enough upvotes, and not one they liked (a
    liked paper has been read: it widens the profile but is not sent again)."""
    return paper.upvotes >= subscriber.min_upvotes and paper.id not in subscriber.interests.liked


def ranked(matches: list[Match], subscriber: Subscriber) -> list[Match]:
    """Best first; ties go to more upvotes, then the smaller id; at most `max_papers`."""
    matches.sort(key=lambda m: (-m.score, -m.paper.upvotes, m.paper.id))
    return matches[: max(subscriber.max_papers, 0)]


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
    profile = compile_for(subscriber, stats, liked_papers, weights)
    matches = []
    for paper in papers:
        if not eligible(subscriber, paper):
            continue
        text = analysed.get(paper.id) if analysed is not None else None
        if text is None or text.paper != paper:
            text = analyse(paper)
        value, reasons = score_text(profile, text)
        if value >= profile.threshold and reasons:
            matches.append(Match(paper, value, reasons))
    log.debug("%s: %d of %d papers pass", subscriber.slug, len(matches), len(papers))
    return ranked(matches, subscriber)


# ---------------------------------------------------------------------------------------
# `digest rank`


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
