"""One side's reading of a request: the tools a fitted scorer offers for it, per clause when it has several."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fitting import F32, Scorer, Scores
from .openset import OpenSetRule


@dataclass(frozen=True, slots=True)
class FittedModel:
    """A fitted scorer over one embedding side (edge or cloud), for the tools it may score."""

    scorer: Scorer
    threshold: float
    version: int

    def rule(self) -> OpenSetRule:
        return OpenSetRule(self.threshold)


@dataclass(frozen=True, slots=True)
class Choice:
    """The tools a side would offer (``(name, rank score)``), the full ranking, and its confidence.

    ``top`` is the chosen tool's confidence (the scale of the threshold), ``margin`` its lead over the
    runner-up's confidence or the no-tool score, whichever is higher.
    """

    tools: list[tuple[str, float]]
    candidates: list[tuple[str, float]]
    top: float
    margin: float


def read(
    model: FittedModel, whole: F32, clauses: F32 | None, k: int, *, min_margin: float, spread: float
) -> Choice:
    """The tools ``model`` offers for one request (``whole``), per clause when it has several.

    Runners-up are offered with the best tool only when both their rank score and their confidence
    are within ``spread`` of its, and their confidence reaches the threshold: a near tie, not a long
    tail (a head unsure between many tools gives them all similar probabilities).
    """
    rows = np.vstack([whole[None, :], clauses]) if clauses is not None else whole[None, :]
    scores = model.scorer.scores(rows)
    names = model.scorer.tools
    rank, confidence = scores.rank[0], scores.confidence[0]
    order = np.argsort(-rank, kind="stable")
    ranked = [(names[i], float(rank[i])) for i in order]
    top = float(confidence[order[0]])
    negative = float(scores.no_tool[0]) if scores.no_tool is not None else -np.inf
    second = max(float(confidence[order[1]]) if len(order) > 1 else -np.inf, negative)
    margin = max(0.0, top - second) if np.isfinite(second) else 1.0
    chosen: list[tuple[str, float]] = []
    if top >= model.threshold and margin >= min_margin and top > negative:
        best = ranked[0][1]
        chosen = [
            (names[i], float(rank[i]))
            for i in order[:k]
            if confidence[i] >= model.threshold
            and best - rank[i] <= spread
            and abs(top - confidence[i]) <= spread
        ]
    if clauses is not None and len(clauses) > 1:
        per_clause, conf = model.rule().accept(
            Scores(
                scores.rank[1:],
                scores.confidence[1:],
                scores.no_tool[1:] if scores.no_tool is not None else None,
            )
        )
        if all(c >= 0 for c in per_clause) and len({int(c) for c in per_clause}) > 1:
            # Every clause confidently asks for a tool, and not all the same one: one per clause.
            seen: dict[str, float] = {}
            for row, c in enumerate(per_clause, start=1):
                seen.setdefault(names[c], float(scores.rank[row, c]))
            chosen = list(seen.items())[: max(k, 2)]
            top, margin = float(conf.min()), max(margin, min_margin)
    return Choice(chosen, ranked, top, margin)


__all__ = ["Choice", "FittedModel", "read"]
