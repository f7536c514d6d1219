"""Matching many subscribers at once: an inverted index and sparse matrix products.

`select` (digest.match) scores one subscriber against each paper in turn, looking every
profile term up in every paper. For a run of 100,000 subscribers and 1,000 papers that
is 10^8 look-ups. Here the papers are indexed once (term → the papers holding it, with
what each is worth: a `Hit`), every profile becomes a sparse row of term weights, and one
sparse product per batch of subscribers gives every (subscriber, paper) score. Those
scores are only a first cut: each subscriber's best pairs at or near the threshold go
through `judge`, the same final step as `select`, which alone decides the score, the
reasons and whether the paper passes; so the selections, their order and their reasons
are the same as `select`'s. Profiles are compiled by a `digest.match.Compiler` (what
each shared keyword and description clause asks is worked out once per run), and with
`workers` > 1 forked processes take batches in turn until none is left.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import repeat
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from scipy import sparse

from digest.analysis import CorpusStats, PaperText, analyse
from digest.errors import DigestError
from digest.match import eligible, judge
from digest.models import Match, Paper, Subscriber
from digest.postings import INDEXED_PHRASE, PaperIndex
from digest.profile import (
    WEIGHTS,
    Compiler,
    Profile,
    Weights,
    compile_for,
)

if TYPE_CHECKING:
    from multiprocessing.sharedctypes import Synchronized

    # The next batch not yet taken, shared by forked workers.
    Counter = Synchronized[int]

log = logging.getLogger(__name__)

# Subscribers compiled and scored together: bounds the dense block of scores in memory.
BATCH = 2048
# Scores from the matrix product may differ from `judge`'s in the last bits (another
# order of additions): pairs this close below the threshold are judged too.
TOLERANCE = 1e-6

Request = tuple[Subscriber, Sequence[Paper], Sequence[Paper]]
Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class _Rows:
    """A batch of profiles as sparse rows over the index's terms."""

    weights: sparse.csr_matrix  # combined term weights
    lifts: sparse.csr_matrix  # keyword phrases: what a title mention adds
    vetoes: sparse.csr_matrix  # excluded terms


def _rows(index: PaperIndex, profiles: Sequence[Profile]) -> _Rows:
    def lookup(per_profile: Sequence[Iterable[tuple[str, float]]]) -> _Terms:
        terms: list[str] = []
        values: list[float] = []
        sizes = []
        for pairs in per_profile:
            before = len(terms)
            for term, value in pairs:
                terms.append(term)
                values.append(value)
            sizes.append(len(terms) - before)
        found = np.array(list(map(index.ids.get, terms, repeat(-1))), dtype=np.int64)
        for i in np.flatnonzero(found < 0).tolist():
            if terms[i].count(" ") >= INDEXED_PHRASE:
                row = index.term(terms[i])
                found[i] = -1 if row is None else row
        owner = np.repeat(np.arange(len(per_profile), dtype=np.int64), sizes)
        keep = (found >= 0) & (np.array(values, dtype=np.float64) != 0)
        return found[keep], np.array(values, dtype=np.float64)[keep], owner[keep]

    def matrix(found: _Terms) -> sparse.csr_matrix:
        ids, values, owner = found
        indptr = np.zeros(len(profiles) + 1, dtype=np.int64)
        np.cumsum(np.bincount(owner, minlength=len(profiles)), out=indptr[1:])
        return sparse.csr_matrix(
            (values, ids.astype(np.int32), indptr), shape=(len(profiles), len(index.ids))
        )

    # `combined` is sorted; any order serves here (the sums are only a first cut).
    asked = lookup([p.combined if p.liked else p.terms.items() for p in profiles])
    lifts = lookup([p.settles for p in profiles])
    vetoes = lookup([[(t, 1.0) for t in p.exclude] for p in profiles])
    # Built once every term is looked up: each spans all the terms of the index, which
    # long phrases may have grown.
    return _Rows(matrix(asked), matrix(lifts), matrix(vetoes))


_Terms = tuple[npt.NDArray[np.int64], Floats, npt.NDArray[np.int64]]


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
    with _without_gc():
        return _select_many(requests, stats, analysed, weights, batch, workers)


