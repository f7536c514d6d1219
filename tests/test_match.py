"""Matching papers to interests (digest.match): scores, reasons, selection, `digest rank`.

Synthetic papers are about astronomy on purpose: nothing in the matcher may know the
topics of the dev corpus, and these tests would show it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.util
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from helpers import subscriber_for

from digest.errors import ConfigError, UsageError
from digest.match import (
    WEIGHTS,
    CorpusStats,
    analyse,
    compile_profile,
    rank_file,
    score,
    select,
)
from digest.models import Interests, Match, Paper, Subscriber
from digest.sources.huggingface import parse_api
from digest.text import clause_pieces, clauses

DAY = dt.date(2026, 1, 5)
ROOT = Path(__file__).resolve().parent.parent

# Filler papers on other topics: they give the IDF a store to count in.
FILLER = [
    ("Exoplanet atmospheres", "transmission spectra of hot Jupiters observed in the infrared"),
    ("Solar flares", "magnetic reconnection drives eruptions in the solar corona"),
    ("Stellar spectra", "abundances of metal-poor stars from high-resolution spectroscopy"),
    ("Supernova light curves", "type Ia explosions as standard candles for distances"),
    ("Radio telescope arrays", "interferometry with long baselines sharpens radio images"),
    ("Cosmic ray showers", "air showers detected by ground arrays of particle counters"),
    ("Asteroid families", "orbital elements cluster after collisions in the main belt"),
    ("Pulsar timing", "millisecond pulsars keep time across decades of observation"),
    ("Protoplanetary disks", "dust rings and gaps imaged around young stars"),
    ("Globular clusters", "ages of old stellar populations from colour magnitude diagrams"),
    ("Cosmic microwave background", "temperature anisotropies constrain inflation models"),
    ("Neutron star mergers", "kilonova emission follows the merger of compact objects"),
    ("Interstellar medium", "molecular clouds collapse into dense cores and filaments"),
    ("Black hole accretion", "thin disks radiate as gas spirals inward"),
    ("Comet tails", "sublimation of ices releases gas near perihelion"),
    ("Galaxy rotation curves", "stars orbit faster than visible mass predicts in spirals"),
    ("Variable stars", "Cepheid pulsation periods relate to luminosity"),
    ("Planetary rings", "particles in rings collide and spread over time"),
    ("Star formation rates", "ultraviolet light traces young massive stars in galaxies"),
    ("Brown dwarfs", "objects between planets and stars cool over billions of years"),
    ("Meteor showers", "debris streams meet the atmosphere each year"),
    ("Binary stars", "eclipses reveal masses and radii of stellar pairs"),
    ("Quasar spectra", "absorption lines trace intergalactic hydrogen"),
    ("Lunar craters", "impact records date the surface of the moon"),
    ("Telescope optics", "adaptive mirrors correct atmospheric turbulence in real time"),
    ("Galactic archaeology", "chemical tagging recovers dispersed birth clusters"),
    ("Cosmic distance ladder", "parallax anchors the scale of the universe"),
    ("White dwarf cooling", "crystallisation slows the fading of stellar remnants"),
    ("Radio frequency interference", "mitigating radio-frequency interference at observatories"),
    ("Active galactic nuclei", "bright nuclei outshine their host galaxies across the spectrum"),
]


def paper(
    paper_id: str,
    title: str,
    abstract: str,
    *,
    authors: Sequence[str] = (),
    upvotes: int = 0,
    ai_keywords: Sequence[str] = (),
) -> Paper:
    return Paper(
        id=paper_id,
        title=title,
        abstract=abstract,
        day=DAY,
        source="test",
        url=f"https://example.org/{paper_id}",
        authors=tuple(authors),
        upvotes=upvotes,
        ai_keywords=tuple(ai_keywords),
    )


def filler() -> list[Paper]:
    return [
        paper(f"filler-{i:02d}", title, f"We study {abstract}. Observations agree with models.")
        for i, (title, abstract) in enumerate(FILLER)
    ]


DARK_MATTER = paper(
    "2601.00001",
    "Dark matter halos mapped by gravitational lensing",
    "We measure dark matter in galaxy clusters. The dark matter profiles follow from "
    "gravitational lensing of background galaxies, and dark matter dominates the mass.",
)
SCATTERED = paper(
    "2601.00002",
    "A dark sky site for measuring stellar matter",
    "Dark skies help. We weigh the matter in stars; dark nights and cold matter are common.",
)
LENSING = Subscriber(
    slug="ada",
    email="ada@example.org",
    interests=Interests(keywords=("dark matter", "gravitational lensing")),
)


def selected(matches: Sequence[Match]) -> list[str]:
    return [m.paper.id for m in matches]


def stats_with(*papers: Paper) -> CorpusStats:
    return CorpusStats.from_papers([*filler(), *papers])


# ---------------------------------------------------------------------------------------
# Phrases, spellings, languages


def test_a_keyword_phrase_matches_its_words_in_a_row_not_scattered() -> None:
    papers = [DARK_MATTER, SCATTERED]
    matches = select(LENSING, papers, stats_with(*papers))
    assert selected(matches) == ["2601.00001"]
    assert "title: Dark matter" in matches[0].reasons[0]
    scattered_score, reasons = score(compile_profile(LENSING.interests, stats_with()), SCATTERED)
    assert not any("dark matter" in r.casefold() for r in reasons)
    assert scattered_score < score(compile_profile(LENSING.interests, stats_with()), DARK_MATTER)[0]


def test_a_keyword_phrase_in_a_title_is_enough_however_common_it_is() -> None:
    common = [
        paper(f"2601.0004{i}", f"Survey {i}", "Gravitational lensing and galaxies. " * 2)
        for i in range(8)
    ]
    titled = paper("2601.00050", "Gravitational lensing of distant quasars", "Quasars shine.")
    one_word = paper("2601.00051", "Lensing of distant quasars", "Quasars shine.")
    papers = [titled, one_word]
    who = subscriber_for(keywords=["gravitational lensing", "lensing"])
    matches = select(who, papers, stats_with(*common, *papers))
    assert selected(matches) == ["2601.00050"]
    assert matches[0].reasons == ("title: Gravitational lensing",)


def test_hyphenated_spaced_and_plural_acronym_spellings_match_each_other() -> None:
    hyphen = paper(
        "2601.00003",
        "Radio frequency interference flagged by neural networks",
        "Radio frequency interference corrupts data; we flag radio frequency interference "
        "with a network.",
    )
    acronym = paper(
        "2601.00004",
        "Feedback from AGNs in dwarf galaxies",
        "AGN feedback quenches dwarf galaxies; the AGNs heat the gas.",
    )
    papers = [hyphen, acronym]
    who = subscriber_for(keywords=["radio-frequency interference", "AGN"])
    matches = select(who, papers, stats_with(*papers))
    assert sorted(selected(matches)) == ["2601.00003", "2601.00004"]
    by_id = {m.paper.id: m.reasons for m in matches}
    assert "title: Radio frequency interference" in by_id["2601.00003"]
    assert "title: AGNs" in by_id["2601.00004"]


def test_an_acronym_the_paper_defines_counts_as_its_long_form() -> None:
    abstract = (
        "Radio frequency interference{} ruins low-frequency surveys. We flag RFI with a "
        "network and recover RFI-free spectra."
    )
    defined = paper("2601.00020", "Flagging RFI", abstract.format(" (RFI)"))
    undefined = paper("2601.00021", "Flagging RFI", abstract.format(""))
    who = subscriber_for(keywords=["radio-frequency interference"])
    profile = compile_profile(who.interests, stats_with(defined))
    defined_score, reasons = score(profile, defined)
    assert defined_score > score(profile, undefined)[0]
    assert reasons[0] == "title: RFI"


@pytest.mark.parametrize(
    ("keywords", "description", "title", "abstract"),
    [
        (
            ["Dunkle Materie", "Gravitationslinsen"],
            "Dunkle Materie in Galaxienhaufen, gemessen mit Gravitationslinsen.",
            "Dunkle Materie in Galaxienhaufen",
            "Wir messen Dunkle Materie mit Gravitationslinsen in Galaxienhaufen.",
        ),
        (
            ["matière noire", "lentilles gravitationnelles"],
            "La matière noire des amas de galaxies, mesurée par lentilles gravitationnelles.",
            "La matiere noire des amas de galaxies",
            "Nous mesurons la matière noire par lentilles gravitationnelles dans les amas.",
        ),
    ],
)
def test_a_profile_in_another_language_matches_on_its_words(
    keywords: list[str], description: str, title: str, abstract: str
) -> None:
    target = paper("2601.00005", title, abstract)
    papers = [target, DARK_MATTER, SCATTERED]
    who = subscriber_for(keywords=keywords, description=description)
    matches = select(who, papers, stats_with(*papers))
    assert selected(matches) == ["2601.00005"]


# ---------------------------------------------------------------------------------------
# Exclude, authors, liked papers


def test_an_excluded_word_vetoes_an_otherwise_strong_match() -> None:
    clusters = paper(
        "2601.00006",
        "Dark matter in galaxy clusters from gravitational lensing",
        "Gravitational lensing weighs dark matter in galaxy clusters with simulations.",
    )
    papers = [DARK_MATTER, clusters]
    stats = stats_with(*papers)
    assert sorted(selected(select(LENSING, papers, stats))) == ["2601.00001", "2601.00006"]
    who = subscriber_for(keywords=["dark matter", "gravitational lensing"], exclude=["simulations"])
    assert selected(select(who, papers, stats)) == ["2601.00001"]
    assert score(compile_profile(who.interests, stats), clusters) == (0.0, ())


def test_authors_match_despite_initials_accents_and_family_name_first() -> None:
    unrelated = "We study orbital resonances of small moons. Observations agree with models."
    papers = [
        paper("2601.00007", "Moons in resonance", unrelated, authors=["J. Nunez", "K. Lee"]),
        paper("2601.00008", "Moons out of resonance", unrelated, authors=["Gu, Albert"]),
        paper("2601.00009", "Moons near resonance", unrelated, authors=["B. Gu", "José Nuño"]),
    ]
    who = subscriber_for(keywords=["exoplanet atmospheres"], authors=["José Núñez", "Albert Gu"])
    matches = select(who, papers, stats_with(*papers))
    assert selected(matches) == ["2601.00007", "2601.00008"]
    assert matches[0].reasons == ("author: J. Nunez",)
    assert matches[1].reasons == ("author: Gu, Albert",)


def test_a_liked_paper_widens_the_profile_to_papers_like_it() -> None:
    liked = paper(
        "2401.00001",
        "Magnetars as the engines of repeating fast radio bursts",
        "Repeating fast radio bursts trace magnetars: burst energetics, polarisation and "
        "rotation measures of the bursts point to young magnetars in dwarf galaxies.",
    )
    similar = paper(
        "2601.00010",
        "Polarisation of repeating fast radio bursts from young magnetars",
        "We measure the polarisation and rotation measures of repeating fast radio bursts "
        "and find magnetars in star-forming dwarf galaxies behind them.",
    )
    papers = [similar, DARK_MATTER, liked]
    stats = stats_with(*papers)
    who = subscriber_for(keywords=["solar flares"], liked=["2401.00001"])
    assert selected(select(who, papers, stats)) == []
    matches = select(who, papers, stats, [liked])
    assert selected(matches) == ["2601.00010"]  # the liked paper itself is not sent again
    assert "like 2401.00001" in matches[0].reasons


def test_a_liked_paper_weighs_what_the_profiles_own_weights_say() -> None:
    liked = paper(
        "2401.00001",
        "Magnetars as the engines of repeating fast radio bursts",
        "Repeating fast radio bursts trace magnetars in dwarf galaxies.",
    )
    other = paper("2401.00002", "Fast radio bursts from magnetars", "Magnetars and bursts.")
    stats = stats_with(liked, other, DARK_MATTER)
    interests = Interests(keywords=("solar flares",), liked=("2401.00001",))
    default = compile_profile(interests, stats, [liked])
    doubled = compile_profile(
        interests, stats, [liked], dataclasses.replace(WEIGHTS, liked_budget=4.0)
    )
    budget = sum(default.liked["2401.00001"].values())
    assert budget > 0
    assert sum(doubled.liked["2401.00001"].values()) == pytest.approx(2 * budget)


# ---------------------------------------------------------------------------------------
# Selection


def test_a_quiet_day_with_nothing_on_topic_selects_nothing() -> None:
    day = filler()[:12]
    assert select(LENSING, day, stats_with(DARK_MATTER)) == []


def test_a_description_without_keywords_is_the_whole_interest_and_selects_on_its_own() -> None:
    papers = [DARK_MATTER, SCATTERED, *filler()[:10]]
    stats = stats_with(*papers)
    described = "Dark matter halos, gravitational lensing of galaxy clusters."
    alone = subscriber_for(description=described)
    matches = select(alone, papers, stats)
    assert selected(matches) == ["2601.00001"]
    assert_reasons_are_true(matches[0])
    # Beside keywords the same description only gives context: it weighs less there.
    beside = compile_profile(Interests(keywords=("pulsar timing",), description=described), stats)
    own = compile_profile(Interests(description=described), stats)
    shared = set(own.terms) & set(beside.terms)
    assert shared and all(own.terms[t] > beside.terms[t] for t in shared)


def test_a_profile_of_one_common_word_still_gets_the_papers_named_for_it() -> None:
    """A fifth of the store is about "agents": the word is common, so on its own it
    could never show the evidence of a rare keyword. Its titles still get through."""
    named = [
        paper(f"2601.001{i:02d}", f"Agents that plan {topic}", f"We build agents for {topic}.")
        for i, topic in enumerate(["trips", "meals", "code", "proofs", "games", "lessons"])
    ]
    passing = [
        paper(f"2601.002{i:02d}", f"Learning {topic}", f"Agents appear once here, for {topic}.")
        for i, topic in enumerate(["to sort", "to count"])
    ]
    papers = [*named, *passing, *filler()]
    stats = stats_with(*papers)
    who = subscriber_for(keywords=["agents"], max_papers=20)
    matches = select(who, papers, stats)
    assert sorted(selected(matches)) == sorted(p.id for p in named)
    for match in matches:
        assert_reasons_are_true(match)
    # A description of list items alone is read as keywords: the same papers.
    listed = subscriber_for(description="Agents.", max_papers=20)
    assert select(listed, papers, stats) == matches
    # Beside a rare keyword, the common one needs other evidence, as before.
    rarer = subscriber_for(keywords=["agents", "kilonova"], max_papers=20)
    assert select(rarer, papers, stats) == []


def test_interests_that_ask_for_nothing_are_rejected_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="nothing to match"):
        compile_profile(Interests(), stats_with())
    with pytest.raises(ValueError, match="nothing to match"):
        compile_profile(Interests(description="The and of, it."), stats_with())
    empty = Subscriber(
        slug="ada", email="ada@example.org", interests=Interests(), path=Path("ada.toml")
    )
    with pytest.raises(ConfigError, match=r"ada\.toml.*interests.*nothing to match"):
        select(empty, [DARK_MATTER], stats_with())


def test_max_papers_keeps_only_the_best() -> None:
    papers = [
        paper(
            f"2601.001{i:02d}",
            f"Dark matter halos, study {i}",
            "Dark matter halos from gravitational lensing. " * (1 + i % 3),
        )
        for i in range(6)
    ]
    stats = stats_with(*papers)
    everything = select(LENSING, papers, stats)
    assert len(everything) == 6
    capped = select(
        subscriber_for(keywords=["dark matter", "gravitational lensing"], max_papers=2),
        papers,
        stats,
    )
    assert capped == everything[:2]
    assert [m.score for m in everything] == sorted((m.score for m in everything), reverse=True)


def test_min_upvotes_drops_papers_with_fewer_votes() -> None:
    popular = paper("2601.00011", DARK_MATTER.title, DARK_MATTER.abstract, upvotes=12)
    quiet = paper("2601.00012", DARK_MATTER.title, DARK_MATTER.abstract, upvotes=3)
    papers = [popular, quiet]
    who = subscriber_for(keywords=["dark matter"], min_upvotes=5)
    assert selected(select(who, papers, stats_with(*papers))) == ["2601.00011"]


def test_equal_scores_go_to_more_upvotes_then_the_smaller_id() -> None:
    papers = [
        paper(pid, DARK_MATTER.title, DARK_MATTER.abstract, upvotes=votes)
        for pid, votes in [("2601.00013", 1), ("2601.00015", 7), ("2601.00014", 1)]
    ]
    matches = select(LENSING, papers, stats_with(*papers))
    assert len({m.score for m in matches}) == 1
    assert selected(matches) == ["2601.00015", "2601.00013", "2601.00014"]


def test_ai_keywords_count_as_evidence_and_are_named() -> None:
    bare = paper("2601.00016", "Halo shapes", "Halo shapes constrain dark matter models.")
    tagged = paper(
        "2601.00017",
        "Halo shapes",
        "Halo shapes constrain dark matter models.",
        ai_keywords=["dark matter", "halo shapes"],
    )
    profile = compile_profile(LENSING.interests, stats_with(bare))
    bare_score, _ = score(profile, bare)
    tagged_score, reasons = score(profile, tagged)
    assert tagged_score > bare_score
    assert "keywords: dark matter" in reasons


def test_analysing_papers_once_for_all_subscribers_changes_nothing() -> None:
    papers = [DARK_MATTER, SCATTERED, *filler()]
    stats = stats_with(*papers)
    analysed = {p.id: analyse(p) for p in papers}
    assert select(LENSING, papers, stats, analysed=analysed) == select(LENSING, papers, stats)


def test_idf_starts_from_a_prior_and_follows_the_store_as_it_grows() -> None:
    empty = CorpusStats()
    assert empty.idf("galaxi") == empty.idf("dark matter") > 0
    stats = stats_with(DARK_MATTER)
    assert stats.documents == len(FILLER) + 1
    assert stats.idf("dark matter") > stats.idf("observ") > 0  # "Observations" in every filler
    bigger = CorpusStats.from_papers([*filler(), DARK_MATTER, *filler()[:5]])  # ids repeat
    assert bigger.documents == stats.documents
    # Phrases seen once are not kept, and count as seen once.
    assert stats.idf("quasar spectra") == stats.idf("never seen") < stats.idf("never")


# ---------------------------------------------------------------------------------------
# Reasons


def assert_reasons_are_true(match: Match, liked: Sequence[str] = ()) -> None:
    fields = {
        "title": match.paper.title,
        "abstract": match.paper.abstract,
        "keywords": ". ".join(match.paper.ai_keywords),
    }
    assert match.reasons, f"{match.paper.id} selected without a reason"
    for reason in match.reasons:
        if reason.startswith("like "):
            assert reason.removeprefix("like ") in liked
            continue
        where, _, said = reason.partition(": ")
        if where == "author":
            assert said in match.paper.authors
            continue
        text = " ".join(fields[where].split()).casefold()
        for words in said.split(", "):
            assert words.casefold() in text, (reason, fields[where])


def test_every_reason_names_words_found_in_the_field_it_names() -> None:
    by_author = paper("2601.00018", "Moons", "Small moons.", authors=["K. Lee", "A. Gu"])
    papers = [DARK_MATTER, SCATTERED, by_author, *filler()]
    who = subscriber_for(
        keywords=["dark matter", "radio-frequency interference"],
        description="Dark matter and galaxy clusters: lensing, rotation curves.",
        authors=["Albert Gu"],
    )
    matches = select(who, papers, stats_with(*papers))
    assert len(matches) >= 3
    for match in matches:
        assert_reasons_are_true(match)


def test_a_reason_shows_a_phrase_broken_over_lines_on_one_line() -> None:
    wrapped = paper(
        "2601.00019",
        "Dark\n  matter halos",
        "Dark matter\nhalos, dark matter cores and dark\nmatter cusps.",
    )
    _, reasons = score(compile_profile(LENSING.interests, stats_with(wrapped)), wrapped)
    assert reasons[0] == "title: Dark matter"
    assert "abstract: Dark matter" in reasons


# ---------------------------------------------------------------------------------------
# `digest rank`


def write_rank_inputs(tmp_path: Path, papers: Sequence[dict[str, object]]) -> tuple[Path, Path]:
    profile = tmp_path / "ada.toml"
    profile.write_text(
        'email = "ada@example.org"\nmax_papers = 2\n\n[interests]\n'
        'keywords = ["dark matter", "gravitational lensing"]\n',
        encoding="utf-8",
    )
    jsonl = tmp_path / "papers.jsonl"
    jsonl.write_text("".join(json.dumps(p) + "\n" for p in papers), encoding="utf-8")
    return profile, jsonl


def test_rank_file_returns_what_the_digest_would_include_best_first(tmp_path: Path) -> None:
    more = " Gravitational lensing again: dark matter."
    papers: list[dict[str, object]] = [
        {
            "id": f"2601.002{i}",
            "title": f"Dark matter halos {i}",
            "abstract": DARK_MATTER.abstract + (more if i == 2 else ""),
        }
        for i in range(3)
    ]
    papers += [
        {
            "id": "2601.00030",
            "title": SCATTERED.title,
            "abstract": SCATTERED.abstract,
            "authors": ["A. Astronomer"],
            "upvotes": 4,
        },
    ]
    papers += [{"id": p.id, "title": p.title, "abstract": p.abstract} for p in filler()]
    result = rank_file(*write_rank_inputs(tmp_path, papers))
    assert [r["id"] for r in result] == ["2601.0022", "2601.0020"]  # max_papers = 2
    for row in result:
        assert set(row) == {"id", "score", "reasons"}
        assert isinstance(row["score"], float) and row["score"] == round(row["score"], 4)
        assert isinstance(row["reasons"], list) and row["reasons"]
        assert all(isinstance(r, str) for r in row["reasons"])
    scores = [float(str(r["score"])) for r in result]
    assert scores == sorted(scores, reverse=True)
    json.dumps(result)  # printable as it is


@pytest.mark.parametrize(
    ("keyword", "expected"),
    [
        ("video generation", "2501.08316"),  # "…for One-Step Video Generation"
        ("line art colorization", "2501.08332"),  # "MangaNinja: Line Art Colorization…"
        ("hallucinations", "2501.08292"),  # one word, in the title and the abstract
    ],
)
def test_rank_file_on_one_real_day_selects_the_paper_with_the_keyword_in_its_title(
    tmp_path: Path, keyword: str, expected: str
) -> None:
    """A day's JSONL is a store of ten papers: IDF from so few must still let a title
    that names the subscriber's topic through, and nothing else."""
    capture = ROOT / "tests" / "fixtures" / "hf" / "api" / "daily_papers_date_2025-01-15.json"
    papers = parse_api(capture.read_bytes(), day=dt.date(2025, 1, 15))
    assert len(papers) == 10
    rows = [
        {"id": p.id, "title": p.title, "abstract": p.abstract, "authors": list(p.authors)}
        for p in papers
    ]
    profile, jsonl = write_rank_inputs(tmp_path, rows)
    profile.write_text(
        f'email = "ada@example.org"\n\n[interests]\nkeywords = ["{keyword}"]\n', encoding="utf-8"
    )
    result = rank_file(profile, jsonl)
    assert [r["id"] for r in result] == [expected]
    reasons = result[0]["reasons"]
    assert isinstance(reasons, list) and any(r.startswith("title: ") for r in reasons)


