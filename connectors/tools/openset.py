"""The open-set rule that says "no tool", and how its threshold is chosen.

:class:`OpenSetRule` answers "no tool" when the no-tool score beats the chosen tool's confidence or
that confidence is below a threshold. :func:`choose` picks the threshold that meets a :class:`Target`
(default :data:`DEFAULT_TARGET`: refuse at most 5% of the right answers) on labelled requests, or on
held-out folds of the examples (:func:`held_out_scores`) and of the tools
(:func:`held_out_tool_confidence`), and says what it reaches there (:class:`TradeOff`). Pure numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ...framework.errors import InputError
from .fitting import F32, I64, NO_TOOL, Scores, fit_scorer

FOLDS = 5
F64 = npt.NDArray[np.float64]
TARGET_IN_SCOPE = 0.95
"""Without out-of-scope rows, the threshold keeps this share of the right answers."""

MAX_FALSE_REJECT = 0.05
"""The default target: refuse at most this share of the requests the ranking gets right, measured on
held-out folds of the registry's own examples (so the threshold follows that registry's scores).

Chosen by scripts/tool-routing-rejection-cv on the fit requests of SGD, HWU64 and CLINC150 (and
BANKING77 / SNIPS without tools dropped), with a fifth of the tools unregistered so that out-of-scope
requests include intents the router never saw: the most mean (in-scope accuracy + out-of-scope
recall) / 2 among the rules keeping CLINC150 in scope >= 0.90. The previous rule (out-of-scope
recall >= 0.9 on the folds' no-tool examples) sat at almost no threshold on those folds (CLINC150:
0.945 in scope, 0.31 of unseen-intent requests refused; 0.05 here: 0.905 and 0.63); docs/tool-routing.md."""

OUT_OF_SCOPE_FLOOR = 0.9
"""The previous default: the out-of-scope recall the threshold kept on the rows it was chosen on.

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


@dataclass(frozen=True, slots=True)
class TradeOff:
    """What a threshold reaches on the rows it was chosen on (held-out folds or labelled requests).

    ``in_scope``: requests for a tool answered with the right tool; ``false_reject``: of the in-scope
    requests the ranking got right, the share the threshold refuses; ``out_of_scope_recall``: requests
    for no tool that get "no tool" (None without such rows).
    """

    threshold: float
    in_scope: float
    false_reject: float
    out_of_scope_recall: float | None


@dataclass(frozen=True, slots=True)
class Target:
    """What the threshold is chosen for: exactly one of the three.

    ``max_false_reject``: refuse at most this share of the requests the ranking gets right (the
    default, :data:`MAX_FALSE_REJECT`); ``min_in_scope``: the highest threshold that still answers this
    share of in-scope requests with the right tool (unreachable: answer everything the ranking does);
    ``min_out_of_scope``: the most in-scope accuracy with out-of-scope recall at least this (needs
    no-tool rows; the previous default, 0.9).
    """

    max_false_reject: float | None = None
    min_in_scope: float | None = None
    min_out_of_scope: float | None = None

    def __post_init__(self) -> None:
        given = [
            v for v in (self.max_false_reject, self.min_in_scope, self.min_out_of_scope) if v is not None
        ]
        if len(given) != 1:
            raise ValueError("give exactly one of max_false_reject, min_in_scope, min_out_of_scope")
        if not 0.0 <= given[0] <= 1.0:
            raise ValueError(f"a target is a share between 0 and 1, got {given[0]}")

    def describe(self) -> str:
        if self.max_false_reject is not None:
            return f"max_false_reject={self.max_false_reject:g}"
        if self.min_in_scope is not None:
            return f"min_in_scope={self.min_in_scope:g}"
        return f"min_out_of_scope={self.min_out_of_scope:g}"


DEFAULT_TARGET = Target(max_false_reject=MAX_FALSE_REJECT)


def target_from(
    max_false_reject: float | None = None,
    min_in_scope: float | None = None,
    min_out_of_scope: float | None = None,
) -> Target | None:
    """The :class:`Target` a caller asked for by keyword, or None when none was given."""
    if max_false_reject is None and min_in_scope is None and min_out_of_scope is None:
        return None
    try:
        return Target(max_false_reject, min_in_scope, min_out_of_scope)
    except ValueError as e:
        raise InputError(f"{e} (for example max_false_reject=0.05 or min_in_scope=0.9)") from None


def _curve(
    conf: F32, right: npt.NDArray[np.bool_], in_scope: npt.NDArray[np.bool_]
) -> tuple[F32, F64, F64, F64 | None]:
    """Candidate thresholds (ascending) and, at each, in-scope accuracy, false-reject rate, out-of-scope recall.

    Rows whose best tool lost to the no-tool score carry a sentinel below any score (never a cut).
    """
    candidates = np.unique(conf[conf > -1.5]).astype(np.float32)
    order = np.argsort(conf, kind="stable")
    c_sorted = conf[order]
    start = np.searchsorted(c_sorted, candidates, side="left")
    ok = (right & in_scope)[order].astype(np.int64)
    ok_above = np.concatenate([np.cumsum(ok[::-1])[::-1], [0]])[start]
    n_in, n_ok = max(1, int(in_scope.sum())), max(1, int(ok.sum()))
    accuracy = (ok_above / n_in).astype(np.float64)
    false_reject = (1.0 - ok_above / n_ok).astype(np.float64)
    recall: F64 | None = None
    if (~in_scope).any():
        out = (~in_scope)[order].astype(np.int64)
        recall = (np.concatenate([[0], np.cumsum(out)])[start] / int((~in_scope).sum())).astype(np.float64)
    return candidates, accuracy, false_reject, recall


