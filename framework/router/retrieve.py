"""Retrieve: one query, embedded on the device, routed, answered from the edge, the cloud or both.

The order of one query (the privacy checks are marked *):

1. parse and validate the query and the call's arguments (no I/O yet);
2. * scan the text for PII on the device; embed it on the device;
3. * :func:`~edgeroute.policies.rules.decide` (privacy first, then modality, cloud health, stakes);
   a query privacy keeps on the device has its text registered with the privacy guard;
4. a cloud or hybrid route starts the cloud call at once, as a task (with redact-then-send the
   query is redacted first; * the privacy guard inside the cloud client checks the final bytes);
5. edge search; when the policy asked for it, :func:`decide` again with the edge confidence;
6. wait for the cloud, at most until the deadline: a late call is cancelled (it writes its
   ``cancelled`` audit record before this function goes on) and the edge answer is served, degraded;
7. pick or fuse (RRF) the hits and write the query's audit record.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

from ...policies.decision import Route, RouteDecision, Sensitivity, Stakes
from ...policies.fallback import cloud_fallback, force_route, kept_private
from ...policies.pii import detect_pii
from ...policies.rules import RoutingRefused, decide, needs_confidence
from ...policies.signals import QuerySignals
from ..aio import to_thread
from ..digest import sha256_text
from ..documents import Hit, RetrievalResult
from ..errors import (
    CloudUnavailableError,
    ConfigurationError,
    EdgeRouteError,
    InputError,
    PrivacyViolationError,
    RoutingError,
)
from ..parts import Part
from .audit import CloudStatus, QueryRecord
from .cloud_calls import elapsed_ms
from .fusion import rrf_fuse
from .placement import EDGE_MODALITIES
from .query import ParsedQuery, check_call, parse_query

if TYPE_CHECKING:
    from ..store.chroma import Collection
    from .engine import HybridEngine


@dataclass(frozen=True, slots=True)
class CloudOutcome:
    """How the cloud side of a query ended: ``hits``, or ``error``, or ``late`` (cancelled at the deadline)."""

    hits: list[Hit] | None = None
    error: BaseException | None = None
    late: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.late

    @property
    def status(self) -> CloudStatus:
        return "ok" if self.ok else "late" if self.late else "error"


def edge_confidence(hits: Sequence[Hit]) -> tuple[float, float | None]:
    """Top-1 score and margin to the second; an empty index counts as no confidence at all."""
    if not hits:
        return -1.0, None
    top1 = hits[0].score
    if len(hits) < 2:
        return top1, None
    return top1, max(0.0, top1 - hits[1].score)


async def retrieve(
    engine: HybridEngine,
    query: str | Sequence[Part],
    k: int,
    *,
    sensitivity: str,
    stakes: str,
    deadline_ms: float | None,
    where: Mapping[str, Any] | None,
    route: str | None,
) -> RetrievalResult:
    t0 = time.perf_counter()
    q = parse_query(query)
    check_call(k, sensitivity, stakes, deadline_ms)
    stages: dict[str, float] = {}
    edge_col = await engine.aopen_index("edge", create=False)
    assert edge_col is not None
    pii = detect_pii(q.text, engine.policy) if q.text else ()
    vec = None
    if q.text:
        t = time.perf_counter()
        vec = (await engine.edge_embedder.aembed_queries([q.text], dims=engine.edge_dims))[0]
        stages["edge_embed"] = elapsed_ms(t)
    signals = QuerySignals(
        q.modalities,
        pii,
        cast(Sensitivity, sensitivity),
        cast(Stakes, stakes),
        cloud_state=engine.cloud_state(),
        budget_left=engine.budget_left(),
        deadline_ms=deadline_ms,
        semantic_high_stakes=_semantic_high_stakes(engine, vec),
        edge_modalities=EDGE_MODALITIES,
    )
    decision = _decide(signals, engine, route)
    if kept_private(decision) and q.text:
        # Whatever happens next, the guard now refuses this exact text.
        engine.guard.add_hashes([sha256_text(q.text)])
    cloud_q = q.redacted(pii, engine.policy) if decision.redact and q.text else q
    cloud: _CloudSide | None = None
    try:
        if decision.uses_cloud:
            cloud = await _CloudSide.start(engine, cloud_q, k, where)
        edge_hits: list[Hit] | None = None
        if vec is not None:
            t = time.perf_counter()
            edge_hits = await to_thread(edge_col.query, vec, max(k, 2), space=engine.edge_space, where=where)
            stages["edge_search"] = elapsed_ms(t)
        if needs_confidence(decision):
            top1, margin = edge_confidence(edge_hits or [])
            decision = decide(replace(signals, edge_top1=top1, edge_margin=margin), engine.policy)
            if decision.uses_cloud:
                cloud = await _CloudSide.start(engine, cloud_q, k, where)
        outcome: CloudOutcome | None = None
        if decision.uses_cloud:
            timeout = None
            if deadline_ms is not None and engine.policy.hedging.enabled:
                timeout = max(0.0, deadline_ms / 1000.0 - (time.perf_counter() - t0))
            t = time.perf_counter()
            outcome = await cloud.wait(timeout) if cloud is not None else CloudOutcome(hits=[])
            stages["cloud_wait"] = elapsed_ms(t)
    finally:
        if cloud is not None:
            await cloud.cancel()  # a no-op once it has ended; else nothing runs on behind the answer
    t = time.perf_counter()
    hits, served = assemble(engine, decision, edge_hits, outcome, k, deadline_ms)
    stages["fusion"] = elapsed_ms(t)
    stages["total"] = elapsed_ms(t0)
    record = _query_record(
        engine, q, sensitivity, stakes, decision, served, outcome, stages, hits, deadline_ms
    )
    written = engine.audit.write(record)  # one buffered line, as the cloud-call records
    return RetrievalResult(hits=hits, decision=served, audit=written)


def _decide(signals: QuerySignals, engine: HybridEngine, route: str | None) -> RouteDecision:
    try:
        decision = decide(signals, engine.policy)
        return decision if route is None else force_route(decision, route)
    except RoutingRefused as exc:
        raise RoutingError(exc.message) from None
    except ValueError as exc:  # an unknown forced route
        raise InputError(str(exc)) from None


def _semantic_high_stakes(engine: HybridEngine, vec: Any) -> bool:
    if engine.semantic_routes is None or vec is None:
        return False
    try:
        return engine.semantic_routes.match(vec).name is not None
    except ValueError as exc:
        raise ConfigurationError(
            f"semantic routes do not fit the edge embedder ({exc}); fit them with the same model and dims"
        ) from None


class _CloudSide:
    """The cloud half of one query, running as a task while the edge half goes on."""

    def __init__(self, task: asyncio.Task[list[Hit]] | None) -> None:
        self.task = task  # None: nothing is indexed in the cloud yet

    @classmethod
    async def start(
        cls, engine: HybridEngine, q: ParsedQuery, k: int, where: Mapping[str, Any] | None
    ) -> _CloudSide:
        col = await engine.aopen_index("cloud", create=False)
        if col is None:
            return cls(None)
        return cls(asyncio.ensure_future(_cloud_hits(engine, col, q, k, where)))

    async def wait(self, timeout_s: float | None) -> CloudOutcome:
        if self.task is None:
            return CloudOutcome(hits=[])
        done, _ = await asyncio.wait({self.task}, timeout=timeout_s)
        if not done:
            await self.cancel()
            return CloudOutcome(late=True)
        exc = self.task.exception()
        return CloudOutcome(error=exc) if exc is not None else CloudOutcome(hits=self.task.result())

    async def cancel(self) -> None:
        """Cancel the call if it still runs and wait until it has ended (and audited itself)."""
        task = self.task
        if task is None or task.done():
            return
        task.cancel()
        await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not warn about it later


async def _cloud_hits(
    engine: HybridEngine, col: Collection, q: ParsedQuery, k: int, where: Mapping[str, Any] | None
) -> list[Hit]:
    assert engine.cloud_calls is not None
    vec = await engine.cloud_calls.query_vector(q)
    return await to_thread(col.query, vec[0], k, space=col.space, where=where)


def assemble(
    engine: HybridEngine,
    decision: RouteDecision,
    edge_hits: list[Hit] | None,
    outcome: CloudOutcome | None,
    k: int,
    deadline_ms: float | None,
) -> tuple[list[Hit], RouteDecision]:
    """Pick or fuse the hits for the served route; degrade to the edge when the cloud did not answer."""
    if decision.route is Route.EDGE or outcome is None:
        return list(edge_hits or [])[:k], decision
    if not outcome.ok:
        err = outcome.error
        if edge_hits is None:  # media-only: nothing at the edge to fall back on
            if isinstance(err, EdgeRouteError):
                raise err
            raise CloudUnavailableError(
                "the cloud did not answer in time and a media-only query cannot be answered at the edge; "
                "retry, raise --deadline-ms, or add a text part"
            )
        privacy = isinstance(err, PrivacyViolationError)
        served = cloud_fallback(
            decision,
            late=outcome.late,
            deadline_ms=deadline_ms,
            error=str(err) if privacy else f"{type(err).__name__}: {err}",
            privacy_refused=privacy,
        )
        return edge_hits[:k], served
    cloud_hits = outcome.hits or []
    if decision.route is Route.CLOUD:
        return cloud_hits[:k], decision
    fused = rrf_fuse(
        {"edge": edge_hits or [], "cloud": cloud_hits}, k=engine.rrf_k, weights=engine.rrf_weights, limit=k
    )
    return fused, decision


def _query_record(
    engine: HybridEngine,
    q: ParsedQuery,
    sensitivity: str,
    stakes: str,
    planned: RouteDecision,
    served: RouteDecision,
    outcome: CloudOutcome | None,
    stages: dict[str, float],
    hits: list[Hit],
    deadline_ms: float | None,
) -> QueryRecord:
    calls = engine.cloud_calls
    # Estimates of what left the device: nothing when the guard refused it; a call cancelled at the
    # deadline is not counted either (its cloud_call record says cancelled, with nothing billed).
    cloud_sent = (
        outcome is not None and not outcome.late and not isinstance(outcome.error, PrivacyViolationError)
    )
    tokens, nbytes, cost = calls.cost(q.parts) if cloud_sent and calls is not None else (0, 0, 0.0)
    spaces = [engine.edge_space.fingerprint] if q.text else []
    if outcome is not None and outcome.ok and engine.cloud_space is not None:
        spaces.append(engine.cloud_space.fingerprint)
    record: QueryRecord = {
        "type": "query",
        "collection": engine.name,
        **engine.audit.query_fields(q.identity),
        "modalities": sorted(q.modalities),
        "sensitivity": sensitivity,
        "stakes": stakes,
        "planned_route": planned.route.value,
        "route": served.route.value,
        "reasons": list(served.codes),
        "degraded": served.degraded,
        "redacted": planned.redact,
        "cloud": "not_used" if outcome is None else outcome.status,
        "spaces": spaces,
        "latency_ms": stages,
        "deadline_ms": deadline_ms,
        "hits": len(hits),
        "cloud_tokens": tokens,
        "cloud_bytes": nbytes,
        "cloud_cost_usd": round(cost, 10),
    }
    return record


__all__ = ["CloudOutcome", "assemble", "edge_confidence", "retrieve"]
