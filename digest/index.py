"""Matching many subscribers at once: an inverted index and sparse matrix products.

`select` (digest.match) scores one subscriber against each paper in turn, looking every
profile term up in every paper. For a run of 100,000 subscribers and 1,000 papers that
is 10^8 look-ups. Here the papers are indexed once (term → the papers holding it, with
what each is worth: a `Hit`), a batch of profiles becomes sparse rows of term weights
(`digest.profile_rows`, each keyword and description clause worked out once per run),
and one sparse product per batch gives every (subscriber, paper) score. Each row holds
its terms in sorted order, the order in which `judge` (the one definition of a match)
adds them up, and the product adds in row order: the scores are `judge`'s to the last
bit. The best pairs of each subscriber are then ranked as `select` ranks them and given
the reasons `judge` gives, worked out for all the pairs of a batch at once
(`digest.judge_bulk`), the fallback for pairs of many small matches included. A pair
left with no reason at all goes to `judge`, and so does every pair of a subscriber who
likes papers. With `workers` > 1, forked processes take batches in turn until none is
left (`digest.workers`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate, chain

import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy.sparse import _sparsetools

from digest.analysis import CorpusStats, PaperText, analyse, collector_paused
from digest.judge_bulk import Wording, best_first, field_reasons, strongest_reasons
from digest.match import eligible, judge
from digest.models import Match, Paper, Subscriber
from digest.postings import PaperIndex
from digest.profile import Compiler, Profile
from digest.profile_rows import Request as Request
from digest.profile_rows import RowCompiler, Rows
from digest.runs import owners
from digest.weights import WEIGHTS, Weights
from digest.workers import can_fork, in_processes

log = logging.getLogger(__name__)

# Subscribers compiled and scored together: bounds the dense block of scores in memory.
BATCH = 2048
# Pairs of those whom `judge` decides for: this close below the threshold, judged too
# (a safety margin: the products add in `judge`'s order).
TOLERANCE = 1e-6

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


def select_many(
    requests: Sequence[Request],
    stats: CorpusStats,
    *,
    analysed: Mapping[str, PaperText] | None = None,
    weights: Weights = WEIGHTS,
    batch: int = BATCH,
    workers: int = 1,
) -> list[list[Match]]:
    """`select` for many subscribers: one list of matches per (subscriber, papers, liked
    papers) request, equal to `select(subscriber, papers, stats, liked, ...)`.

    Requests that share one papers list (the same object) share its index look-ups.
    `workers` > 1 splits a large run over that many processes (forked, where the system
    can fork: the index is built once and shared).
    """
    if not requests:
        return []
    with collector_paused():
        return _select_many(requests, stats, analysed, weights, batch, workers)


def _select_many(
    requests: Sequence[Request],
    stats: CorpusStats,
    analysed: Mapping[str, PaperText] | None,
    weights: Weights,
    batch: int,
    workers: int,
) -> list[list[Match]]:
    papers: list[Paper] = []
    where: dict[str, list[int]] = {}
    allowed: dict[int, tuple[Sequence[Paper], Ints]] = {}
    for _, offered, _ in requests:
        if id(offered) in allowed:
            continue
        slots = []
        for paper in offered:
            same = next((i for i in where.get(paper.id, ()) if papers[i] == paper), None)
            if same is None:
                same = len(papers)
                papers.append(paper)
                where.setdefault(paper.id, []).append(same)
            slots.append(same)
        allowed[id(offered)] = (offered, np.array(slots, dtype=np.int64))
    texts = []
    for paper in papers:
        text = analysed.get(paper.id) if analysed is not None else None
        texts.append(text if text is not None and text.paper == paper else analyse(paper))
    probe = Profile({}, weights=weights, abstract_length=stats.abstract_length)
    work = _Work(PaperIndex(texts, probe.evidence), stats, weights, allowed)
    batches = [requests[i : i + batch] for i in range(0, len(requests), batch)]
    if workers > 1 and len(batches) > 1 and can_fork():
        done = in_processes(lambda n: work.run(batches[n]), len(batches), work.matches, workers)
        chosen = [m for matches in done for m in matches]
    else:
        chosen = [m for chunk in batches for m in work.matches(work.run(chunk))]
    log.debug("%d subscribers matched against %d papers", len(requests), len(papers))
    return chosen


# A chosen paper of the index, its score and reasons.
Match_ = tuple[int, float, tuple[str, ...]]
Verdicts = list[list[Match_]]


@dataclass(frozen=True)
class Chosen:
    """A batch's verdicts in few objects, for a forked worker to send: per subscriber how
    many papers, then every chosen paper's index, score and reasons, one after another."""

    counts: list[int]
    papers: Ints
    values: Floats
    reasons: tuple[tuple[str, ...], ...]

    @classmethod
    def of(cls, verdicts: Verdicts) -> Chosen:
        flat = list(chain.from_iterable(verdicts))
        papers, values, reasons = zip(*flat, strict=True) if flat else ((), (), ())
        return cls(
            list(map(len, verdicts)),
            np.array(papers, dtype=np.int64),
            np.array(values, dtype=np.float64),
            reasons,
        )


