"""Semantic high-stakes routes: matching, abstaining, threshold fitting (HashingEmbedder vectors)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeroute.framework.router.policy_files import default_high_stakes_path, load_high_stakes_set
from edgeroute.framework.testing.hashing import HashingEmbedder
from edgeroute.policies.semantic import DISABLED_THRESHOLD, SemanticRoutes, fit_thresholds

EMB = HashingEmbedder(dims=256)
MEDICAL = [
    "maximum daily dose of paracetamol for adults",
    "paracetamol dose for a child per day",
    "ibuprofen dose for adults with kidney disease",
    "safe dose of paracetamol during pregnancy",
]
LEGAL = [
    "deadline to appeal a court judgment",
    "appeal deadline after a court judgment in England",
    "how many days to file an appeal against a judgment",
    "court deadline to respond to a lawsuit",
]
NORMAL = [
    "best pizza recipe with fresh basil",
    "how do tides work on the ocean",
    "capital city of Portugal",
    "fun things to do in Lisbon",
    "how to repot a snake plant",
]


def _routes(**kw: object) -> SemanticRoutes:
    return SemanticRoutes(
        {"medical": EMB.embed_queries(MEDICAL), "legal": EMB.embed_queries(LEGAL)},
        negatives=EMB.embed_queries(NORMAL),
        **kw,
    )


def test_matches_the_nearest_route() -> None:
    routes = _routes(default_threshold=0.2)
    m = routes.match(EMB.embed_queries(["what is the maximum paracetamol dose for a child"])[0])
    assert m.name == "medical" and m.nearest == "medical"
    assert m.score > 0.2 and m.margin > 0
    m = routes.match(EMB.embed_queries(["deadline to appeal the judgment"])[0])
    assert m.name == "legal"


def test_answers_none_when_unsure() -> None:
    routes = _routes(default_threshold=0.2)
    # Nearer to ordinary examples than to any route: the negatives win, so no route.
    m = routes.match(EMB.embed_queries(["fun things to do in Lisbon with kids"])[0])
    assert m.name is None and m.margin < 0
    # Above-threshold but too close to a rival: unsure with a margin floor.
    strict = _routes(default_threshold=0.0, min_margin=1.0)
    assert strict.match(EMB.embed_queries(["paracetamol dose"])[0]).name is None
    # Below threshold: unsure.
    high = _routes(default_threshold=0.99)
    assert high.match(EMB.embed_queries(["paracetamol dose"])[0]).name is None


def test_match_many_equals_match() -> None:
    routes = _routes(default_threshold=0.2)
    vecs = EMB.embed_queries(["paracetamol dose", "capital of Portugal", "appeal deadline"])
    for many, one in zip(routes.match_many(vecs), [routes.match(v) for v in vecs], strict=True):
        assert (many.name, many.nearest) == (one.name, one.nearest)
        assert many.score == pytest.approx(one.score, abs=1e-5)
        assert many.margin == pytest.approx(one.margin, abs=1e-5)


def test_fit_thresholds_separates_a_clear_set() -> None:
    texts = MEDICAL + LEGAL + NORMAL
    labels = ["medical"] * 4 + ["legal"] * 4 + ["normal"] * 5
    fit = fit_thresholds(EMB.embed_queries(texts), labels, min_precision=1.0)
    assert set(fit.thresholds) == {"medical", "legal"}
    for name, stats in fit.stats.items():
        assert not stats.disabled and stats.precision == 1.0 and stats.recall > 0.5, name
        assert -1.0 <= fit.thresholds[name] <= 1.0
    assert fit.overall["precision"] == 1.0 and fit.overall["examples"] == 13
    routes = SemanticRoutes.from_labelled(EMB.embed_queries(texts), labels, thresholds=fit.thresholds)
    assert routes.match(EMB.embed_queries(["paracetamol dose for adults per day"])[0]).name == "medical"
    assert routes.match(EMB.embed_queries(["recipe for pizza with basil"])[0]).name is None


def test_fit_disables_a_route_that_cannot_meet_the_floor() -> None:
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(40, 32)).astype(np.float32)  # noise: no route is separable
    labels = ["noise"] * 20 + ["normal"] * 20
    fit = fit_thresholds(vecs, labels, min_precision=1.0)
    if fit.stats["noise"].disabled:
        assert fit.thresholds["noise"] == DISABLED_THRESHOLD
        routes = SemanticRoutes.from_labelled(vecs, labels, thresholds=fit.thresholds)
        assert all(m.name is None for m in routes.match_many(vecs))
    else:  # a lucky perfect-precision threshold still respects the floor
        assert fit.stats["noise"].precision == 1.0


def test_shipped_high_stakes_set_fits() -> None:
    texts, labels = load_high_stakes_set()
    assert len(texts) >= 120 and default_high_stakes_path().is_file()
    assert {"medical", "legal", "financial", "safety", "normal"} == set(labels)
    fit = fit_thresholds(EMB.embed_queries(texts), labels, min_precision=0.8)
    for stats in fit.stats.values():
        assert stats.disabled or stats.precision >= 0.8


def test_with_thresholds_returns_a_copy() -> None:
    routes = _routes(default_threshold=0.3)
    tighter = routes.with_thresholds({"legal": 0.9})
    assert routes.thresholds["legal"] == 0.3 and tighter.thresholds == {"medical": 0.3, "legal": 0.9}


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: SemanticRoutes({}), "at least one route"),
        (lambda: SemanticRoutes({"a": np.zeros((2, 4))}), "all-zero"),
        (lambda: SemanticRoutes({"a": np.ones((2, 4)), "b": np.ones((2, 5))}), "one dimension"),
        (lambda: SemanticRoutes({"a": np.full((1, 4), np.nan)}), "NaN"),
        (lambda: SemanticRoutes({"a": np.ones((2, 4))}, thresholds={"b": 0.1}), "unknown route"),
        (lambda: SemanticRoutes({"a": np.ones((2, 4))}, top_k=0), "top_k"),
        (lambda: SemanticRoutes({"a": np.ones((2, 4))}).match(np.ones(5)), "5 dims"),
        (lambda: SemanticRoutes({"a": np.ones((2, 4))}).match(np.ones((2, 4))), "match_many"),
        (lambda: fit_thresholds(np.ones((3, 4)), ["a", "a"]), "one label per vector"),
        (lambda: fit_thresholds(np.eye(3), ["normal"] * 3), "no route labels"),
        (lambda: fit_thresholds(np.eye(3), ["a", "normal", "normal"]), "fewer than 2"),
        (lambda: fit_thresholds(np.eye(3), ["a", "a", "normal"], min_precision=2), "min_precision"),
    ],
)
def test_bad_inputs_are_rejected_clearly(call: object, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        call()  # type: ignore[operator]
