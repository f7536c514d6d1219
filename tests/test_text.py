"""How titles, abstracts, interests and author names are read (digest.text)."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from digest.analysis import grams
from digest.text import (
    ITEM_WORDS,
    Token,
    _word_stems,
    acronyms,
    clause_pieces,
    clause_terms,
    clauses,
    description_asks,
    fold,
    item_terms,
    keyword_asks,
    name,
    piece_asks,
    same_person,
    tokens,
)


def stems(text: str) -> list[str]:
    return [t.stem for t in tokens(text)]


def test_hyphenated_spaced_and_conjoined_spellings_give_the_same_words() -> None:
    assert stems("vision-language-action") == stems("Vision Language Action")
    assert stems("vision-and-language") == stems("vision and language")
    assert stems("text-to-image") == ["text", "imag"]


def test_stop_words_are_dropped_and_words_are_stemmed() -> None:
    assert stems("The galaxies of the clusters") == ["galaxi", "cluster"]


def test_an_acronym_plural_reads_as_the_acronym() -> None:
    assert stems("AGNs and VLAs") == stems("AGN and VLA") == ["agn", "vla"]


def test_a_mixed_case_name_splits_into_its_words_unless_it_would_fall_apart() -> None:
    assert stems("VideoICL") == ["video", "icl"]
    assert stems("HyperCLIP") == ["hyper", "clip"]
    assert stems("SmolVLMs") == ["smol", "vlm"]
    assert stems("LLaMA") == ["llama"]
    assert stems("CLoVe") == ["clove"]


def test_offsets_point_into_the_text_as_written_and_latex_commands_are_no_words() -> None:
    text = "Çosmic \\emph{Dawn} near Sagittarius-A*"
    assert [text[t.start : t.end] for t in tokens(text)] == [
        "Çosmic",
        "Dawn",
        "near",
        "Sagittarius",
    ]


def test_accents_are_folded_so_spellings_with_and_without_them_meet() -> None:
    assert fold("Núñez Ångström") == "Nunez Angstrom"
    assert stems("matière noire") == stems("matiere noire")


def test_a_phrase_never_runs_across_punctuation() -> None:
    found = {term for length in grams(tokens("dark. Matter halos"), 2) for term in length}
    assert "dark matter" not in found
    assert "matter halo" in found


def test_interests_are_read_clause_by_clause_with_their_written_word_counts() -> None:
    read = clauses("Galaxy evolution with deep surveys: weak lensing, parameter-efficient tuning")
    assert [c.stems for c in read] == [
        ("galaxi", "evolut", "deep", "survey"),
        ("weak", "lens"),
        ("paramet", "effici", "tune"),
    ]
    assert [c.words for c in read] == [5, 2, 2]
    # "evolution with deep": a stop word stands between, so no phrase there.
    assert read[0].joined == (True, False, True)


@pytest.mark.parametrize(
    ("wanted", "author"),
    [
        ("Albert Gu", "A. Gu"),
        ("Albert Gu", "Gu, Albert"),
        ("Albert Gu", "AG Gu"),
        ("José Núñez", "Jose Nunez"),
        ("Jean-Pierre Luminet", "J.-P. Luminet"),
        ("Vincent van Gogh", "van Gogh, V."),
        ("Albert Gu", "Albert Gu Jr."),
    ],
)
def test_the_same_person_is_recognised_however_the_name_is_written(
    wanted: str, author: str
) -> None:
    a, b = name(wanted), name(author)
    assert a is not None and b is not None
    assert same_person(a, b)


@pytest.mark.parametrize(
    ("wanted", "author"),
    [("Albert Gu", "B. Gu"), ("Albert Gu", "Alberta Gu"), ("Albert Gu", "Albert Gunn")],
)
def test_different_people_are_told_apart(wanted: str, author: str) -> None:
    a, b = name(wanted), name(author)
    assert a is not None and b is not None
    assert not same_person(a, b)


def test_a_name_without_letters_is_no_name() -> None:
    assert name("") is None
    assert name(" , ") is None


def test_an_acronym_defined_after_its_long_form_is_found() -> None:
    text = (
        "Active galactic nuclei (AGNs) heat gas; Low-Rank Adaptation (LoRA) helps; "
        "the Square Kilometre Array (SKA), a (b) note, and fast bursts (XYZ)."
    )
    assert acronyms(text, tokens(text)) == {
        "activ galact nuclei": "agn",
        "low rank adapt": "lora",
        "squar kilometr array": "ska",
    }


# What interests ask for, read the way papers are read (`clauses`): keywords, excludes and
# description pieces are read by a faster path that must say exactly the same.


def asked_by_clauses(text: str, item: float, prose: float, part: float) -> list[tuple[str, float]]:
    """The definition: short clauses are list items, longer ones prose with the phrases
    of two or three words written together."""
    adds: list[tuple[str, float]] = []
    for clause in clauses(text):
        stems = clause.stems
        if clause.words <= ITEM_WORDS:
            adds.append((" ".join(stems), item))
            if len(stems) > 1 and part:
                adds += [(word, part * item) for word in stems]
            continue
        adds += [(word, prose) for word in stems]
        for i in range(len(stems)):
            for size in (2, 3):
                run = stems[i : i + size]
                if len(run) < size or not all(clause.joined[i : i + size - 1]):
                    break
                adds.append((" ".join(run), prose))
    return adds


INTEREST_WORDS = st.sampled_from(
    [
        *("galaxy", "galaxies", "dark", "matter", "halo", "language", "models", "vision"),
        *("the", "of", "and", "with", "on", "in", "a", "vs", "e", "g", "i", "don't", "it's"),
        *("GalaxyZoo", "TheGalaxy", "GalaxyOf", "ofThe", "DarkTheMatter", "AGNs", "AGN's", "LLaMA"),
        *("HyperCLIP", "VideoICL", "SmolVLMs", "CoRoT", "eROSITA", "LLMs", "GPT4", "H2O"),
        *("José", "Núñez", "matière", "e\u0301toile", "Ångström", "ﬁeld", "Straße", "İzmir"),
        *("ΛCDM", "star-forming", "x_y", "snake_case", "3D", "2024", "rock'n'roll", "'s"),
        *("\\emph{Dawn}", "\\alpha", '\\"U', "\\(", "\\"),
    ]
)
SEPARATORS = st.sampled_from(
    [
        *(" ", " ", " ", "  ", "-", "/", ", ", ". ", " (", ") ", "\t", "\n", "'", "_"),
        *("\u00a0", "\u2009", "&", " + ", "*", ": ", ";", "?", '"', "[", "}", "\u0301", ""),
        "\u200b",
    ]
)
INTEREST_TEXT = st.lists(st.tuples(INTEREST_WORDS, SEPARATORS), max_size=12).map(
    lambda pairs: "".join(word + sep for word, sep in pairs)
)
ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
WEIGHTS = st.tuples(
    st.sampled_from([1.0, 0.7]), st.sampled_from([0.5, 0.3]), st.sampled_from([0.0, 0.3, 0.25])
)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(INTEREST_TEXT, ANY_TEXT), WEIGHTS)
@example("stars that form in dense gas clouds", (1.0, 0.5, 0.3))
@example("GalaxyZoo TheGalaxy dark-matter halos of AGNs", (1.0, 0.5, 0.3))
@example("the dark matter halo", (1.0, 0.5, 0.3))
@example("stars-that-form in dense-gas DarkTheMatter clouds", (1.0, 0.5, 0.3))
@example("dark GalaxyOf halo HaloOf-ofThe dwarf", (1.0, 0.5, 0.3))
@example("Papers on dark \\alpha matter halos", (1.0, 0.5, 0.3))
@example("  \t ", (1.0, 0.5, 0.3))
def test_interests_ask_for_exactly_what_their_clauses_say(
    text: str, weights: tuple[float, float, float]
) -> None:
    item, prose, part = weights
    assert list(piece_asks(text, item, prose, part)) == asked_by_clauses(text, item, prose, part)
    expected_pieces = [
        a for piece in clause_pieces(text) for a in asked_by_clauses(piece, *weights)
    ]
    assert description_asks(text, item, prose, part) == expected_pieces
    assert clause_terms(text) == tuple(" ".join(c.stems) for c in clauses(text))
    items = tuple(" ".join(c.stems) for c in clauses(text) if c.words <= ITEM_WORDS)
    assert item_terms(text) == items
    adds, joined = keyword_asks(text, item, part)
    expected: list[tuple[str, float]] = []
    for clause in clauses(text):
        expected.append((" ".join(clause.stems), item))
        if len(clause.stems) > 1 and part:
            expected += [(word, part * item) for word in clause.stems]
    assert list(adds) == expected
    assert joined == tuple(" ".join(c.stems) for c in clauses(text) if len(c.stems) > 1)


def test_a_description_reads_as_list_items_and_prose_with_phrases_written_together() -> None:
    asked = dict(piece_asks("weak lensing", 1.0, 0.5, 0.3))
    assert asked == {"weak lens": 1.0, "weak": 0.3, "lens": 0.3}
    prose = [term for term, _ in piece_asks("stars that form in dense gas clouds", 1.0, 0.5, 0.3)]
    assert prose == [
        "star",
        "form",
        "dens",
        "gas",
        "cloud",
        "dens gas",
        "dens gas cloud",
        "gas cloud",
    ]


def reference_tokens(text: str) -> list[tuple[str, int, int, int]]:
    """`tokens` the plain way: word by word, a new clause after any mark since the last
    word (or before the first), each word's parts as `_word_stems` reads them."""
    if "\\" in text:
        text = re.sub(r"\\[A-Za-z]+|\\.", lambda m: " " * len(m.group()), text)
    found = []
    clause = 0
    last = 0
    for match in re.finditer(r"[^\W_]+(?:'[^\W_]+)?", text):
        if re.search(r"[.,;:!?()\[\]{}\"]", text[last : match.start()]):
            clause += 1
        last = match.end()
        for word_stem, offset, past in _word_stems(match.group()):
            found.append((word_stem, match.start() + offset, match.start() + past, clause))
    return found


pieces = [*"aZé μ-'.,;:()\\\"{}_\n", "the ", "AGNs ", "GalaxyZoo", "emph", "don't"]
written = st.lists(st.sampled_from(pieces), max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(written)
@example("(a) b. . c")
@example(". Leading mark")
@example("don't \\emph{stop}: GalaxyZoo's AGNs")
def test_tokens_are_the_words_found_one_by_one_with_their_clauses(text: str) -> None:
    assert [tuple(t) for t in tokens(text)] == reference_tokens(text)
    assert all(type(t) is Token for t in tokens(text))
