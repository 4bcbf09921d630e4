"""The open-set rule that says "no tool", and how its threshold is chosen.

:class:`OpenSetRule` answers "no tool" when the no-tool score beats the chosen tool's confidence or
that confidence is below a threshold. :func:`choose_threshold` picks the threshold on labelled
requests, or on held-out folds of the examples (:func:`held_out_scores`): the most in-scope
accuracy that keeps out-of-scope recall at :data:`OUT_OF_SCOPE_FLOOR` on those rows. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .fitting import F32, I64, NO_TOOL, Scores, fit_scorer

FOLDS = 5
TARGET_IN_SCOPE = 0.95
"""Without out-of-scope rows, the threshold keeps this share of the right answers."""

OUT_OF_SCOPE_FLOOR = 0.9
"""The out-of-scope recall the threshold keeps on the rows it is chosen on.

Chosen by 2-fold cross-validation on the fit requests of CLINC150, BANKING77, HWU64, SNIPS and the
shipped set (the threshold chosen on one half, measured on the other; test requests never read):
maximising in-scope accuracy + out-of-scope recall (the old rule) gave CLINC150 0.914 / 0.968
(in-scope accuracy / out-of-scope recall), a floor of 0.85 0.949 / 0.848 and a floor of 0.9
0.939 / 0.896, the only one holding recall >= 0.85 on every set; docs/tool-routing.md."""


@dataclass(frozen=True, slots=True)
class OpenSetRule:
    """Say "no tool" when the no-tool score beats the chosen tool's confidence, or it is below ``threshold``."""

    threshold: float

    def accept(self, scores: Scores) -> tuple[I64, F32]:
        """Per row: the index of the best-ranked tool (-1 for "no tool") and its confidence."""
        best = scores.rank.argmax(axis=1)
        conf = scores.confidence[np.arange(len(best)), best]
        no_tool = scores.no_tool
        beaten = no_tool > conf if no_tool is not None else np.zeros(len(best), dtype=bool)
        chosen = np.where((conf < self.threshold) | beaten, -1, best)
        return chosen.astype(np.int64), conf.astype(np.float32)


def choose_threshold(
    conf: F32,
    right: npt.NDArray[np.bool_],
    in_scope: npt.NDArray[np.bool_],
    *,
    floor: float = OUT_OF_SCOPE_FLOOR,
) -> float:
    """The confidence threshold with the best in-scope accuracy whose out-of-scope recall is >= ``floor``.

    ``conf`` is the chosen tool's confidence (below -1.5 where the no-tool score won), ``right``
    whether that tool is the label. A wrong tool is worse than asking the user, so the out-of-scope
    recall is a floor, not a term traded against accuracy; among thresholds reaching it the lowest
    (most answers) wins. Without out-of-scope rows, keep :data:`TARGET_IN_SCOPE` of the right answers.
    """
    if not in_scope.any():
        return float(np.quantile(conf, 0.5))
    if in_scope.all():
        ok = np.sort(conf[right])
        return float(ok[int((1 - TARGET_IN_SCOPE) * len(ok))]) if len(ok) else 0.5
    # Rows whose best tool lost to the no-tool score carry a sentinel below any score; never a cut.
    candidates = np.unique(conf[conf > -1.5])
    if not len(candidates):
        return 0.0
    n_in, n_out = int(in_scope.sum()), int((~in_scope).sum())
    # For every candidate t (ascending): answered-and-right in scope, and refused out of scope, at conf >= t.
    order = np.argsort(conf, kind="stable")
    c_sorted = conf[order]
    right_in = (right & in_scope)[order].astype(np.int64)
    out = (~in_scope)[order].astype(np.int64)
    start = np.searchsorted(c_sorted, candidates, side="left")
    right_above = np.concatenate([np.cumsum(right_in[::-1])[::-1], [0]])[start]
    refused = np.concatenate([[0], np.cumsum(out)])[start]
    accuracy = right_above / n_in
    recall = refused / n_out
    reach = recall >= floor - 1e-12
    # Unreachable floor: the most recall, then the most accuracy.
    score = np.where(reach, accuracy, recall - 2.0)
    best_t = float(candidates[int(np.argmax(score))])
    # Midway down to the next lower confidence: the cut is not flush against one example.
    below = candidates[candidates < best_t]
    return (best_t + float(below[-1])) / 2 if len(below) else best_t - 1e-3


def _folds(y: I64, k: int, seed: int = 0) -> list[I64]:
    """Stratified folds: each class's examples dealt round-robin after a seeded shuffle."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=np.int64)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        fold[idx] = (np.arange(len(idx)) + rng.integers(k)) % k
    return [np.flatnonzero(fold == f) for f in range(k)]


def held_out_scores(
    method: str, x: F32, labels: Sequence[str], keep_in_training: Sequence[bool] | None = None
) -> tuple[Scores, list[str]]:
    """Scores of each example from a scorer fitted without its fold, and the examples' labels.

    Rows flagged in ``keep_in_training`` (tool descriptions) are never held out. Folds are stratified;
    with fewer than 2 examples of a tool its examples are scored in-sample.
    """
    keep = np.array(keep_in_training if keep_in_training is not None else [False] * len(labels))
    pool = [int(i) for i in np.flatnonzero(~keep)]
    classes = {c: i for i, c in enumerate(dict.fromkeys(labels))}
    y = np.array([classes[labels[i]] for i in pool], dtype=np.int64)
    folds = _folds(y, min(FOLDS, max(2, int(np.bincount(y).max()))))
    tools = tuple(dict.fromkeys(lab for lab in labels if lab != NO_TOOL))
    rank = np.zeros((len(pool), len(tools)), dtype=np.float32)
    confidence = np.zeros((len(pool), len(tools)), dtype=np.float32)
    out_neg = np.zeros(len(pool), dtype=np.float32)
    has_neg = NO_TOOL in classes
    for fold in folds:
        held = [pool[int(f)] for f in fold]
        train = np.ones(len(labels), dtype=bool)
        train[held] = False
        sub = [labels[int(i)] for i in np.flatnonzero(train)]
        if any(t not in sub for t in tools):
            # A tool would lose every example: put its held-out rows back (scored in-sample).
            missing = {t for t in tools if t not in sub}
            train[[i for i in held if labels[i] in missing]] = True
            sub = [labels[int(i)] for i in np.flatnonzero(train)]
        scorer = fit_scorer(method, x[train], sub)
        order = [scorer.tools.index(t) for t in tools]
        got = scorer.scores(x[held])
        rank[fold] = got.rank[:, order]
        confidence[fold] = got.confidence[:, order]
        if has_neg:
            out_neg[fold] = got.no_tool if got.no_tool is not None else -np.inf
    return Scores(rank, confidence, out_neg if has_neg else None), [labels[i] for i in pool]


__all__ = ["OUT_OF_SCOPE_FLOOR", "OpenSetRule", "choose_threshold", "held_out_scores"]
