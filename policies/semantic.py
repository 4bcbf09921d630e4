"""Semantic routes: is this query like the high-stakes examples, and how sure are we?

Pure math over vectors the caller embeds on-device. A route is a set of example utterance
vectors; a query scores the mean cosine similarity of its ``top_k`` nearest examples per route.
Ordinary ("negative") examples compete too, so a query nearer to ordinary questions than to any
route answers None. A route fires only at or above its own threshold and with at least
``min_margin`` over the best competitor; otherwise :meth:`SemanticRoutes.match` says "unsure"
(``name=None``). :func:`fit_thresholds` picks the thresholds on labelled examples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
NEGATIVE_LABEL = "normal"
DISABLED_THRESHOLD = 2.0
"""A threshold no cosine similarity reaches: the route never fires (its precision floor was not met)."""


def _unit_rows(x: npt.ArrayLike, what: str) -> FloatArray:
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{what} must be a non-empty (n, dims) array, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} contains NaN or infinity; embed the texts again")
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError(f"{what} contains an all-zero vector, which has no direction")
    out: FloatArray = (a / norms).astype(np.float32)
    return out


def _topk_mean(sims: FloatArray, k: int) -> FloatArray:
    """Mean of the k largest values per row (k is clipped to the number of columns)."""
    k = min(k, sims.shape[1])
    part = -np.partition(-sims, k - 1, axis=1)[:, :k]
    out: FloatArray = part.mean(axis=1).astype(np.float32)
    return out


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """``name`` is the matched route or None when unsure; ``nearest`` is the best route regardless."""

    name: str | None
    score: float
    margin: float
    nearest: str | None = None


class SemanticRoutes:
    """Example vectors per route plus per-route thresholds; immutable after construction."""

    def __init__(
        self,
        routes: Mapping[str, npt.ArrayLike],
        *,
        negatives: npt.ArrayLike | None = None,
        thresholds: Mapping[str, float] | None = None,
        default_threshold: float = 0.5,
        min_margin: float = 0.0,
        top_k: int = 3,
    ) -> None:
        if not routes:
            raise ValueError("SemanticRoutes needs at least one route with example vectors")
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        if min_margin < 0:
            raise ValueError(f"min_margin must be >= 0, got {min_margin}")
        self._names = tuple(routes)
        self._examples = {name: _unit_rows(v, f"examples of route {name!r}") for name, v in routes.items()}
        dims = {v.shape[1] for v in self._examples.values()}
        self._negatives = None if negatives is None else _unit_rows(negatives, "negative examples")
        if self._negatives is not None:
            dims.add(self._negatives.shape[1])
        if len(dims) != 1:
            raise ValueError(f"all example vectors must share one dimension, got {sorted(dims)}")
        self.dims = dims.pop()
        thresholds = dict(thresholds or {})
        unknown = sorted(set(thresholds) - set(self._names))
        if unknown:
            raise ValueError(
                f"thresholds given for unknown route(s) {unknown}; routes are {list(self._names)}"
            )
        self.thresholds: dict[str, float] = {
            n: float(thresholds.get(n, default_threshold)) for n in self._names
        }
        self.min_margin = float(min_margin)
        self.top_k = top_k

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    @classmethod
    def from_labelled(
        cls,
        vectors: npt.ArrayLike,
        labels: Sequence[str | None],
        *,
        negative_label: str = NEGATIVE_LABEL,
        **kwargs: object,
    ) -> SemanticRoutes:
        """Group labelled vectors into routes; ``negative_label`` (or None) rows become negatives."""
        vecs, groups, negatives = _group(vectors, labels, negative_label)
        return cls(
            {name: vecs[idx] for name, idx in groups.items()},
            negatives=None if negatives.size == 0 else vecs[negatives],
            **kwargs,  # type: ignore[arg-type]
        )

    def with_thresholds(self, thresholds: Mapping[str, float]) -> SemanticRoutes:
        """A copy with ``thresholds`` replacing the current ones for the routes they name."""
        return SemanticRoutes(
            self._examples,
            negatives=self._negatives,
            thresholds={**self.thresholds, **thresholds},
            min_margin=self.min_margin,
            top_k=self.top_k,
        )

    def scores(self, query_vecs: npt.ArrayLike) -> tuple[FloatArray, FloatArray | None]:
        """``(n, routes)`` route scores and ``(n,)`` negative scores (None without negatives)."""
        q = _unit_rows(query_vecs, "query vectors")
        if q.shape[1] != self.dims:
            raise ValueError(f"query vectors have {q.shape[1]} dims but the route examples have {self.dims}")
        per_route = np.stack([_topk_mean(q @ self._examples[n].T, self.top_k) for n in self._names], axis=1)
        neg = None if self._negatives is None else _topk_mean(q @ self._negatives.T, self.top_k)
        return per_route, neg

    def match_many(self, query_vecs: npt.ArrayLike) -> list[RouteMatch]:
        """:meth:`match` for each row of ``query_vecs``."""
        per_route, neg = self.scores(query_vecs)
        return _decide(per_route, neg, self._names, self.thresholds, self.min_margin)

    def match(self, query_vec: npt.ArrayLike) -> RouteMatch:
        """The route ``query_vec`` belongs to, or ``name=None`` when unsure."""
        q = np.asarray(query_vec, dtype=np.float32)
        if q.ndim != 1:
            raise ValueError(f"match takes one vector of shape (dims,), got {q.shape}; use match_many")
        return self.match_many(q)[0]


def _decide(
    per_route: FloatArray,
    neg: FloatArray | None,
    names: tuple[str, ...],
    thresholds: Mapping[str, float],
    min_margin: float,
) -> list[RouteMatch]:
    out = []
    for i in range(per_route.shape[0]):
        row = per_route[i]
        j = int(np.argmax(row))
        best = float(row[j])
        rivals = [float(v) for k, v in enumerate(row) if k != j]
        if neg is not None:
            rivals.append(float(neg[i]))
        margin = best - max(rivals) if rivals else best + 1.0  # alone: measured against orthogonal-or-worse
        name = names[j]
        sure = best >= thresholds[name] and margin >= min_margin
        out.append(RouteMatch(name if sure else None, best, margin, nearest=name))
    return out


def _group(
    vectors: npt.ArrayLike, labels: Sequence[str | None], negative_label: str
) -> tuple[FloatArray, dict[str, npt.NDArray[np.intp]], npt.NDArray[np.intp]]:
    vecs = _unit_rows(vectors, "labelled vectors")
    if len(labels) != vecs.shape[0]:
        raise ValueError(f"got {vecs.shape[0]} vectors but {len(labels)} labels; give one label per vector")
    names = sorted({lab for lab in labels if lab is not None and lab != negative_label})
    if not names:
        raise ValueError(f"no route labels found: every label is None or {negative_label!r}")
    lab = np.array([negative_label if x is None else x for x in labels], dtype=object)
    groups = {n: np.flatnonzero(lab == n) for n in names}
    return vecs, groups, np.flatnonzero(lab == negative_label)


@dataclass(frozen=True, slots=True)
class RouteFitStats:
    """Leave-one-out figures of one route at its fitted threshold."""

    threshold: float
    precision: float
    recall: float
    f1: float
    support: int
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class ThresholdFit:
    """Fitted per-route thresholds, their per-route stats, and the any-route-vs-normal figures."""

    thresholds: dict[str, float]
    stats: dict[str, RouteFitStats]
    overall: dict[str, float] = field(default_factory=dict)


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def fit_thresholds(
    vectors: npt.ArrayLike,
    labels: Sequence[str | None],
    *,
    min_precision: float = 0.9,
    min_margin: float = 0.0,
    top_k: int = 3,
    negative_label: str = NEGATIVE_LABEL,
) -> ThresholdFit:
    """Pick a similarity threshold per route on labelled examples, leave-one-out.

    Every example is scored against all the others (never itself), exactly as :meth:`SemanticRoutes.match`
    would score a new query. For each route the candidate thresholds are the scores of the examples
    whose nearest route it is; the chosen one maximises F1 among those with precision at least
    ``min_precision``, preferring the higher threshold on ties, and is then placed halfway down to the
    next lower candidate so a new query at the boundary is treated like the examples that set it. A route
    whose precision floor cannot be met gets :data:`DISABLED_THRESHOLD` (it never fires) and
    ``disabled=True``. Labels of None or ``negative_label`` mark ordinary queries.
    """
    if not 0.0 <= min_precision <= 1.0:
        raise ValueError(f"min_precision must lie in [0, 1], got {min_precision}")
    vecs, groups, negatives = _group(vectors, labels, negative_label)
    small = [n for n, idx in groups.items() if idx.size < 2]
    if small:
        raise ValueError(
            f"route(s) {small} have fewer than 2 examples; leave-one-out fitting needs at least 2"
        )
    sims = vecs @ vecs.T
    np.fill_diagonal(sims, -np.inf)
    names = tuple(groups)
    # k shrinks by one so rows inside a group (whose self-similarity is masked) average real neighbours.
    per_route = np.stack(
        [_topk_mean(sims[:, idx], min(top_k, idx.size - 1)) for idx in groups.values()], axis=1
    )
    neg = None
    if negatives.size >= 2:
        neg = _topk_mean(sims[:, negatives], min(top_k, negatives.size - 1))
    open_matches = _decide(per_route, neg, names, dict.fromkeys(names, -np.inf), min_margin)
    truth = [negative_label if x is None else x for x in labels]

    thresholds: dict[str, float] = {}
    stats: dict[str, RouteFitStats] = {}
    for name in names:
        support = int(groups[name].size)
        mine = [(m.score, truth[i] == name) for i, m in enumerate(open_matches) if m.name == name]
        cands = sorted({s for s, _ in mine}, reverse=True)
        best: tuple[float, float, float, float] | None = None  # (f1, threshold, precision, recall)
        for t in cands:
            tp = sum(1 for s, ok in mine if s >= t and ok)
            fp = sum(1 for s, ok in mine if s >= t and not ok)
            p, r, f1 = _prf(tp, fp, support - tp)
            if p >= min_precision and (best is None or f1 > best[0]):
                best = (f1, t, p, r)
        if best is None or best[0] == 0.0:
            thresholds[name] = DISABLED_THRESHOLD
            stats[name] = RouteFitStats(DISABLED_THRESHOLD, 0.0, 0.0, 0.0, support, disabled=True)
            continue
        f1, t, p, r = best
        lower = [c for c in cands if c < t]
        chosen = (t + lower[0]) / 2 if lower else t
        thresholds[name] = float(chosen)
        stats[name] = RouteFitStats(float(chosen), p, r, f1, support)

    fitted = _decide(per_route, neg, names, thresholds, min_margin)
    is_pos = [t != negative_label for t in truth]
    fired = [m.name is not None for m in fitted]
    tp = sum(a and b for a, b in zip(fired, is_pos, strict=True))
    fp = sum(a and not b for a, b in zip(fired, is_pos, strict=True))
    fn = sum(b and not a for a, b in zip(fired, is_pos, strict=True))
    p, r, f1 = _prf(tp, fp, fn)
    overall = {
        "precision": p,
        "recall": r,
        "f1": f1,
        "positives": float(sum(is_pos)),
        "examples": float(len(truth)),
    }
    return ThresholdFit(thresholds=thresholds, stats=stats, overall=overall)


__all__ = [
    "DISABLED_THRESHOLD",
    "NEGATIVE_LABEL",
    "RouteFitStats",
    "RouteMatch",
    "SemanticRoutes",
    "ThresholdFit",
    "fit_thresholds",
]
