"""Matching many subscribers at once: an inverted index and sparse matrix products.

`select` (digest.match) scores one subscriber against each paper in turn, looking every
profile term up in every paper. For a run of 100,000 subscribers and 1,000 papers that
is 10^8 look-ups. Here the papers are indexed once (term → the papers holding it, with
what each is worth: a `Hit`), every profile becomes a sparse row of term weights, and one
sparse product per batch of subscribers gives every (subscriber, paper) score. Only the
pairs that reach the threshold go through `judge`, the same final step as `select`, so
the selections, their order and their reasons are the same as `select`'s.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection

import numpy as np
import numpy.typing as npt
from scipy import sparse

from digest.analysis import FIELDS, CorpusStats, Evidence, Hit, PaperText, analyse, hit
from digest.errors import DigestError
from digest.match import (
    WEIGHTS,
    Profile,
    Weights,
    compile_for,
    distinctive_terms,
    eligible,
    judge,
)
from digest.models import Match, Paper, Subscriber
from digest.text import Name, same_person

log = logging.getLogger(__name__)

# Phrases of up to this many words are indexed with every paper; a longer one (rare in
# interests) is looked up when a profile asks for it.
INDEXED_PHRASE = 3
# Subscribers compiled and scored together: bounds the dense block of scores in memory.
BATCH = 2048
# Scores from the matrix product may differ from `judge`'s in the last bits (another
# order of additions): pairs this close below the threshold are judged too.
TOLERANCE = 1e-6

Request = tuple[Subscriber, Sequence[Paper], Sequence[Paper]]
Floats = npt.NDArray[np.float64]


class PaperIndex:
    """The papers to score, each term mapped to the papers holding it and their Hits."""

    def __init__(self, texts: Sequence[PaperText], evidence: Evidence) -> None:
        self.texts = list(texts)
        self.papers = [t.paper for t in self.texts]
        self.evidence = evidence
        # Per paper: every term it holds (up to INDEXED_PHRASE words) → its Hit.
        self.hits: list[dict[str, Hit]] = [self._paper_hits(t) for t in self.texts]
        ids: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        values: list[float] = []
        titles: list[float] = []
        for p, found in enumerate(self.hits):
            for term in found:
                if term not in ids:
                    ids[term] = len(ids)
            rows += [ids[term] for term in found]
            cols += [p] * len(found)
            values += [h.value for h in found.values()]
            titles += [0.0 if h.title is None else 1.0 for h in found.values()]
        self.ids = ids
        self._extra: list[tuple[int, int, float, float]] = []
        self._entries = (rows, cols, values, titles)
        self._built = -1
        self._matrices: tuple[sparse.csr_matrix, sparse.csr_matrix, sparse.csr_matrix]
        self._word_papers: dict[str, set[int]] | None = None
        self.families: dict[str, list[tuple[int, Name]]] = {}
        self._followed: dict[tuple[Name, ...], dict[int, int]] = {}
        for p, text in enumerate(self.texts):
            for _, author in text.authors:
                self.families.setdefault(author.family, []).append((p, author))

    def _paper_hits(self, text: PaperText) -> dict[str, Hit]:
        """Every term of up to INDEXED_PHRASE words in the paper, with its Hit: what
        `find_hit` would give, from one pass over the paper's words."""
        # Per term: its first occurrence in title, keywords and abstract, and how many
        # times the abstract holds it.
        seen: dict[str, list[tuple[int, int] | int | None]] = {}
        for slot, f in enumerate(FIELDS):
            toks = text.fields[f].tokens
            stems = [t.stem for t in toks]
            marks = [t.clause for t in toks]
            size = len(toks)
            for i in range(size):
                clause = marks[i]
                term = stems[i]
                for j in range(i, min(i + INDEXED_PHRASE, size)):
                    if j > i:
                        if marks[j] != clause:
                            break
                        term = f"{term} {stems[j]}"
                    entry = seen.get(term)
                    if entry is None:
                        entry = seen[term] = [None, None, None, 0]
                    if entry[slot] is None:
                        entry[slot] = (i, j - i + 1)
                    if slot == 2:
                        entry[3] += 1  # type: ignore[operator]
        found: dict[str, Hit] = {}
        evidence = self.evidence
        b, k = evidence.length_normalisation, evidence.saturation
        length = len(text.fields["abstract"].tokens) / evidence.abstract_length
        for term, (title, keywords, abstract, mentions) in seen.items():
            value = abstract_value = 0.0
            if title is not None:
                value += evidence.title
            if keywords is not None:
                value += evidence.ai_keywords
            if abstract is not None:
                count = mentions / (1 - b + b * length)  # type: ignore[operator]
                abstract_value = count * (k + 1) / (count + k)
                value += abstract_value
            found[term] = Hit(title, keywords, abstract, abstract_value, value)  # type: ignore[arg-type]
        for long_form in text.acronyms:
            words = long_form.split()
            if len(words) <= INDEXED_PHRASE:
                acronym_hit = hit(text, self.evidence, {f: text.find(f, words) for f in FIELDS})
                if acronym_hit is None:
                    found.pop(long_form, None)
                else:
                    found[long_form] = acronym_hit
        return found

    def term(self, term: str) -> int | None:
        """The row of `term`, or None when no paper holds it."""
        known = self.ids.get(term)
        if known is not None:
            return known
        words = term.split()
        if len(words) <= INDEXED_PHRASE:
            return None
        # A long phrase: only papers holding all of its words can hold it.
        holders = [self.word_papers().get(w, set()) for w in words]
        candidates = set.intersection(*sorted(holders, key=len))
        row = None
        for p in sorted(candidates):
            text = self.texts[p]
            found = hit(text, self.evidence, {f: text.find(f, words) for f in FIELDS})
            if found is None:
                continue
            if row is None:
                row = self.ids[term] = len(self.ids)
            self.hits[p][term] = found
            self._extra.append((row, p, found.value, 1.0 if found.title is not None else 0.0))
        return row

    def word_papers(self) -> dict[str, set[int]]:
        """Word → the papers holding it: built when a long phrase is first asked for."""
        if self._word_papers is None:
            self._word_papers = {}
            for p, found in enumerate(self.hits):
                for term in found:
                    if " " not in term:
                        self._word_papers.setdefault(term, set()).add(p)
        return self._word_papers

    def matrices(self) -> tuple[sparse.csr_matrix, sparse.csr_matrix, sparse.csr_matrix]:
        """(value, title, presence): term × paper matrices of Hit.value, of a title
        mention (1.0) and of any mention (1.0)."""
        if self._built != len(self.ids):
            rows, cols, values, titles = self._entries
            extra = self._extra
            r = np.array(rows + [e[0] for e in extra], dtype=np.int32)
            c = np.array(cols + [e[1] for e in extra], dtype=np.int32)
            v = np.array(values + [e[2] for e in extra], dtype=np.float64)
            t = np.array(titles + [e[3] for e in extra], dtype=np.float64)
            shape = (len(self.ids), len(self.texts))
            self._matrices = (
                sparse.csr_matrix((v, (r, c)), shape=shape),
                sparse.csr_matrix((t, (r, c)), shape=shape),
                sparse.csr_matrix((np.ones_like(v), (r, c)), shape=shape),
            )
            self._built = len(self.ids)
        return self._matrices

    def author_matches(self, wanted: Iterable[Name]) -> dict[int, int]:
        """Paper → how many of its authors are among `wanted`."""
        people = tuple(wanted)
        # Remembered: subscribers follow the same people.
        known = self._followed.get(people)
        if known is not None:
            return known
        matched: dict[int, int] = {}
        for family in {n.family for n in people}:
            for p, author in self.families.get(family, ()):
                if any(same_person(w, author) for w in people):
                    matched[p] = matched.get(p, 0) + 1
        self._followed[people] = matched
        return matched


