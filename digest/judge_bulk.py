"""The reasons `judge` names in each field, for many (profile, paper) pairs at once.

`digest.index` scores every pair with sparse products; the pairs a subscriber gets then
need the reasons `judge` (digest.match) gives them, and asking `judge` pair by pair was
most of the time of a large run. Here the matched terms of all the pairs are found with
a table of which paper holds which term, then one sorted look-up of those held (where
each occurs); each term's value in each field is computed with the same
arithmetic as `judge`'s, and the strongest non-overlapping matches of every field are
chosen for all the pairs together. Only the wording is Python (`digest.match.named`,
the same function `judge` ends in), once per distinct choice: a choice is known by
integers worked out in arrays, and each pair's reasons are put together from arrays of
the worded choices. `strongest_reasons` does the same for `judge`'s fallback, the pairs
of many small matches. Authors and liked papers stay with the caller.
"""

from __future__ import annotations

from collections.abc import Hashable
from itertools import repeat
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse

from digest.analysis import FIELDS
from digest.match import named
from digest.postings import PaperIndex
from digest.runs import owners, spans
from digest.weights import MAX_REASON_TERMS, REASON_FLOOR, REASON_SHARE, Weights

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Objects = npt.NDArray[np.object_]
# Reasons already worded, by the integer `_keys` gives their paper, field and choice.
Wording = dict[Hashable, str | None]
# Sort keys packed into one integer stay below this (else sorted by several keys).
_PACKED = 1 << 62
# The table of which paper holds which term, for one batch, takes at most this many bytes.
_TABLE = 1 << 25


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
    floor = REASON_FLOOR * weights.threshold
    return _reasons(index, weights, asked, phrase, pairs, wording, floor, strongest=False)


def strongest_reasons(
    index: PaperIndex,
    weights: Weights,
    terms: sparse.csr_matrix,
    pairs: tuple[Ints, Ints],
    wording: Wording,
) -> list[tuple[str, ...]]:
    """Per pair whose score comes from many small matches, none worth naming on its own:
    the reason `judge` names instead, the strongest matches (whatever they are worth) of
    the field holding the strongest one; () where the paper holds none of the terms.

    `terms` holds each profile's weight of every term of the index it asks for. (A
    keyword phrase in a title is worth the threshold, so it is named by `field_reasons`:
    none is among these matches.)
    """
    rows, papers = pairs
    # Only the rows of these pairs (few): the look-ups below are sized by their terms.
    used, local = np.unique(rows, return_inverse=True)
    mine = terms[used]
    phrase = np.zeros(mine.nnz, dtype=np.bool_)
    return _reasons(index, weights, mine, phrase, (local, papers), wording, 0.0, strongest=True)