def choose_threshold(
    conf: F32,
    right: npt.NDArray[np.bool_],
    in_scope: npt.NDArray[np.bool_],
    *,
    floor: float | None = None,
    target: Target | None = None,
) -> float:
    """The confidence threshold that meets ``target`` on these rows (:func:`choose` with its trade-off)."""
    return choose(conf, right, in_scope, floor=floor, target=target).threshold


def choose(
    conf: F32,
    right: npt.NDArray[np.bool_],
    in_scope: npt.NDArray[np.bool_],
    *,
    floor: float | None = None,
    target: Target | None = None,
) -> TradeOff:
    """The threshold meeting ``target`` (default :data:`DEFAULT_TARGET`) and what it reaches on these rows.

    ``conf`` is the chosen tool's confidence (below -1.5 where the no-tool score won), ``right``
    whether that tool is the label. ``floor`` is shorthand for ``Target(min_out_of_scope=floor)``.
    The cut sits midway down to the next lower confidence, not flush against one example.
    """
    if floor is not None:
        target = Target(min_out_of_scope=floor)
    target = target or DEFAULT_TARGET
    candidates, accuracy, false_reject, recall = _curve(conf, right, in_scope)
    if not len(candidates) or not in_scope.any():
        t = float(np.quantile(conf, 0.5)) if len(conf) else 0.5
        return TradeOff(t, 0.0, 0.0, 1.0 if len(conf) else None)
    if target.min_out_of_scope is not None and recall is not None:
        reach = recall >= target.min_out_of_scope - 1e-12
        # Unreachable floor: the most recall, then the most accuracy.
        i = int(np.argmax(np.where(reach, accuracy, recall - 2.0)))
    elif target.min_in_scope is not None:
        ok = np.flatnonzero(accuracy >= target.min_in_scope - 1e-12)
        i = int(ok[-1]) if len(ok) else 0
    else:
        # max_false_reject (and min_out_of_scope without out-of-scope rows: keep 1 - TARGET_IN_SCOPE).
        limit = target.max_false_reject if target.max_false_reject is not None else 1.0 - TARGET_IN_SCOPE
        ok = np.flatnonzero(false_reject <= limit + 1e-12)
        i = int(ok[-1]) if len(ok) else 0
    best_t = float(candidates[i])
    t = (best_t + float(candidates[i - 1])) / 2 if i > 0 else best_t - 1e-3
    return TradeOff(
        t,
        float(accuracy[i]),
        float(false_reject[i]),
        float(recall[i]) if recall is not None else None,
    )


def trade_off_curve(
    conf: F32,
    right: npt.NDArray[np.bool_],
    in_scope: npt.NDArray[np.bool_],
    false_rejects: Sequence[float] = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3),
) -> tuple[TradeOff, ...]:
    """The trade-off at a few false-reject rates: what a caller gives up for out-of-scope recall."""
    if not in_scope.any() or not (conf > -1.5).any():
        return ()
    points: dict[float, TradeOff] = {}
    for f in false_rejects:
        got = choose(conf, right, in_scope, target=Target(max_false_reject=f))
        points.setdefault(got.threshold, got)  # rates that land on one threshold are one point
    return tuple(points.values())


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


def held_out_tool_confidence(
    method: str,
    x: F32,
    labels: Sequence[str],
    keep_in_training: Sequence[bool] | None = None,
    groups: int = FOLDS,
) -> F32:
    """Requests for tools the router does not have, simulated from the registry itself.

    The tools are dealt into ``groups``; each group is left out whole, a scorer is fitted on the rest
    (no-tool examples included) and the left-out tools' examples (not their descriptions) are scored
    against it. Per example: the confidence of the tool it would get (-2 where the no-tool score wins),
    so a threshold can be chosen for out-of-scope requests that look like this registry's, which the
    no-tool examples a user writes seldom do. Empty with fewer than 3 tools.
    """
    keep = np.array(keep_in_training if keep_in_training is not None else [False] * len(labels))
    tools = list(dict.fromkeys(lab for lab in labels if lab != NO_TOOL))
    if len(tools) < 3:
        return np.zeros(0, dtype=np.float32)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(tools))
    group_of = {tools[int(j)]: i % groups for i, j in enumerate(order)}
    lab = np.array(labels, dtype=object)
    out: list[F32] = []
    for g in range(min(groups, len(tools))):
        gone = np.array([group_of.get(str(v), -1) == g for v in lab])
        if gone.all() or not gone.any():
            continue
        scorer = fit_scorer(method, x[~gone], list(lab[~gone]))
        held = gone & ~keep
        best, conf = OpenSetRule(-np.inf).accept(scorer.scores(x[held]))
        out.append(np.where(best < 0, np.float32(-2.0), conf).astype(np.float32))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


__all__ = [
    "DEFAULT_TARGET",
    "MAX_FALSE_REJECT",
    "OUT_OF_SCOPE_FLOOR",
    "OpenSetRule",
    "Target",
    "TradeOff",
    "choose",
    "choose_threshold",
    "held_out_scores",
    "held_out_tool_confidence",
    "target_from",
    "trade_off_curve",
]
