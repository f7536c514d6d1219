"""How titles, abstracts, interests and author names are read (digest.text)."""

from __future__ import annotations

import pytest

from digest.text import acronyms, clauses, fold, name, phrases, same_person, tokens


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
    found = {term for term, _, _ in phrases(tokens("dark. Matter halos"), 2)}
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
