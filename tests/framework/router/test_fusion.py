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
