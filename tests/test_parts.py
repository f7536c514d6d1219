import math

from digest.models import Interests
from digest.parts import (
    Asks,
    Parts,
    description_weights,
    keyword_scale,
    part_sums,
    strongest_head,
)
from digest.weights import WEIGHTS


def test_a_part_asking_a_term_again_adds_it_up_in_order_and_keeps_where_it_was_first() -> None:
    once = (("dark matter", 2.0), ("dark", 0.1), ("matter", 0.1))
    assert list(part_sums(once).items()) == list(once)
    again = (("halo", 0.1), ("dark", 0.3), ("halo", 0.2), ("halo", 0.7))
    assert list(part_sums(again).items()) == [("halo", 0.1 + 0.2 + 0.7), ("dark", 0.3)]
    assert part_sums(again)["halo"] != 0.1 + (0.2 + 0.7)  # in order, not in any order


def test_a_keyword_phrase_is_strong_enough_whatever_its_words_weigh() -> None:
    summed = {"dark matter": 1.0, "dark": 0.35, "matter": 0.35}
    assert strongest_head(summed, ("dark matter",), lambda term: 0.5) == math.inf


def test_the_strongest_head_is_its_asked_weight_times_its_idf() -> None:
    summed = {"agent": 1.0, "plan": 2.0, "tool": 1.0}
    idf = {"agent": 1.5, "plan": 0.5, "tool": 3.0}.__getitem__
    assert strongest_head(summed, ("agent", "plan"), idf) == 1.5
    assert strongest_head(summed, ("unasked",), idf) == 0.0
    assert strongest_head(summed, (), idf) == 0.0


def test_only_a_profile_too_weak_to_reach_the_threshold_is_weighed_up() -> None:
    w = WEIGHTS
    # In a title and once in an abstract of average length: (title + 1) times the weight.
    enough = w.threshold / (w.title + 1.0)
    assert keyword_scale(w, enough) == 1.0
    assert keyword_scale(w, 2 * enough) == 1.0
    assert keyword_scale(w, math.inf) == 1.0
    assert keyword_scale(w, 0.0) == 1.0  # no keyword at all: nothing to weigh up
    half = keyword_scale(w, enough / 2)
    assert half == 2.0
    assert (enough / 2) * half * (w.title + 1.0) == w.threshold


def test_a_description_weighs_as_keywords_only_where_it_stands_alone() -> None:
    built: list[tuple[Asks, tuple[str, ...], tuple[str, ...]]] = []

    def build(adds: Asks, phrases: tuple[str, ...], heads: tuple[str, ...]) -> int:
        built.append((adds, phrases, heads))
        return len(built) - 1

    parts = Parts(WEIGHTS, build, every_piece=True)
    described = "Dark matter halos, lensing."
    alone = parts.of(Interests(description=described))
    beside = parts.of(Interests(keywords=("pulsars",), description=described))
    assert parts.of(Interests(description=described)) == alone  # kept, not read again
    item, _ = description_weights(WEIGHTS, alone=True)
    context, _ = description_weights(WEIGHTS, alone=False)
    assert (item, context) == (WEIGHTS.keyword, WEIGHTS.description_item)
    adds, phrases, heads = built[alone[0]]
    assert adds[0] == ("dark matter halo", item) and phrases == ("dark matter halo",)
    assert heads == ("dark matter halo",)
    adds, phrases, heads = built[beside[1]]
    assert adds[0] == ("dark matter halo", context) and phrases == () and heads == ()
