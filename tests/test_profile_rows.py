"""Profiles compiled a batch at a time into sparse rows (digest.profile_rows) hold exactly
the numbers of the `Profile` each subscriber compiles to, bit for bit: the batch path's
scores are `judge`'s only if they do."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import compiler_for, corpus_papers, long_phrase, subscriber_for

from digest.analysis import CorpusStats, PaperText, analyse
from digest.errors import ConfigError
from digest.models import Interests, Paper, Subscriber
from digest.profile import compile_for
from digest.profile_rows import Request


@pytest.fixture(scope="module")
def store() -> tuple[list[Paper], list[PaperText], CorpusStats]:
    papers = corpus_papers()[:300]
    texts = [analyse(p) for p in papers]
    return papers, texts, CorpusStats.from_analysed(texts)


def subscribers(papers: list[Paper], texts: list[PaperText]) -> list[Subscriber]:
    return [
        subscriber_for(
            "repeats",
            keywords=["video", "video generation", "language models", "language model"],
            description="Video generation: video, video models. Language models, video.",
            exclude=["survey", "large vision language model evaluation benchmark"],
        ),
        subscriber_for(
            "long-phrases",
            keywords=[long_phrase(texts), "mixture of experts"],
            description=f"{papers[9].title}, and more like it.",
        ),
        subscriber_for("liked", keywords=["reasoning"], liked=[papers[2].id, papers[30].id]),
        subscriber_for("author-only", authors=["Hervé Jégou"]),
        subscriber_for("prose", description="How do large models learn to reason step by step?"),
        subscriber_for("accents", keywords=["modèles de langage"], exclude=["vidéo"]),
    ]


def entries(matrix: object, row: int, names: list[str]) -> dict[str, float]:
    csr = matrix.tocsr()  # type: ignore[attr-defined]
    start, stop = csr.indptr[row], csr.indptr[row + 1]
    found = zip(csr.indices[start:stop], csr.data[start:stop], strict=True)
    return {names[i]: float(v) for i, v in found}


def test_rows_hold_each_profiles_weights_lifts_and_vetoes_exactly(
    store: tuple[list[Paper], list[PaperText], CorpusStats],
) -> None:
    papers, texts, stats = store
    index, compiler = compiler_for(texts, stats)
    liked = [papers[2], papers[30]]
    people = subscribers(papers, texts)
    known = len(index.ids)
    chunk: list[Request] = [(s, papers, liked) for s in people] * 2  # parts known the 2nd time
    rows = compiler.rows(chunk)
    assert rows.profiles.keys() == {2, 8}, "those who like papers keep their Profile"
    checked = 0
    for r, (subscriber, _, _) in enumerate(chunk):
        profile = compile_for(subscriber, stats, liked)
        held = index.ids
        weights = {t: w for t, w in profile.combined if t in held and w != 0}
        assert entries(rows.weights, r, index.names) == weights, subscriber.slug
        lifts = {t: lift for t, lift in profile.settles if t in held and lift != 0}
        assert entries(rows.lifts, r, index.names) == lifts
        assert set(entries(rows.vetoes, r, index.names)) == {
            t for t in profile.exclude if t in held
        }
        assert rows.authors[r] == profile.authors
        # Each row in the terms' sorted order: the order `judge` adds them in.
        ordered = list(entries(rows.weights, r, index.names))
        assert ordered == sorted(ordered)
        checked += len(weights)
    assert checked > 100
    assert any(t.count(" ") >= 3 for t in index.names[known:]), "a long phrase was looked up"


def test_a_term_asked_by_several_parts_is_summed_as_the_profile_sums_it(
    store: tuple[list[Paper], list[PaperText], CorpusStats],
) -> None:
    papers, texts, stats = store
    index, compiler = compiler_for(texts, stats)
    written = [
        Interests(keywords=("model", "language model"), description="Model models: model."),
        Interests(keywords=("video",), description="video generation, video, video"),
        Interests(keywords=("reasoning", "reasoning"), description="reasoning, reasoning tasks"),
    ]
    chunk: list[Request] = [
        (Subscriber(f"s{n}", f"s{n}@example.org", interests), papers, ())
        for n, interests in enumerate(written)
    ]
    rows = compiler.rows(chunk)
    for r, (subscriber, _, _) in enumerate(chunk):
        terms = compile_for(subscriber, stats).terms
        assert entries(rows.weights, r, index.names) == {
            t: w for t, w in terms.items() if t in index.ids
        }


def test_a_subscriber_asking_for_nothing_is_named_in_the_error(
    store: tuple[list[Paper], list[PaperText], CorpusStats],
) -> None:
    papers, texts, stats = store
    _, compiler = compiler_for(texts, stats)
    empty = Subscriber("empty", "e@example.org", Interests(exclude=("x",)), path=Path("e.toml"))
    with pytest.raises(ConfigError, match=r"e\.toml.*nothing to match"):
        compiler.rows(
            [(subscriber_for("fine", keywords=["video"]), papers, ()), (empty, papers, ())]
        )


def test_a_long_phrase_first_asked_by_someone_who_likes_papers_widens_every_matrix(
    store: tuple[list[Paper], list[PaperText], CorpusStats],
) -> None:
    papers, texts, stats = store
    index, compiler = compiler_for(texts, stats)
    phrase = long_phrase(texts)
    likes = subscriber_for("likes", keywords=[phrase], liked=[papers[2].id])
    chunk: list[Request] = [(subscriber_for("plain", keywords=["video"]), papers, ())]
    chunk.append((likes, papers, [papers[2]]))
    known = len(index.ids)
    rows = compiler.rows(chunk)
    assert len(index.ids) > known, "the phrase is new to the index"
    for matrix in (rows.weights, rows.lifts, rows.vetoes, rows.asked):
        assert matrix.shape == (2, len(index.ids))
    profile = compile_for(likes, stats, [papers[2]])
    held = {t: w for t, w in profile.combined if t in index.ids and w != 0}
    assert entries(rows.weights, 1, index.names) == held
    ordered = list(entries(rows.weights, 1, index.names))
    assert ordered == sorted(ordered)
