"""The reliability soak behind ``edgeroute soak``: many queries against a faulty emulator, measured.

It starts its own :class:`~edgeroute.framework.testing.emulator.GeminiEmulator` with random faults
(429/500/503/timeouts/dropped connections) and added latency, indexes a synthetic corpus with
public, confidential and PII documents, runs a mix of queries with a deadline, and reports:
failed queries (target 0), answers that lacked the cloud without a degraded flag (target 0),
latency percentiles (target p95 <= deadline + 50 ms) and privacy leaks found in the emulator's
request recording (target 0).
"""

from __future__ import annotations

import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..cloud.breaker import CircuitBreaker
from ..cloud.embedder import CloudEmbedder
from ..cloud.retry import RetryPolicy
from ..digest import sha256_text
from ..documents import Document
from ..embedder import Embedder
from ..errors import InputError
from ..router.audit import AuditLog
from ..router.engine import HybridEngine
from ..store.chroma import VectorStore
from ..testing.emulator import FAULT_KINDS, GeminiEmulator
from ..testing.hashing import HashingEmbedder

_TOPICS = (
    "running shoes",
    "trail cameras",
    "solar panels",
    "espresso machines",
    "mountain bikes",
    "noise cancelling headphones",
    "garden irrigation",
    "electric kettles",
    "hiking backpacks",
    "standing desks",
)
_ASPECTS = ("warranty", "battery life", "price", "repair", "sizing", "cleaning", "shipping", "returns")


