"""Route-aware evaluation: quality, escalation, cloud cost and latency per route, side by side.

The corpus is indexed once into both indexes of a :class:`HybridEngine`; then every judged query is
answered once per route (``edge``, ``cloud``, ``hybrid`` forced, and ``auto`` = the policy). The
report adds *routing regret* per route: nDCG@10 lost against always-hybrid per USD of query cost
saved, so thresholds can be tuned against cost.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..router.engine import HybridEngine
from ..router.reports import ProgressFn
from .retrieval import load_beir, mean_metrics

ROUTES = ("edge", "cloud", "hybrid", "auto")


@dataclass(frozen=True, slots=True)
class RouteFigures:
    """One route's figures over all judged queries."""

    route: str
    ndcg_at_10: float
    recall_at_100: float
    mrr_at_10: float
    escalated_share: float  # queries the cloud was asked to serve (planned cloud or hybrid)
    degraded_share: float
    cloud_tokens: int
    cloud_cost_usd: float
    latency_p50_ms: float
    latency_p95_ms: float
    regret_per_usd: float | None  # nDCG@10 lost vs hybrid per USD saved; None for hybrid or no saving


@dataclass(frozen=True, slots=True)
class RouteEvalReport:
    dataset: str
    documents: int
    queries: int
    index_seconds: float
    routes: list[RouteFigures]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _regret(figures: list[RouteFigures]) -> list[RouteFigures]:
    hybrid = next((f for f in figures if f.route == "hybrid"), None)
    if hybrid is None:
        return figures
    out = []
    for f in figures:
        saved = hybrid.cloud_cost_usd - f.cloud_cost_usd
        regret = None if f.route == "hybrid" or saved <= 0 else (hybrid.ndcg_at_10 - f.ndcg_at_10) / saved
        out.append(RouteFigures(**{**asdict(f), "regret_per_usd": regret}))
    return out


def run_route_eval(
    dataset_dir: str | Path,
    engine: HybridEngine,
    *,
    routes: Sequence[str] = ROUTES,
    limit_queries: int | None = None,
    deadline_ms: float | None = None,
    progress: ProgressFn | None = None,
) -> RouteEvalReport:
    """Index ``dataset_dir`` (BEIR layout) into ``engine`` and score each route on its judged queries."""
    unknown = [r for r in routes if r not in ROUTES]
    if unknown or not routes:
        raise InputError(f"unknown route(s) {unknown}; choose from {', '.join(ROUTES)}")
    data = load_beir(dataset_dir, limit_queries=limit_queries)
    t0 = time.perf_counter()
    report = engine.ingest(data.corpus, progress=progress)
    index_s = time.perf_counter() - t0
    if report.queued:
        raise InputError(
            f"{report.queued} documents are still queued for the cloud index ({report.cloud.error}); "
            "bring the cloud online (or run `edgeroute sync`) before evaluating cloud routes"
        )
    figures: list[RouteFigures] = []
    for route in routes:
        rankings: dict[str, list[str]] = {}
        latencies: list[float] = []
        escalated = degraded = tokens = 0
        cost = 0.0
        for n, (qid, text) in enumerate(data.queries.items(), start=1):
            t = time.perf_counter()
            result = engine.retrieve(
                text, 100, deadline_ms=deadline_ms, route=None if route == "auto" else route
            )
            latencies.append((time.perf_counter() - t) * 1000.0)
            rankings[qid] = [h.id for h in result.hits]
            rec = result.audit
            escalated += rec["planned_route"] != "edge"
            degraded += result.degraded
            tokens += int(rec["cloud_tokens"])
            cost += float(rec["cloud_cost_usd"])
            if progress is not None:
                progress(route, n, len(data.queries))
        scores = mean_metrics(rankings, data.qrels)
        nq = len(data.queries)
        figures.append(
            RouteFigures(
                route=route,
                ndcg_at_10=scores["ndcg_at_10"],
                recall_at_100=scores["recall_at_100"],
                mrr_at_10=scores["mrr_at_10"],
                escalated_share=escalated / nq,
                degraded_share=degraded / nq,
                cloud_tokens=tokens,
                cloud_cost_usd=cost,
                latency_p50_ms=float(np.percentile(latencies, 50)),
                latency_p95_ms=float(np.percentile(latencies, 95)),
                regret_per_usd=None,
            )
        )
    return RouteEvalReport(data.name, len(data.corpus), len(data.queries), index_s, _regret(figures))


__all__ = ["ROUTES", "RouteEvalReport", "RouteFigures", "run_route_eval"]
