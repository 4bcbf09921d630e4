"""Measure agent tool routing on a data folder (:mod:`.data` layout): ``edgeroute bench tools``.

The router is built with its defaults, registers ``shots`` examples per tool, learns the "no tool"
examples, is fitted on the ``fit`` requests, and every figure is measured on the ``test`` requests:

* ``in_scope_accuracy``: requests that need one tool and got exactly that tool first (unsure = wrong);
* ``out_of_scope_recall``: requests that need no tool and got "no tool / ask the user";
* ``overall_accuracy``: both kinds together; ``coverage``: share answered with a tool;
  ``answered_precision``: right tool among those answered;
* ``multi_tool_precision`` / ``multi_tool_recall``: over requests that need several tools, the returned
  set against the needed set (micro-averaged), and ``multi_tool_exact``;
* ``decision_p50_ms``: one ``route()`` call on a request not in the cache, and ``embedding_p50_ms``: one
  bare query embedding of the same text with the same prompt, interleaved in the same run, and their
  ``decision_over_embedding`` ratio; ``cached_decision_p50_ms``: the same requests again (cache hits);
* ``fit_seconds``: ``register`` + ``fit`` wall time, ``fit_cpu_seconds`` the CPU time this process
  spent in them (all its threads; on a shared machine the wall time also counts waiting for a core),
  and ``fit_embedded`` how many texts it had to embed (the rest came from the cache), ``fit_embed_seconds``
  the part of the fit spent embedding;
* ``target``, ``calibrated_on`` and ``expected_*``: what the threshold was chosen for, on which rows,
  and what the fit expected it to reach there (compare with the measured figures).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...framework.embedder import Embedder
from ...framework.store.cache import EmbeddingCache
from .data import LabelledRequest, ToolSet, load_tool_set
from .router import ToolDecision, ToolRouter

BATCH = 64
TIMED = 100


def _p(values: Sequence[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def build_router(tool_set: ToolSet, embedder: Embedder, cache: EmbeddingCache | None = None) -> ToolRouter:
    router = ToolRouter(embedder, cache=cache)
    for t in tool_set.tools:
        router.register(t.name, t.description, t.examples, sensitivity=t.sensitivity)
    if tool_set.no_tool_examples:
        router.add_no_tool_examples(tool_set.no_tool_examples)
    return router


def _score(rows: Sequence[LabelledRequest], decisions: Sequence[ToolDecision]) -> dict[str, Any]:
    single = [(r, d) for r, d in zip(rows, decisions, strict=True) if not r.multi]
    multi = [(r, d) for r, d in zip(rows, decisions, strict=True) if r.multi]
    in_scope = [(r, d) for r, d in single if r.tool is not None]
    out_scope = [(r, d) for r, d in single if r.tool is None]
    answered = [(r, d) for r, d in single if not d.unsure]
    right = sum(d.top == r.tool for r, d in in_scope) + sum(d.unsure for _, d in out_scope)
    out: dict[str, Any] = {
        "test_requests": len(single),
        "in_scope_requests": len(in_scope),
        "out_of_scope_requests": len(out_scope),
        "in_scope_accuracy": sum(d.top == r.tool for r, d in in_scope) / len(in_scope) if in_scope else None,
        "top1_accuracy": (
            sum(bool(d.candidates) and d.candidates[0][0] == r.tool for r, d in in_scope) / len(in_scope)
            if in_scope
            else None
        ),
        "out_of_scope_recall": sum(d.unsure for _, d in out_scope) / len(out_scope) if out_scope else None,
        "overall_accuracy": right / len(single) if single else None,
        "coverage": len(answered) / len(single) if single else None,
        "answered_precision": (
            sum(d.top == r.tool for r, d in answered) / len(answered) if answered else None
        ),
        "single_given_several_tools": (
            sum(len(d.tools) > 1 for _, d in answered) / len(answered) if answered else None
        ),
    }
    if multi:
        hit = sum(len({n for n, _ in d.tools} & set(r.tools)) for r, d in multi)
        returned = sum(len(d.tools) for _, d in multi)
        needed = sum(len(r.tools) for r, _ in multi)
        out.update(
            multi_tool_requests=len(multi),
            multi_tool_precision=hit / returned if returned else 0.0,
            multi_tool_recall=hit / needed,
            multi_tool_exact=sum({n for n, _ in d.tools} == set(r.tools) for r, d in multi) / len(multi),
        )
    return out


def _embed_once(router: ToolRouter, text: str) -> None:
    """One bare query embedding of ``text`` with the router's prompt: the yardstick of a decision."""
    prompt = router.encoder.prompt
    embed = getattr(router.embedder, "embed", None)
    if prompt is not None and embed is not None:
        embed([text], prompt)
    else:
        router.embedder.embed_queries([text])