class _Work:
    """Everything a batch of subscribers is matched with: shared by forked workers."""

    def __init__(
        self,
        index: PaperIndex,
        stats: CorpusStats,
        weights: Weights,
        allowed: Mapping[int, tuple[Sequence[Paper], Ints]],
    ) -> None:
        self.index = index
        self.stats = stats
        self.weights = weights
        self.allowed = allowed
        self.upvotes = np.array([t.paper.upvotes for t in index.texts], dtype=np.int64)
        self.compiler = RowCompiler(index, stats, weights, Compiler(stats, weights))
        # Per papers list: each offered paper's place in the order that breaks ties of
        # score: more upvotes first, then the smaller id, then the offered order.
        self.tie_ranks: dict[int, Ints] = {}
        for key, (_, slots) in allowed.items():
            ids = [index.papers[p].id for p in slots.tolist()]
            place = {paper_id: n for n, paper_id in enumerate(sorted(set(ids)))}
            id_ranks = np.array([place[i] for i in ids], dtype=np.int64)
            order = np.lexsort((np.arange(len(slots)), id_ranks, -self.upvotes[slots]))
            self.tie_ranks[key] = np.empty(len(slots), dtype=np.int64)
            self.tie_ranks[key][order] = np.arange(len(slots))
        self.wording: Wording = {}

    def matches(self, chosen: Chosen) -> list[list[Match]]:
        every = self.index.papers
        papers = map(every.__getitem__, chosen.papers.tolist())
        made = list(map(Match, papers, chosen.values.tolist(), chosen.reasons))
        ends = list(accumulate(chosen.counts))
        return [made[end - count : end] for count, end in zip(chosen.counts, ends, strict=True)]

    def run(self, chunk: Sequence[Request]) -> Chosen:
        """The verdicts of one batch of requests."""
        return Chosen.of(self.verdicts(chunk))

    def verdicts(self, chunk: Sequence[Request]) -> Verdicts:
        rows = self.compiler.rows(chunk)
        values, titles, presence = self.index.matrices()
        scores = dense_product(rows.weights, values)
        # Few pairs get a lift or a veto: only theirs are touched.
        if rows.lifts.nnz:
            at, lifted = _entries(rows.lifts @ titles)
            scores[at] += lifted
        if rows.vetoes.nnz:
            at, vetoed = _entries(rows.vetoes @ presence)
            scores[at[0][vetoed > 0], at[1][vetoed > 0]] = -np.inf
        authors: dict[int, dict[int, tuple[str, ...]]] = {}
        bonus = self.weights.author * self.weights.threshold
        for r, people in enumerate(rows.authors):
            if people:
                authors[r] = self.index.author_reasons(people)
                for p, named in authors[r].items():
                    for _ in named:  # one by one, as `judge` adds them
                        scores[r, p] += bonus
        return self.choose(chunk, scores, rows, authors)

    def choose(
        self,
        chunk: Sequence[Request],
        scores: Floats,
        rows: Rows,
        authors: Mapping[int, Mapping[int, tuple[str, ...]]],
    ) -> Verdicts:
        """Each subscriber's matches among the papers offered to them, scored, ranked and
        given reasons exactly like `select` does. Row r of `scores` holds `judge`'s score
        of every paper for chunk[r] (vetoed papers: -inf)."""
        chosen: Verdicts = [[] for _ in chunk]
        thresholds = np.full(len(chunk), self.weights.threshold)
        tolerances = TOLERANCE * np.maximum(1.0, np.abs(thresholds))
        least = np.array([s.min_upvotes for s, _, _ in chunk], dtype=np.int64)
        wanted = np.array([max(s.max_papers, 0) for s, _, _ in chunk], dtype=np.int64)
        # Whoever likes papers is not sent them, and is told which they resemble: `judge`
        # decides for them, pair by pair.
        judged = np.array([bool(s.interests.liked) for s, _, _ in chunk], dtype=np.bool_)
        groups: dict[int, list[int]] = {}
        for r, (_, offered, _) in enumerate(chunk):
            groups.setdefault(id(offered), []).append(r)
        owners, papers, values = [], [], []
        for key, members in groups.items():
            slots = self.allowed[key][1]
            group = np.array(members, dtype=np.int64)
            if _every(group, scores.shape[0]) and _every(slots, scores.shape[1]):
                block = scores  # (the usual case: everyone offered every paper)
            else:
                block = scores[group[:, None], slots[None, :]]
            upvotes = self.upvotes[slots]
            passing = block >= thresholds[group, None]
            if len(upvotes) and (least[group] > upvotes.min()).any():
                passing &= upvotes[None, :] >= least[group, None]
            by_judge = np.flatnonzero(judged[group] & (wanted[group] > 0))
            if len(by_judge):
                chosen_by_judge = group[by_judge]
                # Pairs this close below the threshold are judged too (see TOLERANCE).
                near = block[by_judge] >= (thresholds - tolerances)[chosen_by_judge, None]
                near &= upvotes[None, :] >= least[chosen_by_judge, None]
                found = _Candidates(chosen_by_judge, slots, block[by_judge], near)
                for i, r in enumerate(chosen_by_judge.tolist()):
                    chosen[r] = self.pick(
                        chunk[r][0], rows.profiles[r], int(wanted[r]), tolerances[r], found, i
                    )
            passing[judged[group]] = False
            # Best first; ties go to more upvotes, then the smaller id, then the offered order.
            places = np.flatnonzero(passing)
            at, slot = np.divmod(places, block.shape[1])
            value = block.ravel()[places]
            order = best_first(at, value, self.tie_ranks[key][slot], len(slots))
            at, slot, value = at[order], slot[order], value[order]
            rank = np.arange(len(at)) - np.searchsorted(at, at)
            top = rank < wanted[group][at]
            owners.append(group[at[top]])
            papers.append(slots[slot[top]])
            values.append(value[top])
        if owners:
            self.name(chunk, rows, authors, chosen, (owners, papers, values))
        return chosen

    def name(
        self,
        chunk: Sequence[Request],
        rows: Rows,
        authors: Mapping[int, Mapping[int, tuple[str, ...]]],
        chosen: Verdicts,
        picked: tuple[list[Ints], list[Ints], list[Floats]],
    ) -> None:
        """The reasons of the pairs chosen by score, into `chosen`, in their order. A pair
        nothing can be named for in bulk is judged; a subscriber whose pair `judge` turns
        down has their matches chosen again, pair by pair."""
        owner, paper = np.concatenate(picked[0]), np.concatenate(picked[1])
        values = np.concatenate(picked[2])
        if np.any(owner[1:] < owner[:-1]):  # (several groups of papers offered)
            order = np.argsort(owner, kind="stable")
            owner, paper, values = owner[order], paper[order], values[order]
        named = field_reasons(
            self.index, self.weights, rows.asked, rows.phrase, (owner, paper), self.wording
        )
        verdicts: list[Match_] = list(zip(paper.tolist(), values.tolist(), named, strict=True))
        owners = owner.tolist()
        if authors:
            for i in np.flatnonzero(np.isin(owner, list(authors))).tolist():
                p, value, reasons = verdicts[i]
                if followed := authors[owners[i]].get(p):
                    verdicts[i] = (p, value, reasons + followed)
        judged: dict[int, Profile] = {}  # row → its profile, where `judge` was needed
        redo: set[int] = set()
        lengths = np.fromiter(map(len, named), np.int64, len(named))
        unnamed = [i for i in np.flatnonzero(lengths == 0).tolist() if not verdicts[i][2]]
        if unnamed:
            # Many small matches and none worth naming: the strongest are named, as `judge`
            # names them (and by `judge` where none is found).
            at = np.array(unnamed, dtype=np.int64)
            pairs = (owner[at], paper[at])
            strongest = strongest_reasons(
                self.index, self.weights, rows.weights, pairs, self.wording
            )
            for i, reasons in zip(unnamed, strongest, strict=True):
                if reasons:
                    p, value, _ = verdicts[i]
                    verdicts[i] = (p, value, reasons)
                    continue
                r, p = owners[i], verdicts[i][0]
                if r not in judged:
                    judged[r] = self.compiler.held_profile(chunk[r], rows, r)
                value, reasons = judge(judged[r], self.index.texts[p], self.index.hits[p])
                verdicts[i] = (p, value, reasons)
                if not reasons:
                    redo.add(r)
        # Each subscriber's pairs, in order, from where they begin to where they end.
        bounds = np.searchsorted(owner, np.arange(len(chunk) + 1)).tolist()
        for r in np.flatnonzero(np.diff(bounds)).tolist():
            chosen[r] = verdicts[bounds[r] : bounds[r + 1]]
        for r in sorted(redo):
            chosen[r] = self.pick_again(chunk[r], judged[r])

    def pick_again(self, request: Request, profile: Profile) -> list[Match_]:
        """`select`'s matches for one request, paper by paper with `judge`."""
        subscriber, offered, _ = request
        slots = self.allowed[id(offered)][1]
        found = []
        for slot, p in enumerate(slots.tolist()):
            verdict = _verdict(self.index, subscriber, profile, p)
            if verdict is not None:
                found.append((slot, p, *verdict))
        every = self.index.papers
        found.sort(key=lambda c: (-c[2], -every[c[1]].upvotes, every[c[1]].id))
        wanted = max(subscriber.max_papers, 0)
        return [(p, value, reasons) for _, p, value, reasons in found[:wanted]]

    def pick(
        self,
        subscriber: Subscriber,
        profile: Profile,
        wanted: int,
        tolerance: float,
        found: _Candidates,
        i: int,
    ) -> list[tuple[int, float, tuple[str, ...]]]:
        """The `wanted` best of the i-th member's candidates that `judge` passes."""
        start, stop = found.bounds[i], found.bounds[i + 1]
        papers, values, slots = found.papers_list, found.values_list, found.slots_list
        index = self.index
        verdicts: dict[int, tuple[float, tuple[str, ...]] | None] = {}
        judged: list[int] = []
        bar = -np.inf
        passed = 0
        # Best first by the matrix's score: once `wanted` papers pass, a paper scoring
        # less than the last of them (by more than the tolerance) cannot displace any.
        for j in range(start, stop):
            if values[j] < bar:
                break
            p = papers[j]
            if p not in verdicts:
                verdicts[p] = _verdict(index, subscriber, profile, p)
                judged.append(j)
            if verdicts[p] is not None:
                passed += 1
                if passed == wanted:
                    bar = values[j] - tolerance
        # In the order `select` meets them (the offered order), then ranked as it ranks.
        met = judged if found.distinct else range(start, stop)
        picked = [
            (papers[j], *verdict)
            for j in sorted(met, key=slots.__getitem__)
            if (verdict := verdicts.get(papers[j])) is not None
        ]
        every = index.papers
        picked.sort(key=lambda c: (-c[1], -every[c[0]].upvotes, every[c[0]].id))
        return picked[:wanted]


