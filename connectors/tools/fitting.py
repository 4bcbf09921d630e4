"""The fitted tool classifier: a linear head on frozen embeddings, calibrated, with an open-set rule.

Pure numpy, no I/O. :func:`fit_head` trains a multinomial logistic regression (as SetFit's head does,
on the frozen EmbeddingGemma vectors; "no tool" examples, when given, are one more class), calibrates
its probabilities by temperature scaling on held-out folds of the examples, and chooses the
confidence below which the answer is "no tool / ask the user". docs/tool-routing.md has the
measurements that chose each default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

NO_TOOL = "\x00no-tool"
"""The class of "no tool" examples: a name no tool can have."""

L2 = 1e-3
"""Weight decay of the head (per example, on unit-norm inputs); chosen by cross-validation on the shots."""

SCALE = 16.0
"""Logit scale the prototypes start from (cosine x SCALE); the fit moves away from it."""

ITERATIONS = 150
FOLDS = 5
TARGET_IN_SCOPE = 0.95
"""Without labelled no-tool requests, the threshold keeps this share of held-out in-scope examples."""


@dataclass(frozen=True, slots=True)
class LinearHead:
    """``softmax((x @ weights + bias) / temperature)`` over ``classes`` (tool names, maybe :data:`NO_TOOL`)."""

    classes: tuple[str, ...]
    weights: F32
    bias: F32
    temperature: float = 1.0

    def logits(self, x: F32) -> F32:
        out: F32 = (x @ self.weights + self.bias).astype(np.float32, copy=False)
        return out

    def probabilities(self, x: F32) -> F32:
        return softmax(self.logits(x) / self.temperature)

    def with_temperature(self, temperature: float) -> LinearHead:
        return LinearHead(self.classes, self.weights, self.bias, float(temperature))


def softmax(z: F32) -> F32:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: F32 = (e / e.sum(axis=1, keepdims=True)).astype(np.float32, copy=False)
    return out


def _prototypes(x: F32, y: I64, n_classes: int) -> F32:
    protos = np.zeros((n_classes, x.shape[1]), dtype=np.float32)
    np.add.at(protos, y, x)
    norms = np.linalg.norm(protos, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: F32 = (protos / norms).astype(np.float32)
    return out


def train_logistic(
    x: F32,
    y: I64,
    n_classes: int,
    *,
    l2: float = L2,
    iterations: int = ITERATIONS,
    weight: F32 | None = None,
) -> tuple[F32, F32]:
    """Multinomial logistic regression by Nesterov-accelerated gradient descent, started at the prototypes.

    Minimises mean weighted cross-entropy + ``l2/2 * |W|^2``. The step is 1/L, with L bounded from the
    data (softmax curvature <= 1/2 times the largest eigenvalue of the inputs' second moment), so it
    needs no line search; starting from scaled class prototypes, ~150 steps converge on 150 tools.
    """
    n, d = x.shape
    w_row = np.ones(n, dtype=np.float32) if weight is None else weight.astype(np.float32)
    w_row = w_row / w_row.sum()
    onehot = np.zeros((n, n_classes), dtype=np.float32)
    onehot[np.arange(n), y] = 1.0
    xb = np.hstack([x, np.ones((n, 1), dtype=np.float32)])  # bias as a constant feature
    top_eig = float(np.linalg.eigvalsh((xb * w_row[:, None]).T @ xb)[-1])
    step = 1.0 / (0.5 * top_eig + l2)
    theta = np.zeros((d + 1, n_classes), dtype=np.float32)
    theta[:d] = SCALE * _prototypes(x, y, n_classes).T
    prev = theta.copy()
    reg = np.ones((d + 1, 1), dtype=np.float32)
    reg[d] = 0.0  # the bias is not decayed
    for t in range(1, iterations + 1):
        look = theta + ((t - 1) / (t + 2)) * (theta - prev)
        p = softmax(xb @ look)
        grad = xb.T @ ((p - onehot) * w_row[:, None]) + l2 * reg * look
        prev, theta = theta, (look - step * grad).astype(np.float32)
    return np.ascontiguousarray(theta[:d]), np.ascontiguousarray(theta[d])


def fit_temperature(logits: F32, y: I64) -> float:
    """The temperature minimising held-out negative log-likelihood (golden-section search on log T)."""

    def nll(log_t: float) -> float:
        z = logits / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1))
        return float(np.mean(lse - z[np.arange(len(y)), y]))

    lo, hi = np.log(0.05), np.log(20.0)
    g = (np.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(40):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(b)
    return float(np.exp((lo + hi) / 2))


def _folds(y: I64, k: int, seed: int = 0) -> list[I64]:
    """Stratified folds: each class's examples dealt round-robin after a seeded shuffle."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=np.int64)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        fold[idx] = (np.arange(len(idx)) + rng.integers(k)) % k
    return [np.flatnonzero(fold == f) for f in range(k)]


def held_out_logits(
    x: F32, y: I64, n_classes: int, *, folds: int = FOLDS, l2: float = L2, iterations: int = ITERATIONS
) -> F32:
    """Logits of each example from a head trained without its fold (for calibration and thresholds)."""
    out = np.zeros((len(y), n_classes), dtype=np.float32)
    for idx in _folds(y, folds):
        train = np.ones(len(y), dtype=bool)
        train[idx] = False
        w, b = train_logistic(x[train], y[train], n_classes, l2=l2, iterations=iterations)
        out[idx] = x[idx] @ w + b
    return out


@dataclass(frozen=True, slots=True)
class OpenSetRule:
    """Answer "no tool" when the no-tool class wins or the best tool's probability is below ``threshold``."""

    threshold: float

    def accept(self, probs: F32, classes: Sequence[str]) -> tuple[I64, F32]:
        """Per row: the index of the best tool (-1 for "no tool") and its probability."""
        tool_cols = np.array([i for i, c in enumerate(classes) if c != NO_TOOL])
        tool_probs = probs[:, tool_cols]
        best = tool_probs.argmax(axis=1)
        conf = tool_probs[np.arange(len(best)), best]
        no_tool_col = [i for i, c in enumerate(classes) if c == NO_TOOL]
        beaten = probs[:, no_tool_col[0]] > conf if no_tool_col else np.zeros(len(best), dtype=bool)
        chosen = np.where((conf < self.threshold) | beaten, -1, tool_cols[best])
        return chosen.astype(np.int64), conf.astype(np.float32)


def choose_threshold(conf: F32, right: npt.NDArray[np.bool_], in_scope: npt.NDArray[np.bool_]) -> float:
    """The confidence threshold maximising in-scope accuracy + out-of-scope recall on labelled rows.

    ``conf`` is the best tool's probability (0 where the no-tool class won), ``right`` whether that
    tool is the label. Equal weight on the two, whatever their shares in the labelled set: a wrong
    tool is worse than asking the user, and the labelled set's out-of-scope share is not the traffic's.
    Without out-of-scope rows, keep :data:`TARGET_IN_SCOPE` of the right answers.
    """
    if not in_scope.any():
        return float(np.quantile(conf, 0.5))
    if in_scope.all():
        ok = np.sort(conf[right])
        return float(ok[int((1 - TARGET_IN_SCOPE) * len(ok))]) if len(ok) else 0.5
    candidates = np.unique(np.concatenate([[0.0], conf]))
    best, best_t = -1.0, 0.0
    n_in, n_out = int(in_scope.sum()), int((~in_scope).sum())
    for t in candidates:
        sure = conf >= t
        score = (sure & right & in_scope).sum() / n_in + (~sure & ~in_scope).sum() / n_out
        if score > best + 1e-12:
            best, best_t = float(score), float(t)
    # Midway down to the next lower confidence: the cut is not flush against one example.
    below = candidates[candidates < best_t]
    return (best_t + float(below[-1])) / 2 if len(below) else best_t


def fit_head(
    x: F32,
    labels: Sequence[str],
    *,
    l2: float = L2,
    iterations: int = ITERATIONS,
    calibrate: bool = True,
) -> tuple[LinearHead, F32 | None]:
    """Train the head on labelled vectors; returns it (temperature-calibrated) and its held-out logits."""
    classes = tuple(dict.fromkeys(labels))
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[c] for c in labels], dtype=np.int64)
    if len(classes) == 1:
        # One tool and no negatives: a single class always wins; the threshold does the deciding.
        w = _prototypes(x, y, 1).T * SCALE
        return LinearHead(classes, w.astype(np.float32), np.zeros(1, dtype=np.float32)), None
    w, b = train_logistic(x, y, len(classes), l2=l2, iterations=iterations)
    head = LinearHead(classes, w, b)
    held: F32 | None = None
    counts = np.bincount(y)
    if calibrate and counts.min() >= 2:
        held = held_out_logits(
            x, y, len(classes), folds=min(FOLDS, int(counts.max())), l2=l2, iterations=iterations
        )
        head = head.with_temperature(fit_temperature(held, y))
    return head, held


def class_indices(labels: Sequence[str], classes: Sequence[str]) -> I64:
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[c] for c in labels], dtype=np.int64)


def as_f32(x: Any) -> F32:
    out: F32 = np.ascontiguousarray(x, dtype=np.float32)
    return out


__all__ = [
    "NO_TOOL",
    "LinearHead",
    "OpenSetRule",
    "choose_threshold",
    "fit_head",
    "fit_temperature",
    "held_out_logits",
    "softmax",
    "train_logistic",
]
