"""Matching many subscribers at once (digest.index) gives exactly what `select` gives.

The papers are real: the relevance corpus and the Hugging Face captures (with authors and
ai_keywords). The subscribers mix the dev profiles with astronomy-style and edge-case
profiles; every comparison is on ids, order, scores and reasons at once (Match equality).
"""

from __future__ import annotations

import datetime as dt
import gc
import importlib.util
import math
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from helpers import corpus_papers, subscriber_for
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse

from digest.analysis import CorpusStats, PaperText, analyse, find_hit
from digest.config import load_subscriber
from digest.errors import ConfigError
from digest.index import Chosen, Request, _Work, dense_product, select_many
from digest.match import Profile, compile_profile, select
from digest.models import Interests, Match, Paper, Subscriber
from digest.postings import INDEXED_PHRASE, PaperIndex
from digest.profile import Compiler
from digest.text import (
    clause_pieces,
    clause_terms,
    description_asks,
    item_terms,
    keyword_asks,
    piece_asks,
)
from digest.weights import WEIGHTS

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
DAY = dt.date(2026, 1, 5)


@pytest.fixture(scope="module")
def store() -> tuple[list[Paper], dict[str, PaperText], CorpusStats]:
    papers = corpus_papers()
    analysed = {p.id: analyse(p) for p in papers}
    return papers, analysed, CorpusStats.from_analysed(analysed.values())


def variety(papers: Sequence[Paper]) -> list[Subscriber]:
    """Subscribers that exercise every part of a profile."""
    with_authors = [p for p in papers if len(p.authors) >= 3]
    first, second = with_authors[0], with_authors[5]
    given, family = first.authors[1].rsplit(" ", 1)
    initials = " ".join(f"{g[0]}." for g in given.split())
    dev = [
        load_subscriber(path)
        for path in sorted((FIXTURES / "corpus" / "dev_profiles").glob("*.toml"))
    ]
    return [
        *dev,
        subscriber_for(
            "phrases", keywords=["video generation", "mixture of experts", "reward model"]
        ),
        subscriber_for(
            "excluding",
            keywords=["diffusion", "image editing"],
            exclude=["video"],
            description="Image synthesis with diffusion models: editing, inpainting.",
        ),
        subscriber_for(
            "author-initials", keywords=["galaxy clusters"], authors=[f"{initials} {family}"]
        ),
        subscriber_for(
            "author-family-first", keywords=["kilonova"], authors=[f"{family}, {given}"]
        ),
        subscriber_for(
            "liked", keywords=["safety"], liked=[papers[3].id, papers[40].id, second.id]
        ),
        subscriber_for("few", keywords=["language model", "reasoning", "agents"], max_papers=2),
        subscriber_for("popular", keywords=["language model", "benchmark"], min_upvotes=20),
        subscriber_for(
            "long-phrase", keywords=["large vision language model evaluation benchmark"]
        ),
        subscriber_for(
            "prose", description="Stars and galaxies: how they form, and what they are made of."
        ),
        subscriber_for(
            "described", description="Videos made by models: video generation, video diffusion."
        ),
        subscriber_for("common-words", keywords=["reasoning", "agents"]),
        subscriber_for("nothing-today", keywords=["kilonova", "exoplanet atmospheres"]),
        subscriber_for(
            "another-language",
            keywords=["modèles de langage", "génération de vidéo"],
            description="Les grands modèles de langage et la génération de vidéo.",
        ),
        subscriber_for(
            # The same words asked by keywords and the description, some twice in a piece.
            "repeated",
            keywords=["video", "video generation", "language model"],
            description="Video models: video generation from video, language model agents.",
            exclude=["large vision language model evaluation benchmark"],
        ),
        subscriber_for(
            # Likes a paper the store does not hold: nothing to widen, still not sent it.
            "liked-elsewhere",
            keywords=["diffusion"],
            liked=["2401.99999", papers[7].id],
        ),
    ]


def one_by_one(
    requests: Sequence[Request], analysed: dict[str, PaperText], stats: CorpusStats
) -> list[list[Match]]:
    return [select(s, papers, stats, liked, analysed=analysed) for s, papers, liked in requests]