def measure_tool_routing(
    embedder: Embedder,
    *,
    data_dir: str | Path | None = None,
    shots: int | None = None,
    cache: EmbeddingCache | None = None,
    timed: int = TIMED,
    calibrate: str = "auto",
    max_false_reject: float | None = None,
) -> dict[str, Any]:
    """Fit on the folder's fit requests, measure its test requests; figures as in the module docstring.

    ``calibrate="registry"`` ignores the fit requests: the threshold is chosen on held-out folds of the
    registered examples alone, as for a user who has only the registry (``"auto"``: fit requests when
    the folder has them). ``max_false_reject`` asks the fit for that target instead of the default.
    """
    if calibrate not in ("auto", "registry"):
        raise ValueError(f"calibrate is 'auto' or 'registry', got {calibrate!r}")
    tool_set = load_tool_set(data_dir, shots=shots)
    misses0 = cache.misses if cache is not None else 0
    t0, cpu0 = time.perf_counter(), time.process_time()
    router = build_router(tool_set, embedder, cache)
    fit_rows = [(r.text, r.tool) for r in tool_set.fit if not r.multi] if calibrate == "auto" else []
    fit = router.fit(fit_rows or None, max_false_reject=max_false_reject)
    fit_seconds, fit_cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
    fit_embedded = (router.cache.misses - misses0) if cache is not None else router.cache.misses

    decisions: list[ToolDecision] = []
    for i in range(0, len(tool_set.test), BATCH):
        decisions += router.route_many([r.text for r in tool_set.test[i : i + BATCH]], k=3)
    figures = _score(tool_set.test, decisions)

    # Latency: requests the cache has not seen (a fresh in-memory cache), each decision next to one
    # bare embedding of the same text, interleaved so that machine load hits both alike.
    sample = [r.text for r in tool_set.test if not r.multi][: max(1, timed)]
    shared = router.cache
    router.cache = router.encoder.cache = EmbeddingCache(None, 64 * 1024**2)
    try:
        router.route(sample[0])
        _embed_once(router, sample[0])  # warm-up: first-call allocations are not a decision's latency
        decide_ms: list[float] = []
        embed_ms: list[float] = []
        for text in sample:
            t = time.perf_counter()
            _embed_once(router, text)
            embed_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            router.route(text, k=3)
            decide_ms.append((time.perf_counter() - t) * 1000)
        cached_ms: list[float] = []
        for text in sample:
            t = time.perf_counter()
            router.route(text, k=3)
            cached_ms.append((time.perf_counter() - t) * 1000)
    finally:
        router.cache = router.encoder.cache = shared
    p50_decide, p50_embed = _p(decide_ms, 50), _p(embed_ms, 50)
    return {
        "data": str(tool_set.path),
        "space": embedder.space.fingerprint,
        "prompt": router.encoder.prompt,
        "dims": router.encoder.dims,
        "tools": len(tool_set.tools),
        "shots": shots,
        "examples": fit.examples,
        "no_tool_examples": len(tool_set.no_tool_examples),
        "fit_requests": len(fit_rows),
        **figures,
        "accuracy_at_threshold": figures["overall_accuracy"],
        "no_tool_recall": figures["out_of_scope_recall"],
        "decision_p50_ms": p50_decide,
        "decision_p95_ms": _p(decide_ms, 95),
        "embedding_p50_ms": p50_embed,
        "decision_over_embedding": p50_decide / p50_embed if p50_embed > 0 else None,
        "cached_decision_p50_ms": _p(cached_ms, 50),
        "latency_p50_ms": p50_decide,
        "timed_requests": len(sample),
        "fit_seconds": fit_seconds,
        "fit_cpu_seconds": fit_cpu_seconds,
        "fit_embedded": fit_embedded,
        "fit_embed_seconds": fit.embed_seconds,
        "threshold": fit.threshold,
        "target": fit.target,
        "calibrated_on": fit.calibrated_on,
        "expected_in_scope": fit.expected_in_scope,
        "expected_false_reject": fit.expected_false_reject,
        "expected_out_of_scope_recall": fit.expected_out_of_scope_recall,
        "temperature": fit.temperature,
        "method": fit.method,
        "fit_accuracy": fit.accuracy,
    }


__all__ = ["build_router", "measure_tool_routing"]