@dataclass(frozen=True)
class _Rows:
    """A batch of profiles as sparse rows over the index's terms."""

    weights: sparse.csr_matrix  # combined term weights
    lifts: sparse.csr_matrix  # keyword phrases: what a title mention adds
    vetoes: sparse.csr_matrix  # excluded terms


def _rows(index: PaperIndex, profiles: Sequence[Profile]) -> _Rows:
    def matrix(per_profile: Sequence[Sequence[tuple[str, float]]]) -> sparse.csr_matrix:
        terms = [term for pairs in per_profile for term, _ in pairs]
        known = index.ids.get
        found = np.array([known(t, -1) for t in terms], dtype=np.int64)
        for i in np.flatnonzero(found < 0).tolist():
            if terms[i].count(" ") >= INDEXED_PHRASE:
                row = index.term(terms[i])
                found[i] = -1 if row is None else row
        values = np.array([v for pairs in per_profile for _, v in pairs], dtype=np.float64)
        owner = np.repeat(np.arange(len(per_profile)), [len(pairs) for pairs in per_profile])
        keep = (found >= 0) & (values != 0)
        indptr = np.zeros(len(per_profile) + 1, dtype=np.int64)
        np.cumsum(np.bincount(owner[keep], minlength=len(per_profile)), out=indptr[1:])
        return sparse.csr_matrix(
            (values[keep], found[keep].astype(np.int32), indptr),
            shape=(len(profiles), len(index.ids)),
        )

    weights = matrix([p.combined for p in profiles])
    lifts = matrix([p.settles for p in profiles])
    vetoes = matrix([[(t, 1.0) for t in p.exclude] for p in profiles])
    # The index may have grown (long phrases): every matrix must span all its terms.
    width = len(index.ids)
    return _Rows(
        *(m if m.shape[1] == width else _widen(m, width) for m in (weights, lifts, vetoes))
    )


