"""Reciprocal Rank Fusion: the formula, weights, duplicate merging, and bad arguments."""

from __future__ import annotations

import pytest

from edgeroute.framework.documents import Hit
from edgeroute.framework.errors import InputError
from edgeroute.framework.router.fusion import rrf_fuse


def hits(side: str, *ids: str) -> list[Hit]:
    return [Hit(i, f"text {i}", 1.0 - r / 10, r, side, f"{side}-space") for r, i in enumerate(ids, start=1)]


def test_scores_follow_the_rrf_formula_with_k_60() -> None:
    fused = rrf_fuse({"edge": hits("edge", "a", "b"), "cloud": hits("cloud", "b", "c")})
    by_id = {h.id: h for h in fused}
    assert by_id["b"].score == pytest.approx(1 / 62 + 1 / 61)
    assert by_id["a"].score == pytest.approx(1 / 61)
    assert [h.id for h in fused] == ["b", "a", "c"]
    assert [h.rank for h in fused] == [1, 2, 3]


def test_duplicates_merge_into_one_hybrid_hit_naming_both_spaces() -> None:
    fused = rrf_fuse({"edge": hits("edge", "a", "b"), "cloud": hits("cloud", "b")})
    b = next(h for h in fused if h.id == "b")
    assert b.index == "hybrid" and b.space == "edge-space+cloud-space"
    a = next(h for h in fused if h.id == "a")
    assert a.index == "edge" and a.space == "edge-space"
    assert len({h.id for h in fused}) == len(fused)


def test_weights_shift_the_order_and_limit_truncates() -> None:
    lists = {"edge": hits("edge", "a", "x"), "cloud": hits("cloud", "c", "y")}
    assert rrf_fuse(lists, weights={"cloud": 2.0}, limit=1)[0].id == "c"
    assert rrf_fuse(lists, weights={"edge": 2.0}, limit=1)[0].id == "a"
    assert len(rrf_fuse(lists, limit=3)) == 3


def test_a_list_repeating_a_document_counts_it_once_at_its_best_rank() -> None:
    fused = rrf_fuse({"edge": hits("edge", "a", "a", "b")})
    assert [h.id for h in fused] == ["a", "b"]
    assert fused[0].score == pytest.approx(1 / 61)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 0}, "RRF k must be a positive integer"),
        ({"weights": {"web": 1.0}}, "unknown source"),
        ({"weights": {"edge": -1.0}}, "non-negative"),
        ({"limit": 0}, "limit must be a positive integer"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InputError, match=match):
        rrf_fuse({"edge": hits("edge", "a"), "cloud": []}, **kwargs)


# -- eligibility: documents a list could not contain are not punished for missing from it -------------


def test_plain_rrf_halves_an_edge_only_document_eligibility_does_not() -> None:
    # "memo" is confidential: the best edge match, never in the cloud index (the 5th of 5).
    edge = hits("edge", "memo", "a", "b", "c", "d")
    cloud = hits("cloud", "a", "b", "c", "d")
    plain = rrf_fuse({"edge": edge, "cloud": cloud})
    assert [h.id for h in plain][-1] == "memo"
    fair = rrf_fuse({"edge": edge, "cloud": cloud}, eligible={"cloud": {"a", "b", "c", "d"}})
    assert fair[0].id == "memo"
    assert fair[0].score == pytest.approx(2 / 61)  # as if it held rank 1 in both lists
    by_id = {h.id: h.score for h in fair}
    assert by_id["a"] == pytest.approx(1 / 62 + 1 / 61)  # eligible everywhere: plain RRF, unchanged


def test_an_eligible_document_missing_from_a_list_still_loses_that_share() -> None:
    edge = hits("edge", "x", "y")
    cloud = hits("cloud", "y")
    fused = rrf_fuse({"edge": edge, "cloud": cloud}, eligible={"cloud": {"x", "y"}})
    by_id = {h.id: h.score for h in fused}
    assert by_id["x"] == pytest.approx(1 / 61)  # in the cloud index, not in its list: genuinely ranked low
    assert by_id["y"] == pytest.approx(1 / 62 + 1 / 61)


def test_eligibility_normalises_by_the_weights_of_the_eligible_lists() -> None:
    edge = hits("edge", "p", "q")
    cloud = hits("cloud", "q")
    fused = rrf_fuse({"edge": edge, "cloud": cloud}, weights={"cloud": 3.0}, eligible={"cloud": {"q"}})
    by_id = {h.id: h.score for h in fused}
    assert by_id["p"] == pytest.approx(1 / 61 * (1.0 + 3.0) / 1.0)
    assert by_id["q"] == pytest.approx(1 / 62 + 3 / 61)


def test_a_document_found_by_a_list_is_eligible_for_it_whatever_the_mapping_says() -> None:
    fused = rrf_fuse({"edge": hits("edge", "a"), "cloud": hits("cloud", "a")}, eligible={"cloud": set()})
    assert fused[0].score == pytest.approx(2 / 61)


def test_eligibility_for_an_unknown_source_is_refused() -> None:
    with pytest.raises(InputError, match="eligibility"):
        rrf_fuse({"edge": hits("edge", "a")}, eligible={"cloud": {"a"}})


def test_without_eligibility_the_scores_are_plain_rrf() -> None:
    lists = {"edge": hits("edge", "a", "b"), "cloud": hits("cloud", "b", "c")}
    assert rrf_fuse(lists) == rrf_fuse(lists, eligible={})