@dataclass(frozen=True, slots=True)
class SoakReport:
    """The figures ``edgeroute soak`` prints; ``passed`` is every target met."""

    queries: int
    fault_rate: float
    latency_ms: float
    deadline_ms: float
    failed: int
    degraded: int
    cloudless_unflagged: int
    routes: dict[str, int]
    cloud_outcomes: dict[str, int]
    degraded_reasons: dict[str, int]
    p50_ms: float
    p95_ms: float
    max_ms: float
    emulator_requests: int
    faults_injected: dict[str, int]
    privacy_leaks: int
    errors: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (
            self.failed == 0
            and self.cloudless_unflagged == 0
            and self.privacy_leaks == 0
            and self.p95_ms <= self.deadline_ms + 50.0
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def soak_corpus(n: int = 120, seed: int = 0) -> tuple[list[Document], list[str]]:
    """A synthetic corpus and the texts in it that must never reach the cloud."""
    rng = random.Random(seed)
    docs: list[Document] = []
    private: list[str] = []
    for i in range(n):
        topic, aspect = rng.choice(_TOPICS), rng.choice(_ASPECTS)
        text = f"Guide {i}: {aspect} of {topic}. Notes on {aspect} for owners of {topic}, item {i}."
        sensitivity = "public"
        if i % 10 == 3:
            sensitivity = "confidential"
            text = f"Internal margin sheet {i}: our cost for {topic} is {rng.randint(10, 99)} dollars, do not share."
            private.append(text)
        elif i % 10 == 7:
            text = f"Customer case {i}: {topic} {aspect}, reach the owner at owner{i}@example.org."
            private.append(text)
        docs.append(Document(f"doc-{i}", text, title=f"{topic} {aspect}", sensitivity=sensitivity))  # type: ignore[arg-type]
    return docs, private


def soak_queries(n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """``(text, sensitivity, stakes)`` triples: mostly cloud-eligible, some private, some with PII."""
    rng = random.Random(seed + 1)
    out = []
    for i in range(n):
        text = f"{rng.choice(_ASPECTS)} of {rng.choice(_TOPICS)}"
        roll = rng.random()
        if roll < 0.1:
            out.append((f"{text} for account {i} confidential", "confidential", "high"))
        elif roll < 0.15:
            out.append((f"{text}, write to buyer{i}@example.net", "internal", "high"))
        elif roll < 0.65:
            out.append((text, "public", "high"))
        else:
            out.append((text, "internal", "normal"))
    return out


def _leaks(requests: list[dict[str, Any]], private: list[str]) -> int:
    """Private texts found in the recording: as a substring of a sent text, or by sha256 of sent bytes."""
    digests = {sha256_text(t) for t in private}
    leaks = 0
    for req in requests:
        for content in req.get("parts") or []:
            for part in content:
                sent = part.get("text") or ""
                if part.get("sha256") in digests or any(t in sent for t in private):
                    leaks += 1
    return leaks


def run_soak(
    queries: int = 1000,
    fault_rate: float = 0.3,
    *,
    latency_ms: float = 50.0,
    deadline_ms: float = 300.0,
    edge: Embedder | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> SoakReport:
    """Run the soak and measure it (see the module docstring). Uses the sync engine path."""
    if queries < 1:
        raise InputError(f"queries must be at least 1, got {queries}")
    if not 0.0 <= fault_rate <= 1.0:
        raise InputError(f"fault rate must lie in [0, 1], got {fault_rate}")
    if deadline_ms <= 0:
        raise InputError(f"deadline must be positive, got {deadline_ms} ms")
    docs, private = soak_corpus(seed=seed)
    plan = soak_queries(queries, seed)
    private += [text for text, sensitivity, _ in plan if sensitivity == "confidential" or "@" in text]
    edge = edge or HashingEmbedder(256)
    latencies: list[float] = []
    routes: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    why: Counter[str] = Counter()
    failed = degraded = unflagged = 0
    errors: list[str] = []
    # "timeout" faults hold the connection: keep them shorter than the client timeout, so late
    # calls end (as retryable errors) soon after the engine has moved on.
    with (
        tempfile.TemporaryDirectory(prefix="edgeroute-soak-") as tmp,
        GeminiEmulator(latency_ms=latency_ms, seed=seed, retry_after_s=0.05, timeout_hold_s=1.0) as emu,
    ):
        cloud = CloudEmbedder(
            api_key="soak-key",
            base_url=emu.base_url,
            dims=256,
            timeout_s=0.5,
            retry=RetryPolicy(max_attempts=3, base_delay_s=0.02, max_delay_s=0.1),
            # A short cool-down: a fault burst opens the circuit for a second, not the rest of the run.
            breaker=CircuitBreaker(failure_threshold=5, cooldown_s=1.0),
        )
        store = VectorStore.persistent(Path(tmp) / "store")
        audit = AuditLog(None)
        with store, HybridEngine(store, "soak", edge=edge, cloud=cloud, audit=audit) as engine:
            engine.ingest(docs)  # healthy cloud while indexing; faults start with the queries
            emu.set_faults(fault_rate, FAULT_KINDS)
            for n, (text, sensitivity, stakes) in enumerate(plan, start=1):
                t0 = time.perf_counter()
                try:
                    result = engine.retrieve(
                        text, 10, sensitivity=sensitivity, stakes=stakes, deadline_ms=deadline_ms
                    )
                except Exception as exc:
                    failed += 1
                    if len(errors) < 10:
                        errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                finally:
                    latencies.append((time.perf_counter() - t0) * 1000.0)
                rec = result.audit
                routes[rec["route"]] += 1
                outcomes[rec["cloud"]] += 1
                degraded += result.degraded
                if result.degraded:
                    why[result.decision.reasons[-1].code] += 1
                wanted_cloud = rec["planned_route"] != "edge" or "cloud.unavailable" in rec["reasons"]
                if wanted_cloud and rec["cloud"] != "ok" and not result.degraded:
                    unflagged += 1
                if progress is not None:
                    progress(n, len(plan))
        requests = list(emu.requests)
    faults = Counter(str(r.get("fault")) for r in requests if r.get("fault"))
    arr = np.asarray(latencies)
    return SoakReport(
        queries=queries,
        fault_rate=fault_rate,
        latency_ms=latency_ms,
        deadline_ms=deadline_ms,
        failed=failed,
        degraded=degraded,
        cloudless_unflagged=unflagged,
        routes=dict(routes),
        cloud_outcomes=dict(outcomes),
        degraded_reasons=dict(why),
        p50_ms=round(float(np.percentile(arr, 50)), 2),
        p95_ms=round(float(np.percentile(arr, 95)), 2),
        max_ms=round(float(arr.max()), 2),
        emulator_requests=len(requests),
        faults_injected=dict(faults),
        privacy_leaks=_leaks(requests, private),
        errors=errors,
    )


__all__ = ["SoakReport", "run_soak", "soak_corpus", "soak_queries"]