def _widen(m: sparse.csr_matrix, width: int) -> sparse.csr_matrix:
    return sparse.csr_matrix((m.data, m.indices, m.indptr), shape=(m.shape[0], width))


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
    allowed: dict[int, tuple[Sequence[Paper], npt.NDArray[np.int64]]] = {}
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
    parts = workers if workers > 1 and len(requests) >= 2 * batch and _can_fork() else 1
    size = -(-len(requests) // parts)
    pieces = [requests[i : i + size] for i in range(0, len(requests), size)]
    children = [_start(work, piece, batch) for piece in pieces[1:]]
    try:
        verdicts = work.run(pieces[0], batch)
        for child, piece in zip(children, pieces[1:], strict=True):
            verdicts += _finish(work, child, piece)
    finally:
        for child in children:
            if child.process.is_alive():
                child.process.terminate()
                child.process.join()
    log.debug("%d subscribers matched against %d papers", len(requests), len(papers))
    return [[Match(texts[p].paper, value, reasons) for p, value, reasons in v] for v in verdicts]


Verdicts = list[list[tuple[int, float, tuple[str, ...]]]]


class _Work:
    """Everything a batch of subscribers is matched with: shared by forked workers."""

    def __init__(
        self,
        index: PaperIndex,
        stats: CorpusStats,
        weights: Weights,
        allowed: Mapping[int, tuple[Sequence[Paper], npt.NDArray[np.int64]]],
    ) -> None:
        self.index = index
        self.stats = stats
        self.weights = weights
        self.allowed = allowed
        self.upvotes = np.array([t.paper.upvotes for t in index.texts], dtype=np.int64)
        self.distinctive: dict[str, dict[str, float]] = {}

    def run(self, requests: Sequence[Request], batch: int) -> Verdicts:
        results: Verdicts = []
        for start in range(0, len(requests), batch):
            chunk = requests[start : start + batch]
            profiles = [self.compile(subscriber, liked) for subscriber, _, liked in chunk]
            rows = _rows(self.index, profiles)
            values, titles, presence = self.index.matrices()
            scores: Floats = (rows.weights @ values).toarray()
            if rows.lifts.nnz:
                scores += (rows.lifts @ titles).toarray()
            if rows.vetoes.nnz:
                scores[(rows.vetoes @ presence).toarray() > 0] = -np.inf
            for r, (subscriber, offered, _) in enumerate(chunk):
                slots = self.allowed[id(offered)][1]
                results.append(
                    _choose(self.index, subscriber, profiles[r], scores[r], slots, self.upvotes)
                )
        return results

    def compile(self, subscriber: Subscriber, liked: Sequence[Paper]) -> Profile:
        for paper in liked:
            if paper.id in subscriber.interests.liked and paper.id not in self.distinctive:
                self.distinctive[paper.id] = distinctive_terms(paper, self.stats, self.weights)
        return compile_for(
            subscriber, self.stats, liked, self.weights, distinctive=self.distinctive
        )


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


@dataclass(frozen=True)
class _Child:
    process: multiprocessing.process.BaseProcess
    results: Connection


def _start(work: _Work, requests: Sequence[Request], batch: int) -> _Child:
    """Match `requests` in a forked copy of this process (the index is shared, not sent)."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(work, requests, batch, send), daemon=True)
    process.start()
    send.close()
    return _Child(process, receive)


def _child(work: _Work, requests: Sequence[Request], batch: int, send: Connection) -> None:
    try:
        send.send(work.run(requests, batch))
    except DigestError:
        send.send(None)  # the parent reports it, with its own traceback
    finally:
        send.close()


def _finish(work: _Work, child: _Child, requests: Sequence[Request]) -> Verdicts:
    try:
        verdicts: Verdicts | None = child.results.recv()
    except EOFError:
        verdicts = None
    finally:
        child.results.close()
        child.process.join()
    if verdicts is None:
        # The worker failed: redo its share here, where an error reaches the caller.
        return work.run(requests, len(requests))
    return verdicts


def _choose(
    index: PaperIndex,
    subscriber: Subscriber,
    profile: Profile,
    row: Floats,
    slots: npt.NDArray[np.int64],
    upvotes: npt.NDArray[np.int64],
) -> list[tuple[int, float, tuple[str, ...]]]:
    """The subscriber's matches among `slots` (the papers offered, in order), judged and
    ranked exactly like `select` does."""
    wanted = max(subscriber.max_papers, 0)
    if not wanted:
        return []
    if profile.authors:
        bonus = profile.weights.author * profile.threshold
        for p, count in index.author_matches(profile.authors).items():
            row[p] += bonus * count
    tolerance = TOLERANCE * max(1.0, abs(profile.threshold))
    values = row[slots]
    (positions,) = np.nonzero(
        (values >= profile.threshold - tolerance) & (upvotes[slots] >= subscriber.min_upvotes)
    )
    # Best first by the matrix's score: once `wanted` papers pass, a paper scoring less
    # than the last of them (by more than the tolerance) cannot displace any.
    verdicts: dict[int, tuple[float, tuple[str, ...]] | None] = {}
    bar = -np.inf
    passed = 0
    for k in positions[np.argsort(-values[positions], kind="stable")].tolist():
        if values[k] < bar:
            break
        p = int(slots[k])
        if p not in verdicts:
            verdicts[p] = _verdict(index, subscriber, profile, p)
        if verdicts[p] is not None:
            passed += 1
            if passed == wanted:
                bar = values[k] - tolerance
    chosen = [
        (p, *verdict)
        for k in positions.tolist()
        if (p := int(slots[k])) in verdicts and (verdict := verdicts[p]) is not None
    ]
    papers = index.papers
    chosen.sort(key=lambda c: (-c[1], -papers[c[0]].upvotes, papers[c[0]].id))
    return chosen[:wanted]


def _verdict(
    index: PaperIndex, subscriber: Subscriber, profile: Profile, p: int
) -> tuple[float, tuple[str, ...]] | None:
    """`select`'s test of one paper: (score, reasons) when it passes, else None."""
    text = index.texts[p]
    if not eligible(subscriber, text.paper):
        return None
    value, reasons = judge(profile, text, index.hits[p])
    return (value, reasons) if value >= profile.threshold and reasons else None