@contextmanager
def _without_gc() -> Iterator[None]:
    """Matching makes millions of small objects and no reference cycles: the cyclic
    collector would only rescan the growing heap, again and again (a quarter of the
    time of a large run). Restored on the way out."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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
    if workers > 1 and len(batches) > 1 and _can_fork():
        chosen = _shared(work, batches, workers)
    else:
        chosen = [m for chunk in batches for m in work.matches(work.run(chunk))]
    log.debug("%d subscribers matched against %d papers", len(requests), len(papers))
    return chosen


Verdicts = list[list[tuple[int, float, tuple[str, ...]]]]


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
        self.compiler = Compiler(stats, weights)

    def matches(self, verdicts: Verdicts) -> list[list[Match]]:
        papers = self.index.papers
        return [[Match(papers[p], value, reasons) for p, value, reasons in v] for v in verdicts]

    def take(
        self, batches: Sequence[Sequence[Request]], counter: Counter
    ) -> Iterator[tuple[int, Verdicts]]:
        """Run the batches nobody has taken yet, one at a time: each process takes the next
        when it is free, so the work splits evenly however busy the machine is."""
        while True:
            with counter.get_lock():
                taken = counter.value
                counter.value = taken + 1
            if taken >= len(batches):
                return
            yield taken, self.run(batches[taken])

    def run(self, chunk: Sequence[Request]) -> Verdicts:
        """The verdicts of one batch of requests."""
        profiles = [
            compile_for(s, self.stats, liked, self.weights, compiler=self.compiler)
            for s, _, liked in chunk
        ]
        rows = _rows(self.index, profiles)
        values, titles, presence = self.index.matrices()
        scores: Floats = (rows.weights @ values).toarray()
        if rows.lifts.nnz:
            scores += (rows.lifts @ titles).toarray()
        if rows.vetoes.nnz:
            scores[(rows.vetoes @ presence).toarray() > 0] = -np.inf
        for r, profile in enumerate(profiles):
            if profile.authors:
                bonus = profile.weights.author * profile.threshold
                for p, count in self.index.author_matches(profile.authors).items():
                    scores[r, p] += bonus * count
        return self.choose(chunk, profiles, scores)

    def choose(
        self, chunk: Sequence[Request], profiles: Sequence[Profile], scores: Floats
    ) -> Verdicts:
        """Each subscriber's matches among the papers offered to them, judged and ranked
        exactly like `select` does. Row r of `scores` holds the matrix's score of every
        paper for chunk[r]: close to `judge`'s, and a first cut only."""
        chosen: Verdicts = [[] for _ in chunk]
        thresholds = np.array([p.threshold for p in profiles], dtype=np.float64)
        # Scores from the matrix product may differ from `judge`'s in the last bits
        # (another order of additions): pairs this close below the threshold are judged.
        tolerances = TOLERANCE * np.maximum(1.0, np.abs(thresholds))
        least = np.array([s.min_upvotes for s, _, _ in chunk], dtype=np.int64)
        groups: dict[int, list[int]] = {}
        for r, (_, offered, _) in enumerate(chunk):
            groups.setdefault(id(offered), []).append(r)
        for key, members in groups.items():
            slots = self.allowed[key][1]
            group = np.array(members, dtype=np.int64)
            block = scores[group[:, None], slots[None, :]]
            passing = (block >= (thresholds - tolerances)[group, None]) & (
                self.upvotes[slots][None, :] >= least[group, None]
            )
            found = _Candidates(group, slots, block, passing)
            wanted = [max(chunk[r][0].max_papers, 0) for r in members]
            for i, r in enumerate(members):
                if wanted[i]:
                    chosen[r] = self.pick(
                        chunk[r][0], profiles[r], wanted[i], tolerances[r], found, i
                    )
        return chosen

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


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def _shared(work: _Work, batches: Sequence[Sequence[Request]], workers: int) -> list[list[Match]]:
    """The batches' matches, in order, from this process and `workers` - 1 forked copies
    of it (the index is shared, not sent), each taking the next batch when free."""
    context = multiprocessing.get_context("fork")
    counter = context.Value("l", 0)
    children = [_start(context, work, batches, counter) for _ in range(workers - 1)]
    try:
        # This process makes its Matches as it goes: the others' wait for their end.
        done = {taken: work.matches(v) for taken, v in work.take(batches, counter)}
        for child in children:
            done.update((taken, work.matches(v)) for taken, v in _finish(child))
        for taken, chunk in enumerate(batches):
            if taken not in done:
                # A worker failed: redo its share here, where an error reaches the caller.
                done[taken] = work.matches(work.run(chunk))
    finally:
        for child in children:
            if child.process.is_alive():
                child.process.terminate()
                child.process.join()
    return [m for taken in range(len(batches)) for m in done[taken]]


@dataclass(frozen=True)
class _Child:
    process: multiprocessing.process.BaseProcess
    results: Connection


def _start(
    context: multiprocessing.context.ForkContext,
    work: _Work,
    batches: Sequence[Sequence[Request]],
    counter: Counter,
) -> _Child:
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(work, batches, counter, send), daemon=True)
    process.start()
    send.close()
    return _Child(process, receive)


def _child(
    work: _Work, batches: Sequence[Sequence[Request]], counter: Counter, send: Connection
) -> None:
    try:
        send.send(list(work.take(batches, counter)))
    except DigestError:
        send.send(None)  # the parent redoes the work and reports it, with its own traceback
    finally:
        send.close()


def _finish(child: _Child) -> list[tuple[int, Verdicts]]:
    """What a worker did: nothing when it failed."""
    try:
        done: list[tuple[int, Verdicts]] | None = child.results.recv()
    except EOFError:
        done = None
    finally:
        child.results.close()
        child.process.join()
    return done or []


def _verdict(
    index: PaperIndex, subscriber: Subscriber, profile: Profile, p: int
) -> tuple[float, tuple[str, ...]] | None:
    """`select`'s test of one paper: (score, reasons) when it passes, else None."""
    text = index.texts[p]
    if not eligible(subscriber, text.paper):
        return None
    value, reasons = judge(profile, text, index.hits[p])
    return (value, reasons) if value >= profile.threshold and reasons else None
