"""The matcher's numbers: how much each way of asking weighs, how evidence counts, and the
threshold a paper must reach. Shared by the one-reader path (`digest.profile`,
`digest.match`) and the batch path (`digest.index` and its helpers).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Weights:
    """The matcher's few numbers. None of them knows a topic; they were chosen on the dev
    corpus and checked profile by profile (`benchmarks/relevance.py --tune`)."""

    # How much each way of asking weighs. A keyword names a topic. A short clause of the
    # description ("…: weak lensing, rotation curves") names one too, less deliberately. A word of
    # descriptive prose only gives context. (A description without keywords moves up a
    # rank: `digest.parts.description_weights`.)
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
# Reasons name at most this many matches per field, each worth at least REASON_SHARE of
# the field's strongest one and REASON_FLOOR of the threshold.
MAX_REASON_TERMS = 3
REASON_SHARE = 0.2
REASON_FLOOR = 0.1