def _reasons(
    index: PaperIndex,
    weights: Weights,
    asked: sparse.csr_matrix,
    phrase: Bools,
    pairs: tuple[Ints, Ints],
    wording: Wording,
    floor: float,
    *,
    strongest: bool,
) -> list[tuple[str, ...]]:
    """`field_reasons`, or with `strongest` `strongest_reasons`: the matches worth
    `floor` are candidates, and the reasons are worded from the choice among them."""
    rows, papers = pairs
    if not len(papers):
        return []
    # Pairs in the order of their papers, so that the look-ups of one paper come together;
    # the groups below are those of the pairs in this order.
    by_paper = np.argsort(papers, kind="stable")
    group, value, start, end = _candidates(
        index, weights, asked, phrase, rows[by_paper], papers[by_paper], floor
    )
    if strongest and len(group):
        # `judge`'s fallback: only the field whose strongest match is the strongest (the
        # first such field; a field holding none counts as 0).
        best = np.zeros(len(papers) * len(FIELDS), dtype=np.float64)
        np.maximum.at(best, group, value)
        field = np.argmax(best.reshape(-1, len(FIELDS)), axis=1)
        keep = group % len(FIELDS) == field[group // len(FIELDS)]
        group, value, start, end = group[keep], value[keep], start[keep], end[keep]
    if not len(group):
        return [()] * len(papers)
    group, start, end = _chosen(group, value, start, end, floor)
    # One line per group (a pair's field): its paper and field, then its choice.
    first = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    size = np.diff(np.r_[first, len(group)])
    pair = by_paper[group[first] // len(FIELDS)]
    where = papers[pair] * len(FIELDS) + group[first] % len(FIELDS)
    # Worded once per distinct choice: subscribers get the same papers for the same words.
    keys, line, inverse = _distinct(_keys(index, where, start, end, first, size))
    known: list[str | None] = list(map(wording.get, keys.tolist(), repeat("")))
    said = np.empty(len(known), dtype=object)
    said[:] = known
    missing = np.flatnonzero(said == "")
    if len(missing):
        # In the order of their keys: field by field, its words at hand while it is worded.
        line = line[missing]
        place = where[line]
        field = np.array(FIELDS, dtype=object)[place % len(FIELDS)].tolist()
        texts = index.texts
        paper = (place // len(FIELDS)).tolist()
        owner = [texts[p].fields[f] for p, f in zip(paper, field, strict=True)]
        chosen = np.empty(len(line), dtype=object)
        for n in range(1, MAX_REASON_TERMS + 1):
            these = np.flatnonzero(size[line] == n)
            at = first[line[these]]
            matches = [
                zip(start[at + j].tolist(), end[at + j].tolist(), strict=True) for j in range(n)
            ]
            each = map(list, zip(*matches, strict=True))
            chosen[these] = np.fromiter(each, dtype=object, count=len(these))
        worded = list(map(named, owner, field, chosen.tolist()))
        said[missing] = worded
        wording.update(zip(keys[missing].tolist(), worded, strict=True))
    return _assembled(said[inverse], pair, len(papers))


def _keys(
    index: PaperIndex, where: Ints, start: Ints, end: Ints, first: Ints, size: Ints
) -> npt.NDArray[Any]:
    """What each line's reason is remembered by, one integer the same across calls with
    the same index: its paper and field, then each match (first token * span + past the
    last, where no field has `span` tokens; 0 where fewer were chosen), in mixed radix.
    Python integers where they would not fit in 64 bits."""
    span = 1 + index.longest_field
    square = span * span
    exact = len(index.texts) * len(FIELDS) * square**MAX_REASON_TERMS < 1 << 63
    code = start * span + end
    key = where if exact else where.astype(object)
    for j in range(MAX_REASON_TERMS):
        key = key * square + np.where(size > j, code[np.minimum(first + j, len(code) - 1)], 0)
    return key


def _distinct(values: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], Ints, Ints]:
    """`np.unique(values, return_index=True, return_inverse=True)`, except that the
    index is that of any one of the equal values (no stable sort needed)."""
    order = np.argsort(values)
    ranked = values[order]
    new = np.r_[True, ranked[1:] != ranked[:-1]]
    inverse = np.empty(len(values), dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return ranked[new], order[new], inverse


def _assembled(said: Objects, pair: Ints, count: int) -> list[tuple[str, ...]]:
    """Each pair's reasons as one tuple, from the reasons of its fields in order (`said`,
    those of one `pair` together), leaving out the fields nothing is named in."""
    worded = said != None  # noqa: E711 (elementwise)
    if not worded.all():
        said, pair = said[worded], pair[worded]
    reasons = np.empty(count, dtype=object)
    reasons.fill(())
    first = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]])
    size = np.diff(np.r_[first, len(pair)])
    for n in range(1, len(FIELDS) + 1):
        these = first[size == n]
        tuples = zip(*(said[these + j] for j in range(n)), strict=True)
        reasons[pair[these]] = np.fromiter(tuples, dtype=object, count=len(these))
    result: list[tuple[str, ...]] = reasons.tolist()
    return result


