"""The reasons worked out for many pairs at once (digest.judge_bulk) are `judge`'s own,
word for word, for every pair of subscribers and papers: strongest first, no overlaps,
at most three per field, fields in order."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import corpus_papers, long_phrase, subscriber_for

from digest.analysis import CorpusStats, PaperText, analyse
from digest.judge_bulk import Wording, field_reasons
from digest.match import judge
from digest.models import Paper, Subscriber
from digest.postings import PaperIndex
from digest.profile import WEIGHTS, Compiler, Profile, compile_for
from digest.profile_rows import Request, RowCompiler

FIELD_NAMES = ("title: ", "keywords: ", "abstract: ")


@pytest.fixture(scope="module")
def store() -> tuple[list[Paper], list[PaperText], CorpusStats]:
    papers = corpus_papers()[:250]
    texts = [analyse(p) for p in papers]
    return papers, texts, CorpusStats.from_analysed(texts)


def subscribers(papers: list[Paper], texts: list[PaperText]) -> list[Subscriber]:
    with_authors = next(p for p in papers if len(p.authors) >= 3)
    return [
        subscriber_for("phrases", keywords=["video generation", "mixture of experts", "agents"]),
        subscriber_for(
            "many-words",
            keywords=["language model", "reasoning", "benchmark", "reinforcement learning"],
            description="Reasoning in large language models: chain of thought, math, code.",
        ),
        subscriber_for("long", keywords=[long_phrase(texts)], description=papers[3].title),
        subscriber_for(
            "prose", description="Models that see, read and act; how they learn from feedback."
        ),
        subscriber_for("follows", keywords=["diffusion"], authors=[with_authors.authors[1]]),
        subscriber_for("titles", keywords=[p.title for p in papers[20:24]]),
    ]


def test_every_pairs_field_reasons_are_those_judge_gives(
    store: tuple[list[Paper], list[PaperText], CorpusStats],
) -> None:
    papers, texts, stats = store
    index = PaperIndex(texts, Profile({}, abstract_length=stats.abstract_length).evidence)
    compiler = RowCompiler(index, stats, WEIGHTS, Compiler(stats, WEIGHTS))
    people = subscribers(papers, texts)
    chunk: list[Request] = [(s, papers, ()) for s in people]
    rows = compiler.rows(chunk)
    every = np.arange(len(papers), dtype=np.int64)
    owners = np.repeat(np.arange(len(people), dtype=np.int64), len(papers))
    wording: Wording = {}
    named = field_reasons(
        index, WEIGHTS, rows.asked, rows.phrase, (owners, np.tile(every, len(people))), wording
    )
    compared = several = fallbacks = 0
    for k, said in enumerate(named):
        r, p = divmod(k, len(papers))
        total, reasons = judge(compile_for(people[r], stats), texts[p], index.hits[p])
        by_field = [x for x in reasons if x.startswith(FIELD_NAMES)]
        if said:
            assert list(said) == by_field, (people[r].slug, papers[p].id)
            compared += 1
            several += any(", " in x for x in said)
        elif total > 0 and not any(x.startswith("author: ") for x in reasons):
            # Nothing worth naming on its own: `judge` names the strongest (the caller asks it).
            assert len(by_field) <= 1
            fallbacks += bool(by_field)
        else:
            assert by_field == []
    assert compared > 200 and several > 10 and fallbacks > 10
    # Asked again (the wording remembered), the same reasons.
    again = field_reasons(
        index, WEIGHTS, rows.asked, rows.phrase, (owners, np.tile(every, len(people))), wording
    )
    assert again == named


def test_no_pairs_no_reasons(store: tuple[list[Paper], list[PaperText], CorpusStats]) -> None:
    papers, texts, stats = store
    index = PaperIndex(texts[:5], Profile({}, abstract_length=stats.abstract_length).evidence)
    compiler = RowCompiler(index, stats, WEIGHTS, Compiler(stats, WEIGHTS))
    rows = compiler.rows([(subscriber_for("a", keywords=["video"]), papers[:5], ())])
    nothing = np.zeros(0, dtype=np.int64)
    assert field_reasons(index, WEIGHTS, rows.asked, rows.phrase, (nothing, nothing), {}) == []
