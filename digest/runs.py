"""Runs of entries held one after another in flat arrays, as CSR matrices hold their rows.

The batch matcher (`digest.index`, `digest.judge_bulk`, `digest.profile_rows`) keeps
many small groups (a profile's terms, a pair's look-ups, a group's candidates) in flat
arrays for numpy to work on at once; these two answers come up again and again there.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Ints = npt.NDArray[np.int64]


def owners(sizes: npt.NDArray[np.integer]) -> Ints:
    """Which run each entry belongs to, for runs of `sizes` entries one after another
    (with `np.diff(indptr)` of a CSR matrix: each stored value's row)."""
    return np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)


def spans(starts: Ints, stops: Ints) -> tuple[Ints, Ints]:
    """The positions from each start to its stop, one run after the other, and where
    each run ends among them."""
    sizes = stops - starts
    ends = np.cumsum(sizes)
    total = int(ends[-1]) if len(ends) else 0
    return np.repeat(starts - ends + sizes, sizes) + np.arange(total), ends