def _candidates(
    index: PaperIndex,
    weights: Weights,
    asked: sparse.csr_matrix,
    phrase: Bools,
    rows: Ints,
    papers: Ints,
    floor: float,
    table: int = _TABLE,
) -> tuple[Ints, Floats, Ints, Ints]:
    """What `judge` would consider naming: per pair, field and matched term worth `floor`
    there, as (pair * 3 + field, value, first token, past the last). `table`: the most
    bytes the table of which paper holds which term may take."""
    indptr = asked.indptr.astype(np.int64)
    begins = indptr[rows]
    counts = indptr[rows + 1] - begins
    pair = owners(counts)
    at, _ = spans(begins, begins + counts)
    held = _holding(index, asked, papers, counts, at, table)
    if held is not None:
        pair, at = pair[held], at[held]
    wanted = (papers[pair] << 32) + asked.indices[at]
    held, span, abstract_values = index.locate(wanted)
    if not held.all():
        pair, at = pair[held], at[held]
    weight = asked.data[at]

    w = weights
    # `_entry` and `judge`: a keyword phrase in a title is worth the threshold at least.
    values = np.column_stack(
        (
            np.maximum(w.title * weight, np.where(phrase[at], w.threshold, 0.0)),
            w.ai_keywords * weight,
            weight * abstract_values,
        )
    )
    firsts = span[:, 0::2]
    ok = (firsts >= 0) & (values >= floor)
    entry, field = np.nonzero(ok)
    start = firsts[entry, field]
    return (
        pair[entry] * len(FIELDS) + field,
        values[entry, field],
        start,
        start + span[entry, 2 * field + 1],
    )


def _holding(
    index: PaperIndex,
    asked: sparse.csr_matrix,
    paper: Ints,
    count: Ints,
    at: Ints,
    limit: int = _TABLE,
) -> Bools | None:
    """Whether each `paper` (repeated `count` times, once for each of its look-ups) holds
    the term `asked.indices[at]`, as `PaperIndex.locate` says: from a table of the papers
    and terms at hand (None if it would take more than `limit` bytes). Most terms of a
    pair are not in its paper, and this is much cheaper than looking them all up."""
    presence = index.matrices()[2]
    term_count, paper_count = presence.shape
    terms = np.flatnonzero(np.bincount(asked.indices, minlength=term_count))
    papers = np.flatnonzero(np.bincount(paper, minlength=paper_count))
    width = len(terms)
    if len(papers) * width > limit:
        return None
    # Places in the table fit in 32 bits (at most `limit`): half the bytes to move.
    term_at = np.zeros(term_count, dtype=np.int32)
    term_at[terms] = np.arange(width)
    paper_at = np.full(paper_count, -1, dtype=np.int32)
    paper_at[papers] = np.arange(len(papers))
    # A row per paper: the look-ups of one paper come together.
    holders = presence[terms]
    row = paper_at[holders.indices]
    column = owners(np.diff(holders.indptr))
    here = row >= 0
    table = np.zeros(len(papers) * width, dtype=np.bool_)
    table[row[here].astype(np.int64) * width + column[here]] = True
    held: Bools = table[np.repeat(paper_at[paper] * width, count) + term_at[asked.indices][at]]
    return held


def _chosen(
    group: Ints, value: Floats, start: Ints, end: Ints, floor: float
) -> tuple[Ints, Ints, Ints]:
    """`_field_reason`'s choice in every group at once: the matches worth REASON_SHARE of
    the group's strongest (and the floor), strongest first, then the earliest, then the
    longest, skipping any that overlaps one already chosen, at most MAX_REASON_TERMS.
    Returns the chosen (group, first token, past the last), by group then position."""
    order = _strongest_first(group, value, start, end)
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
    member = owners(np.diff(np.r_[first, size]))
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
    # Chosen matches of one group never share a first token.
    order = np.argsort(group * (int(start.max()) + 1) + start, kind="stable")
    return group[order], start[order], end[order]


def _strongest_first(
    group: Ints, value: Floats, start: Ints, end: Ints, packed: int = _PACKED
) -> Ints:
    """The order of the matches by group, then value (highest first), then first token,
    then length (longest first)."""
    length = end - start
    longest = int(length.max()) + 1
    tie = start * longest + (longest - 1 - length)
    return best_first(group, value, tie, int(tie.max()) + 1, packed)


def best_first(group: Ints, value: Floats, tie: Ints, ties: int, packed: int = _PACKED) -> Ints:
    """`np.lexsort((tie, -value, group))`: the order by group, then value (highest first),
    then `tie` (whole numbers below `ties`), as one sort of whole numbers where they fit
    in `packed`, which is several times faster."""
    if not len(group):
        return np.zeros(0, dtype=np.int64)
    strength, _, rank = _distinct(-value)
    if (int(group.max()) + 1) * len(strength) * ties < packed:
        return np.argsort((group * len(strength) + rank) * ties + tie, kind="stable")
    return np.lexsort((tie, rank, group))
