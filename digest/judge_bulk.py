"""The reasons `judge` names in each field, for many (profile, paper) pairs at once.

`digest.index` scores every pair with sparse products; the pairs a subscriber gets then
need the reasons `judge` (digest.match) gives them, and asking `judge` pair by pair was
most of the time of a large run. Here the matched terms of all the pairs are found with
one sorted look-up, each term's value in each field is computed with the same
arithmetic as `judge`'s, and the strongest non-overlapping matches of every field are
chosen for all the pairs together. Only the wording is Python (`digest.match.named`,
the same function `judge` ends in), once per distinct choice. Authors, liked papers and
the fallback for a pair nothing is named for stay with the caller.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import numpy.typing as npt
from scipy import sparse

from digest.analysis import FIELDS
from digest.match import named
from digest.postings import PaperIndex
from digest.profile import MAX_REASON_TERMS, REASON_FLOOR, REASON_SHARE, Weights

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
# Reasons already worded: (paper, field, (first token, past the last) x 3) → reason.
Wording = dict[Hashable, str | None]


def field_reasons(
    index: PaperIndex,
    weights: Weights,
    asked: sparse.csr_matrix,
    phrase: Bools,
    pairs: tuple[Ints, Ints],
    wording: Wording,
) -> list[tuple[str, ...]]:
    """Per pair (row of `asked`, paper of `index`): the reasons `judge` names in the
    title, ai_keywords and abstract, in that order.

    `asked` holds one row per profile: the asked weight of each of its terms (columns are
    the index's rows), not counting liked papers; `phrase`, aligned with `asked.data`,
    marks the keyword phrases. `wording` remembers reasons across calls.
    """
    rows, papers = pairs
    reasons: list[tuple[str, ...]] = [()] * len(papers)
    if not len(papers):
        return reasons
    group, value, start, end = _candidates(index, weights, asked, phrase, rows, papers)
    if not len(group):
        return reasons
    group, start, end = _chosen(group, value, start, end, REASON_FLOOR * weights.threshold)
    # One line per group: its paper and field, then its choice, (start, end) in turn.
    first = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    pair = group[first] // len(FIELDS)
    line = np.full((len(first), 2 + 2 * MAX_REASON_TERMS), -1, dtype=np.int64)
    line[:, 0] = papers[pair]
    line[:, 1] = group[first] % len(FIELDS)
    place = np.arange(len(group)) - np.repeat(first, np.diff(np.r_[first, len(group)]))
    owner = np.repeat(np.arange(len(first)), np.diff(np.r_[first, len(group)]))
    line[owner, 2 + 2 * place] = start
    line[owner, 3 + 2 * place] = end
    # Worded once per distinct choice: subscribers get the same papers for the same words.
    keys = list(map(tuple, line.tolist()))
    get = wording.get
    words: list[str | None] = [get(key, "") for key in keys]
    texts = index.texts
    for g in [g for g, said in enumerate(words) if said == ""]:
        key = keys[g]
        said = wording.get(key, "")
        if said == "":
            p, f = key[0], key[1]
            chosen = [(key[i], key[i + 1]) for i in range(2, len(key), 2) if key[i] >= 0]
            said = wording[key] = named(texts[p].fields[FIELDS[f]], FIELDS[f], chosen)
        words[g] = said
    worded = np.array([w is not None for w in words], dtype=np.bool_)
    said_of = np.empty(len(words), dtype=object)
    said_of[:] = words
    said_of = said_of[worded]
    pair = pair[worded]
    # Each pair's reasons as one tuple, built column by column.
    counts = np.bincount(pair, minlength=len(papers))
    slot = np.arange(len(pair)) - np.searchsorted(pair, pair)
    grid = np.empty((len(papers), len(FIELDS)), dtype=object)
    grid[pair, slot] = said_of
    for n in range(1, len(FIELDS) + 1):
        chosen_pairs = np.flatnonzero(counts == n)
        columns = [grid[chosen_pairs, j] for j in range(n)]
        for k, named_here in zip(chosen_pairs.tolist(), zip(*columns, strict=True), strict=True):
            reasons[k] = named_here
    return reasons


def _candidates(
    index: PaperIndex,
    weights: Weights,
    asked: sparse.csr_matrix,
    phrase: Bools,
    rows: Ints,
    papers: Ints,
) -> tuple[Ints, npt.NDArray[np.float64], Ints, Ints]:
    """What `judge` would consider naming: per pair, field and matched term worth the
    reason floor there, as (pair * 3 + field, value, first token, past the last)."""
    # Pairs in the order of their papers, so that the look-ups of one paper come together.
    by_paper = np.argsort(papers, kind="stable")
    indptr = asked.indptr.astype(np.int64)
    begins = indptr[rows[by_paper]]
    counts = indptr[rows[by_paper] + 1] - begins
    pair = np.repeat(by_paper, counts)
    at = np.repeat(begins - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
    wanted = (papers[pair] << 32) + asked.indices[at]
    held, span, abstract_values = index.locate(wanted)
    pair, at = pair[held], at[held]
    weight = asked.data[at]

    w = weights
    floor = REASON_FLOOR * w.threshold
    # `_entry` and `judge`: a keyword phrase in a title is worth the threshold at least.
    values = (
        np.maximum(w.title * weight, np.where(phrase[at], w.threshold, 0.0)),
        w.ai_keywords * weight,
        weight * abstract_values,
    )
    groups, kept, firsts, lasts = [], [], [], []
    for f, value in enumerate(values):
        ok = (span[:, 2 * f] >= 0) & (value >= floor)
        groups.append(pair[ok] * len(FIELDS) + f)
        kept.append(value[ok])
        firsts.append(span[ok, 2 * f])
        lasts.append(span[ok, 2 * f] + span[ok, 2 * f + 1])
    return (
        np.concatenate(groups),
        np.concatenate(kept),
        np.concatenate(firsts),
        np.concatenate(lasts),
    )


def _chosen(
    group: Ints, value: npt.NDArray[np.float64], start: Ints, end: Ints, floor: float
) -> tuple[Ints, Ints, Ints]:
    """`_field_reason`'s choice in every group at once: the matches worth REASON_SHARE of
    the group's strongest (and the floor), strongest first, then the earliest, then the
    longest, skipping any that overlaps one already chosen, at most MAX_REASON_TERMS.
    Returns the chosen (group, first token, past the last), by group then position."""
    order = np.lexsort((start - end, start, -value, group))
    group, value, start, end = group[order], value[order], start[order], end[order]
    size = len(group)
    first = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    count = np.diff(np.r_[first, size])
    # The strongest of a group comes first; a group of one is named whatever its value.
    cutoff = np.maximum(REASON_SHARE * value[first], floor)
    keep = (np.repeat(count, count) == 1) | (value >= np.repeat(cutoff, count))
    group, start, end = group[keep], start[keep], end[keep]
    size = len(group)
    first = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    member = np.repeat(np.arange(len(first)), np.diff(np.r_[first, size]))
    alive = np.ones(size, dtype=np.bool_)
    chosen = np.zeros(size, dtype=np.bool_)
    positions = np.arange(size)
    for _ in range(MAX_REASON_TERMS):
        # Each group's first match still standing is chosen; those it overlaps fall.
        best = np.minimum.reduceat(np.where(alive, positions, size), first)
        if not (best < size).any():
            break
        taken = best[best < size]
        chosen[taken] = True
        pick = best[member]
        valid = pick < size
        pick = np.where(valid, pick, 0)
        alive &= ~(valid & (start < end[pick]) & (start[pick] < end))
    group, start, end = group[chosen], start[chosen], end[chosen]
    order = np.lexsort((start, group))
    return group[order], start[order], end[order]