def test_rank_file_names_the_line_of_a_broken_paper(tmp_path: Path) -> None:
    good: dict[str, object] = {"id": "2601.00031", "title": "Dark matter", "abstract": "x"}
    profile, jsonl = write_rank_inputs(tmp_path, [good])
    jsonl.write_text(json.dumps(good) + '\n{"id": "2601.00032", "title": 5}\n', encoding="utf-8")
    with pytest.raises(UsageError, match=r"papers\.jsonl, line 2: 'title' must be a string"):
        rank_file(profile, jsonl)
    jsonl.write_text("{not json\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"line 1: not JSON"):
        rank_file(profile, jsonl)


# ---------------------------------------------------------------------------------------
# The dev corpus: a regression guard, computed here by the benchmark's own code


def load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "relevance_benchmark", ROOT / "benchmarks" / "relevance.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dev_results() -> tuple[ModuleType, dict[str, dict[str, object]], Any]:
    bench = load_benchmark()
    corpus = bench.load_corpus(ROOT / "tests" / "fixtures" / "corpus")
    ours = bench.Ours(corpus)
    return bench, bench.run(corpus, ours=ours), ours


def test_regression_guard_dev_corpus_relevance_stays_at_the_level_reached(
    dev_results: tuple[ModuleType, dict[str, dict[str, object]], Any],
) -> None:
    bench, results, _ = dev_results
    ours = results["ours"]
    # Reached when this was written: F1 0.856, nDCG@10 0.887 (targets were 0.85 and 0.95).
    assert bench.mean(ours, "f1") >= 0.85
    assert bench.mean(ours, "ndcg") >= 0.88
    assert bench.mean(ours, "f1") > bench.mean(results["baseline"], "f1") + 0.15
    assert bench.mean(ours, "ndcg") > bench.mean(results["baseline"], "ndcg") + 0.1


def test_dev_profiles_stripped_of_their_keywords_still_find_their_papers(
    dev_results: tuple[ModuleType, dict[str, dict[str, object]], Any],
) -> None:
    """A subscriber may write only a description. The dev profiles' descriptions name
    their topics too: without the keywords, they must still select most of what is on
    topic (F1 0.668 when written; 0.146 while a description only gave context)."""
    bench, results, _ = dev_results
    bare = results["ours_no_keywords"]
    assert bench.mean(bare, "f1") >= 0.6
    assert all(r.selected for r in bare.values())


def test_the_benchmark_reproduces_the_published_keyword_baseline(
    dev_results: tuple[ModuleType, dict[str, dict[str, object]], Any],
) -> None:
    """DESIGN.md gives the keyword baseline as F1 0.64, nDCG@10 0.74: the metric code that
    reproduces it is the metric code of the definition."""
    bench, results, _ = dev_results
    assert bench.mean(results["baseline"], "f1") == pytest.approx(0.64, abs=0.01)
    assert bench.mean(results["baseline"], "ndcg") == pytest.approx(0.74, abs=0.01)


def test_every_paper_selected_on_the_dev_corpus_has_true_reasons(
    dev_results: tuple[ModuleType, dict[str, dict[str, object]], Any],
) -> None:
    bench, _, ours = dev_results
    corpus = bench.load_corpus(ROOT / "tests" / "fixtures" / "corpus")
    count = 0
    for who in corpus.subscribers.values():
        for day in corpus.days:
            papers = [corpus.papers[i] for i in day]
            for match in select(who, papers, ours.stats, analysed=ours.analysed):
                assert_reasons_are_true(match)
                count += 1
    assert count > 30


@pytest.mark.parametrize(
    "description",
    [
        "Weak lensing, rotation curves; star-forming dwarf-galaxies (in clusters): MOND!",
        'Radio-frequency interference (RFI) in "single dish" data. And pulsars?',
        "Spectra with \\emph{JWST}, \\(z > 6\\) galaxies, and lensing",
        "  ,, leading marks; trailing ones ..  ",
    ],
)
def test_a_description_read_piece_by_piece_gives_the_clauses_of_the_whole(
    description: str,
) -> None:
    # Profiles read each piece between clause marks once for all subscribers sharing it.
    whole = clauses(description)
    assert whole
    assert [c for piece in clause_pieces(description) for c in clauses(piece)] == whole


def test_a_profile_compiled_twice_from_shared_keywords_is_the_same_profile() -> None:
    stats = CorpusStats.from_papers(
        [
            Paper("1", "Weak lensing of dwarf galaxies", "Weak lensing maps.", DAY, "t", ""),
            Paper("2", "Rotation curves", "Dwarf galaxies rotate, weak lensing.", DAY, "t", ""),
        ]
    )
    interests = Interests(
        description="Galaxies: weak lensing, dwarf galaxies. Also how rotation curves flatten.",
        keywords=("weak lensing", "dwarf galaxies", "weak lensing"),
        exclude=("rotation curves",),
    )
    first = compile_profile(interests, stats)
    again = compile_profile(interests, stats)
    assert first == again
    # Repeated asks add up: the keyword written twice weighs twice its single weight.
    single = compile_profile(Interests(keywords=("weak lensing",)), stats).terms["weak lens"]
    assert first.terms["weak lens"] > 2 * single
    assert first.exclude == ("rotat curv",)
    assert first.phrases == {"weak lens", "dwarf galaxi"}