def test_matching_everyone_at_once_selects_what_select_selects_for_each(
    store: tuple[list[Paper], dict[str, PaperText], CorpusStats],
) -> None:
    papers, analysed, stats = store
    subscribers = variety(papers)
    liked = [papers[3], papers[40]]
    store_part = papers[:400]
    days = [papers[i : i + 60] for i in range(0, 240, 60)]
    requests: list[Request] = [
        (s, offered, liked) for s in subscribers for offered in (store_part, *days)
    ]
    together = select_many(requests, stats, analysed=analysed, batch=7)
    assert together == one_by_one(requests, analysed, stats)
    assert sum(map(len, together)) > 100
    chosen = {s.slug for (s, _, _), matches in zip(requests, together, strict=True) if matches}
    assert {"phrases", "excluding", "author-initials", "liked", "few"} <= chosen
    assert "nothing-today" not in chosen
    reasons = {r for matches in together for m in matches for r in m.reasons}
    assert any(r.startswith("like ") for r in reasons)
    assert any(r.startswith("author: ") for r in reasons)
    assert {
        "another-language",
        "repeated",
        "liked-elsewhere",
        "described",
        "common-words",
    } <= chosen
    # Every pair has reasons, each naming words found where it says (or an author, a like).
    for matches in together:
        for m in matches:
            assert m.reasons
            text = analysed[m.paper.id]
            for reason in m.reasons:
                where, _, said = reason.partition(": ")
                if where in ("title", "abstract", "keywords"):
                    field = text.fields[where].text
                    flat = " ".join(field.split()).casefold()
                    assert all(part.casefold() in flat for part in said.split(", ")), reason


def test_papers_not_offered_to_a_subscriber_are_not_chosen_for_them(
    store: tuple[list[Paper], dict[str, PaperText], CorpusStats],
) -> None:
    papers, analysed, stats = store
    papers = papers[:300]
    s = subscriber_for("phrases", keywords=["video generation", "video diffusion"])
    everything = select_many([(s, papers, ())], stats, analysed=analysed)[0]
    assert len(everything) >= 3
    best = everything[0].paper
    without = [p for p in papers if p.id != best.id]
    again = select_many([(s, without, ()), (s, papers, ())], stats, analysed=analysed)
    assert best.id not in {m.paper.id for m in again[0]}
    assert again[1] == everything
    assert again[0] == select(s, without, stats, analysed=analysed)


def test_the_index_finds_every_term_as_the_paper_by_paper_look_up_does(
    store: tuple[list[Paper], dict[str, PaperText], CorpusStats],
) -> None:
    papers, analysed, stats = store
    evidence = Profile({}, abstract_length=stats.abstract_length).evidence
    texts = [analysed[p.id] for p in papers[:80]]
    index = PaperIndex(texts, evidence)
    checked = 0
    for p, text in enumerate(texts):
        for term in text.terms(INDEXED_PHRASE) | set(text.acronyms):
            # Longer phrases (some acronyms' long forms) are looked up when first asked for.
            if term.count(" ") >= INDEXED_PHRASE:
                assert index.term(term) is not None
            assert index.hits[p].get(term) == find_hit(text, evidence, term), term
            checked += 1
        # A term the paper does not hold is not indexed for it.
        assert "zzz unheard" not in index.hits[p]
    assert checked > 10_000
    long_forms = [f for t in texts for f in t.acronyms if f.count(" ") >= INDEXED_PHRASE]
    assert long_forms, "the sample should hold an acronym of a long phrase"


def test_a_phrase_longer_than_the_index_holds_is_looked_up_when_asked_for(
    store: tuple[list[Paper], dict[str, PaperText], CorpusStats],
) -> None:
    papers, analysed, stats = store
    papers = papers[:200]
    long_titles = [p for p in papers if len(analysed[p.id].fields["title"].tokens) >= 6]
    title = analysed[long_titles[0].id].fields["title"]
    phrase = title.text[title.tokens[0].start : title.tokens[4].end]
    s = subscriber_for("long", keywords=[phrase])
    matches = select_many([(s, papers, ())], stats, analysed=analysed)[0]
    assert long_titles[0].id in {m.paper.id for m in matches}
    assert matches == select(s, papers, stats, analysed=analysed)