class _Candidates:
    """The pairs of a group of subscribers (offered the same papers) that the matrix
    puts at or above the threshold, row by row, best first (ties in offered order)."""

    def __init__(self, group: Ints, slots: Ints, block: Floats, passing: npt.NDArray[np.bool_]):
        found_rows, found_slots = np.nonzero(passing)
        values = block[found_rows, found_slots]
        order = np.lexsort((-values, found_rows))
        found_rows, found_slots, values = found_rows[order], found_slots[order], values[order]
        self.bounds: list[int] = np.searchsorted(found_rows, np.arange(len(group) + 1)).tolist()
        self.papers_list: list[int] = slots[found_slots].tolist()  # the index's papers
        self.values_list: list[float] = values.tolist()
        self.slots_list: list[int] = found_slots.tolist()  # positions in the offered list
        self.distinct = len(np.unique(slots)) == len(slots)


def dense_product(
    a: sparse.csr_matrix, b: sparse.csr_matrix, *, wide: bool | None = None
) -> Floats:
    """`(a @ b).toarray()`, in one pass instead of two.

    scipy first counts the product's entries to size its arrays, then computes them. A
    batch's scores are nearly all nonzero (every paper shares some common word with
    every description), so the count is known to be at most the dense size: its own
    kernels are called with arrays of that size. The sums are scipy's, in its order.
    Indices are 32-bit where they fit (half the bytes to write and read back), unless
    `wide`.
    """
    rows, columns = a.shape[0], b.shape[1]
    if wide is None:
        wide = max(rows * columns, a.nnz, b.nnz, a.shape[1]) >= np.iinfo(np.int32).max
    index: np.dtype[np.int32 | np.int64] = np.dtype(np.int64 if wide else np.int32)
    indptr = np.empty(rows + 1, dtype=index)
    found = np.empty(rows * columns, dtype=index)
    values = np.empty(rows * columns, dtype=np.float64)
    a_indptr, a_indices = np.asarray(a.indptr, index), np.asarray(a.indices, index)
    b_indptr, b_indices = np.asarray(b.indptr, index), np.asarray(b.indices, index)
    _sparsetools.csr_matmat(
        rows, columns, a_indptr, a_indices, a.data, b_indptr, b_indices, b.data,
        indptr, found, values,
    )  # fmt: skip
    dense = np.zeros((rows, columns), dtype=np.float64)
    # (scipy-stubs types the last argument as indices; it is the dense output)
    _sparsetools.csr_todense(rows, columns, indptr, found, values, dense)  # type: ignore[arg-type]
    return dense


def _entries(matrix: sparse.csr_matrix) -> tuple[tuple[Ints, Ints], Floats]:
    """Where the matrix's stored values are, (rows, columns), and the values."""
    return (owners(np.diff(matrix.indptr)), matrix.indices.astype(np.int64)), matrix.data


def _every(picked: Ints, size: int) -> bool:
    """Whether `picked` is 0, 1, ..., size - 1."""
    return len(picked) == size and bool(np.array_equal(picked, np.arange(size)))


def _verdict(
    index: PaperIndex, subscriber: Subscriber, profile: Profile, p: int
) -> tuple[float, tuple[str, ...]] | None:
    """`select`'s test of one paper: (score, reasons) when it passes, else None."""
    text = index.texts[p]
    if not eligible(subscriber, text.paper):
        return None
    value, reasons = judge(profile, text, index.hits[p])
    return (value, reasons) if value >= profile.threshold and reasons else None
