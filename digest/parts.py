"""Keywords and description pieces, each worked out once per run: what each asks of
which terms (`part_sums`), how a description weighs beside keywords and alone
(`description_weights`), and how strong a profile's keywords are (`strongest_head`,
`keyword_scale`). `digest.profile` builds profiles from parts; `digest.profile_rows`
builds matrix rows from the same parts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Generic, TypeVar

from digest.models import Interests
from digest.text import clause_pieces, clause_terms, item_terms, keyword_asks, piece_asks
from digest.weights import Weights

T = TypeVar("T")

Asks = tuple[tuple[str, float], ...]


def part_sums(adds: Asks) -> dict[str, float]:
    """What a keyword or description piece asks of each term: its additions summed in
    order, from zero. A profile adds these sums up part by part (`digest.profile`), and
    so do the batch path's rows (`digest.profile_rows`): one definition, the same last
    bit."""
    summed = dict(adds)
    if len(summed) == len(adds):
        return summed  # (each term once: 0.0 + weight is the weight)
    summed = {}
    get = summed.get
    for term, weight in adds:
        summed[term] = get(term, 0.0) + weight
    return summed


class Parts(Generic[T]):
    """Each keyword and description piece of a run's subscribers worked out once, by
    `build` from what it asks: its (term, weight) additions, its phrases and its heads
    (a keyword's own terms, or a lone description's list items, for `keyword_scale`).

    Subscribers share keywords, and descriptions share clauses. Most pieces of a
    description are its subscriber's own, though: a piece is kept from the second
    subscriber who writes it on, unless `every_piece` (for a `build` whose parts are
    kept anyway).
    """

    def __init__(
        self,
        weights: Weights,
        build: Callable[[Asks, tuple[str, ...], tuple[str, ...]], T],
        *,
        every_piece: bool = False,
    ) -> None:
        self.weights = weights
        self._build = build
        self._keywords: dict[str, T] = {}
        self._pieces: dict[str, T] = {}
        self._alone: dict[str, T] = {}  # pieces of descriptions without keywords
        self._once: set[tuple[str, bool]] = set()
        self._every_piece = every_piece

    def of(self, interests: Interests) -> list[T]:
        """The parts of the keywords, then of the description's pieces, in order."""
        keywords = self._keywords
        parts = [keywords[k] if k in keywords else self._keyword(k) for k in interests.keywords]
        if interests.description:
            alone = not interests.keywords
            pieces = self._alone if alone else self._pieces
            parts += [
                pieces[p] if p in pieces else self._piece(p, alone)
                for p in clause_pieces(interests.description)
            ]
        return parts

    def _keyword(self, keyword: str) -> T:
        w = self.weights
        adds, phrases = keyword_asks(keyword, w.keyword, w.part)
        part = self._keywords[keyword] = self._build(adds, phrases, clause_terms(keyword))
        return part

    def _piece(self, piece: str, alone: bool) -> T:
        item, prose = description_weights(self.weights, alone=alone)
        # Alone, a description's list items are its keywords: their phrases count as
        # keyword phrases, and they are its heads.
        heads = item_terms(piece) if alone else ()
        phrases = tuple(head for head in heads if " " in head)
        part = self._build(piece_asks(piece, item, prose, self.weights.part), phrases, heads)
        if self._every_piece or (piece, alone) in self._once:
            (self._alone if alone else self._pieces)[piece] = part
        else:
            self._once.add((piece, alone))
        return part


def description_weights(weights: Weights, *, alone: bool) -> tuple[float, float]:
    """What a description's list item and a word of its prose weigh (`piece_asks`).

    Beside keywords, the description gives context. Without them (`alone`) it is the
    subscriber's whole statement of interest, and each way of writing in it moves up a
    rank: a list item weighs as a keyword (and is one: see `Parts`), prose as a list
    item. Otherwise a description-only profile could hardly ever reach the threshold,
    and its reader would get nothing.
    """
    if alone:
        return weights.keyword, weights.description_item
    return weights.description_item, weights.description


def strongest_head(
    summed: Mapping[str, float], heads: Sequence[str], idf: Callable[[str], float]
) -> float:
    """What `keyword_scale` needs of a part: the largest weight of a keyword's `heads`
    (what the part asks of each, `summed`, times its IDF). A keyword phrase is enough
    on its own in a title (`Profile.settles`), so one counts as strong as need be."""
    strongest = 0.0
    for head in heads:
        if " " in head:
            return math.inf
        if head in summed:
            strongest = max(strongest, summed[head] * idf(head))
    return strongest


def keyword_scale(weights: Weights, strongest: float) -> float:
    """What every weight of a profile is multiplied by, given its strongest keyword's.

    The threshold asks for what a rare keyword shows in a title and once in an abstract.
    A profile whose keywords are all common single words ("agents", "video") could never
    show that much, and would get nothing however many papers name them: its weights are
    raised until its strongest keyword, in a title and once in an abstract of average
    length (worth 1 there, whatever the saturation), reaches the threshold. A profile
    with a rarer keyword, or a keyword phrase, keeps its weights: there, a common word
    needs other evidence.
    """
    shown = strongest * (weights.title + 1.0)
    if 0.0 < shown < weights.threshold:
        return weights.threshold / shown
    return 1.0