def test_two_worker_processes_give_the_same_matches_as_one(
    store: tuple[list[Paper], dict[str, PaperText], CorpusStats],
) -> None:
    papers, analysed, stats = store
    requests: list[Request] = [(s, papers[:200], ()) for s in variety(papers)]
    alone = select_many(requests, stats, analysed=analysed, batch=4)
    assert select_many(requests, stats, analysed=analysed, batch=4, workers=2) == alone


def test_matching_leaves_the_collector_on_and_what_the_caller_froze_frozen(
    store: tuple[list[Paper], dict[str, PaperText], CorpusStats],
) -> None:
    papers, analysed, stats = store
    requests: list[Request] = [(s, papers[:100], ()) for s in variety(papers)]
    assert gc.isenabled()
    select_many(requests, stats, analysed=analysed)
    assert gc.isenabled()
    kept = [object() for _ in range(3)]  # something of the caller's, frozen by them
    gc.freeze()
    try:
        select_many(requests, stats, analysed=analysed)
        assert gc.isenabled()
        # Frozen objects are in no generation the collector scans.
        assert all(o is not kept for o in gc.get_objects()), "it stays frozen"
    finally:
        gc.unfreeze()
    assert any(o is kept for o in gc.get_objects(generation=2))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_subscriber_asking_for_nothing_stops_the_batch_with_their_file_named(
    store: tuple[list[Paper], dict[str, PaperText], CorpusStats], workers: int
) -> None:
    papers, analysed, stats = store
    fine = subscriber_for("fine", keywords=["diffusion"])
    empty = Subscriber("empty", "empty@example.org", Interests(), path=Path("empty.toml"))
    requests: list[Request] = [(fine, papers[:50], ())] * 6 + [(empty, papers[:50], ())]
    with pytest.raises(ConfigError, match=r"empty\.toml.*nothing to match"):
        select_many(requests, stats, analysed=analysed, batch=2, workers=workers)


def test_a_subscriber_judged_paper_by_paper_gets_what_select_gives(
    store: tuple[list[Paper], dict[str, PaperText], CorpusStats],
) -> None:
    # The way back when `judge` turns down a pair the products chose (no words to name).
    papers, analysed, stats = store
    offered = papers[:200]
    index = PaperIndex(
        [analysed[p.id] for p in offered],
        Profile({}, abstract_length=stats.abstract_length).evidence,
    )
    work = _Work(index, stats, WEIGHTS, {id(offered): (offered, np.arange(len(offered)))})
    liked = [papers[3], papers[40]]
    chosen = 0
    for s in variety(papers):
        request: Request = (s, offered, liked)
        verdicts = [work.pick_again(request, work.compiler.profile(request))]
        again = work.matches(Chosen.of(verdicts))[0]
        assert again == select(s, offered, stats, liked, analysed=analysed), s.slug
        chosen += len(again)
    assert chosen > 20


def test_no_subscribers_means_no_work() -> None:
    assert select_many([], CorpusStats()) == []


# ---------------------------------------------------------------------------------------
# The scale benchmark, run small: it must check itself


def load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "match_scale_benchmark", ROOT / "benchmarks" / "match_scale.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_scale_benchmark_compares_batch_and_naive_paths_and_finds_them_equal() -> None:
    bench = load_benchmark()
    result = bench.run(subscribers=60, papers=100, slice_size=20, workers=1)
    assert result["subscribers"] == 60 and result["papers"] == 100
    assert result["naive_slice"]["same_selections_as_batch"] is True
    assert result["batch"]["selected_total"] > 0
    assert result["peak_rss_mb"]["end"] > 0


