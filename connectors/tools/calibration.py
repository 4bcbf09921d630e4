"""Fit one side's scorer and choose its "no tool" threshold on this registry's own score distribution.

With labelled requests the threshold is chosen on them (held out from the examples). Without, it is
chosen on **held-out folds of the registered examples** and no-tool examples (:func:`~.openset.
held_out_scores`): every example is scored by a scorer that never saw it, so the threshold fits how
this registry's requests score, long overlapping plugin descriptions or short intents alike. The
threshold meets a :class:`~.openset.Target` (default: refuse at most 5% of the requests the ranking
gets right) and the fit reports what it reaches there, with the trade-off curve. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ...framework.errors import InputError
from .fitting import F32, NO_TOOL, Scorer, fit_scorer
from .openset import (
    DEFAULT_TARGET,
    OpenSetRule,
    Target,
    TradeOff,
    choose,
    held_out_scores,
    held_out_tool_confidence,
    trade_off_curve,
)

UNSEEN_TOOLS = True
"""Calibrating on folds, also leave tools out whole and count their examples as out-of-scope rows."""

UNSEEN_METHOD = "nearest"
"""The scorer of the tools-left-out rows (no head fit: they only estimate out-of-scope recall)."""


@dataclass(frozen=True, slots=True)
class Calibrated:
    """A fitted scorer, its threshold, and what the threshold reaches on the rows it was chosen on."""

    scorer: Scorer
    threshold: float
    accuracy: float
    top1: float
    expected: TradeOff
    curve: tuple[TradeOff, ...]
    calibrated_on: str
    rows: int


def check_labelled(
    labelled: Sequence[tuple[str, str | None]] | None, tools: Mapping[str, object]
) -> tuple[list[str], list[str | None]]:
    """Labelled requests as (texts, tool or None), with a clear error for anything else."""
    if labelled is None:
        return [], []
    if isinstance(labelled, str) or not all(
        isinstance(r, tuple | list) and len(r) == 2 and isinstance(r[0], str) and r[0].strip()
        for r in labelled
    ):
        raise InputError("labelled requests must be a list of (request, tool name or None) pairs")
    texts = [r for r, _ in labelled]
    labels = [t for _, t in labelled]
    unknown = sorted({t for t in labels if t is not None and t not in tools})
    if unknown:
        raise InputError(f"labels {unknown} name no registered tool; registered: {list(tools)}")
    return texts, labels


def calibrate(
    method: str,
    ex_vecs: F32,
    labels: Sequence[str],
    is_description: Sequence[bool],
    names: Sequence[str],
    requests: tuple[F32, Sequence[str | None]] | None,
    *,
    fixed: float | None = None,
    target: Target | None = None,
) -> Calibrated:
    """Fit ``method`` on the examples and choose the threshold (``fixed`` if given) for ``target``.

    ``requests``: labelled request vectors and their tool (None: no tool); empty or None calibrates on
    held-out folds of the examples instead.
    """
    truth: list[str | None]
    if requests is not None and len(requests[1]):
        req_vecs, req_labels = requests
        # Labelled requests are held out from the examples: they calibrate and choose the threshold.
        truth = [lab if lab in names else None for lab in req_labels]
        cal = [NO_TOOL if t is None else t for t in truth]
        scorer = fit_scorer(method, ex_vecs, labels, calibration=(req_vecs, cal))
        scores = scorer.scores(req_vecs)
        tools = scorer.tools
        source = "labelled requests"
    else:
        scorer = fit_scorer(method, ex_vecs, labels)
        scores, held = held_out_scores(method, ex_vecs, labels, is_description)
        tools = tuple(dict.fromkeys(lab for lab in labels if lab != NO_TOOL))
        truth = [None if lab == NO_TOOL else lab for lab in held]
        source = "held-out folds of the registered examples"
    best, conf = OpenSetRule(-np.inf).accept(scores)
    conf = np.where(best < 0, np.float32(-2.0), conf)  # the no-tool examples won: never sure
    said_best = [tools[i] if i >= 0 else None for i in best]
    right = np.array([b == t for b, t in zip(said_best, truth, strict=True)])
    in_scope = np.array([t is not None for t in truth])
    if source.startswith("held-out") and UNSEEN_TOOLS:
        # Requests for tools the registry lacks, simulated by leaving tools out whole: out-of-scope rows
        # shaped like this registry's (overlapping neighbours), which hand-written no-tool examples are not.
        # Nearest examples alone score them: the confidence is their cosine anyway, and 5 more head fits
        # would double the fit (measured: 159 s of a 307 s cold fit on the loaded box was head fits).
        unseen = held_out_tool_confidence(UNSEEN_METHOD, ex_vecs, labels, is_description)
        if len(unseen):
            conf = np.concatenate([conf, unseen]).astype(np.float32)
            right = np.concatenate([right, np.zeros(len(unseen), dtype=bool)])
            in_scope = np.concatenate([in_scope, np.zeros(len(unseen), dtype=bool)])
            source += " and of its tools"
    expected = choose(conf, right, in_scope, target=target or DEFAULT_TARGET)
    threshold = fixed if fixed is not None else expected.threshold
    sure = conf >= threshold
    if fixed is not None:
        ok = right & in_scope
        expected = TradeOff(
            threshold,
            float((sure & ok).sum() / max(1, in_scope.sum())),
            float((~sure & ok).sum() / max(1, ok.sum())),
            float((~sure & ~in_scope).sum() / (~in_scope).sum()) if (~in_scope).any() else None,
        )
    accuracy = float(np.mean(np.where(sure, right, ~in_scope)))
    top1 = float(right[in_scope].mean()) if in_scope.any() else 0.0
    curve = trade_off_curve(conf, right, in_scope)
    return Calibrated(scorer, threshold, accuracy, top1, expected, curve, source, len(conf))


__all__ = ["Calibrated", "calibrate", "check_labelled"]