def test_the_scale_benchmark_shows_where_the_time_goes_and_puts_the_code_back() -> None:
    bench = load_benchmark()
    before = [getattr(owner, attribute) for owner, attribute, _ in bench.STAGES]
    result = bench.stages(subscribers=60, papers=100)
    spent = result["cpu_seconds_by_stage"]
    assert set(spent) == {"analyse the papers and count terms"} | {s[2] for s in bench.STAGES}
    top_level = [v for k, v in spent.items() if " / " not in k]
    assert all(v >= 0 for v in spent.values())
    assert sum(top_level) <= result["cpu_seconds"] + 0.01
    assert [getattr(owner, attribute) for owner, attribute, _ in bench.STAGES] == before


def test_the_scale_benchmark_makes_up_missing_papers_with_reordered_copies() -> None:
    bench = load_benchmark()
    papers = bench.load_papers(1_200)
    assert len({p.id for p in papers}) == 1_200
    copies = [p for p in papers if "-copy" in p.id]
    assert copies
    original = next(p for p in papers if p.id == copies[0].id.split("-copy")[0])
    assert sorted(copies[0].abstract.split()) == sorted(original.abstract.split())


# ---------------------------------------------------------------------------------------
# Edge cases of choosing, and profiles compiled many at a time


def test_ties_accented_authors_repeated_papers_and_an_empty_day_select_what_select_selects(
    store: tuple[list[Paper], dict[str, PaperText], CorpusStats],
) -> None:
    papers, analysed, stats = store
    accented = next(p for p in papers if any(a == "Hervé Jégou" for a in p.authors))
    ties = subscriber_for("ties", keywords=["video generation", "video"], max_papers=3)
    best = select(ties, papers[:300], stats, analysed=analysed)[0].paper
    # Copies score exactly alike: upvotes, then ids, decide their order and the cut.
    copies = [
        replace(best, id=f"{best.id}-copy{n}", upvotes=best.upvotes + n % 2) for n in range(3)
    ]
    day = [*papers[:300], *copies, accented, papers[0]]  # papers[0] is offered twice
    subscribers = [
        subscriber_for("accents-dropped", keywords=["kilonova"], authors=["Herve Jegou"]),
        subscriber_for("accents-initials", keywords=["self-supervised"], authors=["H. Jégou"]),
        ties,
        subscriber_for("ties-popular", keywords=["video"], max_papers=3, min_upvotes=1),
        subscriber_for("none-wanted", keywords=["video"], max_papers=0),
    ]
    requests: list[Request] = [(s, offered, ()) for s in subscribers for offered in (day, [])]
    together = select_many(requests, stats, analysed=analysed, batch=3)
    assert together == one_by_one(requests, analysed, stats)
    assert select_many(requests, stats, analysed=analysed, batch=2, workers=2) == together
    chosen = dict(zip([s.slug for s, _, _ in requests[::2]], together[::2], strict=True))
    assert chosen["accents-dropped"]
    assert all(m.reasons[-1] == "author: Hervé Jégou" for m in chosen["accents-dropped"])
    assert any("author: Hervé Jégou" in m.reasons for m in chosen["accents-initials"])
    # Four papers tie for three places.
    assert [m.score for m in chosen["ties"]] == [best_score := chosen["ties"][0].score] * 3
    assert best_score == select(ties, [best], stats, analysed=analysed)[0].score
    assert chosen["none-wanted"] == []
    assert all(matches == [] for matches in together[1::2]), "an empty day sends nothing"


def reference_terms(interests: Interests, stats: CorpusStats) -> dict[str, float]:
    """What a profile asks, summed addition by addition in the order written, then
    weighed by IDF: the definition `compile_profile` follows."""
    w = WEIGHTS
    asked: dict[str, float] = {}
    adds = [a for k in interests.keywords for a in keyword_asks(k, w.keyword, w.part)[0]]
    # A description beside keywords gives context; alone, its list items weigh as
    # keywords and its prose as list items.
    item, prose = (
        (w.description_item, w.description)
        if interests.keywords
        else (w.keyword, w.description_item)
    )
    adds += description_asks(interests.description, item, prose, w.part)
    for term, weight in adds:
        asked[term] = asked.get(term, 0.0) + weight
    terms = {term: weight * stats.idf(term) for term, weight in asked.items()}
    # Keywords that are all common single words: every weight raised until the strongest,
    # in a title and once in an abstract (worth 1 + 1), reaches the threshold.
    # (A description alone is read as keywords: its list items are its heads.)
    strongest = 0.0
    heads = [
        (k, keyword_asks(k, w.keyword, w.part)[0], clause_terms(k)) for k in interests.keywords
    ]
    if not interests.keywords:
        heads = [
            (piece, piece_asks(piece, item, prose, w.part), item_terms(piece))
            for piece in clause_pieces(interests.description)
        ]
    for _, adds_of_part, part_heads in heads:
        own: dict[str, float] = {}
        for term, weight in adds_of_part:
            own[term] = own.get(term, 0.0) + weight
        for head in part_heads:
            if " " in head:
                strongest = math.inf  # a keyword phrase in a title is enough on its own
            elif head in own:
                strongest = max(strongest, own[head] * stats.idf(head))
    shown = strongest * (w.title + 1.0)
    if 0.0 < shown < w.threshold:
        terms = {term: weight * (w.threshold / shown) for term, weight in terms.items()}
    return terms


def test_profiles_compiled_many_at_a_time_are_those_compiled_one_by_one(
    store: tuple[list[Paper], dict[str, PaperText], CorpusStats],
) -> None:
    papers, _, stats = store
    bench = load_benchmark()
    drawn = bench.make_subscribers(300, bench.Vocabulary(papers[:200]), seed=3)
    written = [
        # The same terms asked by several keywords and the description, in other orders.
        Interests(
            keywords=("dark matter", "matter", "dark matter halos"),
            description="Dark matter: halos, and the matter around them. Matter, matter.",
        ),
        Interests(keywords=("video",), description="video generation, video, video"),
        Interests(keywords=("language models", "language model"), exclude=("survey",)),
        Interests(description="Video generation: video diffusion, and video from language."),
        Interests(keywords=("reasoning", "video"), description="Agents that reason, on video."),
        Interests(description="Agents, reasoning: planning agents, and video."),
    ]
    compiler = Compiler(stats)
    repeated = 0
    for interests in [*written, *(s.interests for s in drawn)] * 2:
        many = compiler.compile(interests)
        alone = compile_profile(interests, stats)
        assert many == alone
        assert many.terms == reference_terms(interests, stats)
        # The table worked out from the parts is the one the profile would work out.
        fresh = replace(many)
        assert "table" not in fresh.__dict__
        assert many.table == fresh.table
        # Keywords and description pieces asking for the same term: summed across parts.
        parts = [Interests(keywords=(k,)) for k in interests.keywords]
        parts += [Interests(description=p) for p in clause_pieces(interests.description)]
        asked_by = Counter(t for part in parts for t in reference_terms(part, stats))
        repeated += any(n > 1 for n in asked_by.values())
    assert repeated > 100


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(0, 12), st.integers(1, 30), st.integers(0, 9)),
    density=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
    wide=st.sampled_from([None, True]),  # 32-bit indices (as they fit here), or 64
)
def test_the_one_pass_product_is_scipys_product_to_the_last_bit(
    shape: tuple[int, int, int], density: float, seed: int, wide: bool | None
) -> None:
    rows, inner, columns = shape
    rng = np.random.default_rng(seed)
    a = sparse.random(rows, inner, density=density, format="csr", random_state=rng)
    b = sparse.random(inner, columns, density=density, format="csr", random_state=rng)
    a.data *= rng.choice([1e-9, 1.0, 1e9], size=a.nnz)  # sums whose order shows
    for r in range(rows):  # each row's terms in an order of its own, as a profile's are
        span = slice(a.indptr[r], a.indptr[r + 1])
        order = rng.permutation(span.stop - span.start)
        a.indices[span], a.data[span] = a.indices[span][order], a.data[span][order]
    a.has_sorted_indices = False
    expected = (a @ b).toarray()
    found = dense_product(a, b, wide=wide)
    assert found.shape == expected.shape
    assert found.tobytes() == expected.tobytes()
