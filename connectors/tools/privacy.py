"""The tool router's privacy rules: PII detection, what may leave the device, and the routing plan.

A request's plan is the routing policy's decision (:func:`edgeroute.policies.rules.decide`) with the
router's confidence: escalation to the cloud never happens with PII, above the cloud ceiling, or for a
request that looks like one for a tool whose domain is above the ceiling.

PII comes from two layers. The pattern layer (:func:`edgeroute.policies.pii.detect_pii`: e-mails,
phones, IDs, secrets) runs on every request; it needs no model. The on-device
:class:`~edgeroute.framework.pii.PiiDetector` (patterns, secret rules and named entities from the edge
model's token states) runs, batched, on the requests the plan would send to the cloud, and on the
labelled requests a cloud-side fit would send: those are the only texts that could leave, and a
request answered on the device costs one query embedding, not a second model pass.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from ...framework.embedder import Embedder
from ...framework.pii import PiiDetector
from ...policies.config import ConfidenceConfig, PolicyConfig
from ...policies.decision import Route, RouteDecision, Stakes
from ...policies.pii import detect_pii
from ...policies.rules import decide
from ...policies.sensitivity import Sensitivity, above_ceiling, sensitivity_rank
from ...policies.signals import CloudState, PiiFinding, QuerySignals
from .reading import Choice
from .records import ToolSpec

logger = logging.getLogger(__name__)

Findings = tuple[PiiFinding, ...]


def default_detector(embedder: Embedder, policy: PolicyConfig) -> PiiDetector | None:
    """The on-device detector for ``embedder``: with named entities when it is EmbeddingGemma with token
    states; None otherwise (the pattern layer alone, as before; no warning for test embedders)."""
    if not getattr(embedder, "has_token_states", False):
        return None
    from ...framework.edge.embedder import EdgeEmbedder

    return PiiDetector(policy, embedder=embedder) if isinstance(embedder, EdgeEmbedder) else None


class PiiCheck:
    """PII in texts: the pattern layer always, the detector (entities too) on texts that may leave."""

    def __init__(self, policy: PolicyConfig, detector: PiiDetector | None) -> None:
        self.policy = policy
        self.detector = detector

    def patterns(self, text: str) -> Findings:
        return detect_pii(text, self.policy)

    async def afull(self, texts: Sequence[str]) -> list[Findings]:
        """Every layer's findings per text: the patterns, and the detector's in one batched pass."""
        found = [self.patterns(t) for t in texts]
        if self.detector is None or not texts:
            return found
        deep = await self.detector.adetect_many(list(texts))
        return [_merge(a, b) for a, b in zip(found, deep, strict=True)]


def _merge(a: Findings, b: Findings) -> Findings:
    seen = {(f.kind, f.start, f.end) for f in a}
    return (*a, *(f for f in b if (f.kind, f.start, f.end) not in seen))


def cloud_state(cloud: Embedder | None) -> CloudState:
    if cloud is None:
        return "absent"
    if getattr(cloud, "offline", False):
        return "offline"
    state = getattr(cloud, "breaker_state", "closed")
    if state == "open":
        return "open"
    return "half_open" if state == "half_open" else "closed"


def may_leave(label: str | None, pii: Findings, tools: Mapping[str, ToolSpec], policy: PolicyConfig) -> bool:
    """May a labelled request be sent to the cloud side's fit? Never with PII or a private tool's label."""
    if pii:
        return False
    if label is None:
        return True
    return not above_ceiling(tools[label].sensitivity, policy.cloud_ceiling)


def plan(
    edge: Choice,
    pii: Findings,
    *,
    tools: Mapping[str, ToolSpec],
    policy: PolicyConfig,
    cloud: Embedder | None,
    sensitivity: Sensitivity,
    stakes: Stakes,
    threshold: float,
    min_margin: float,
) -> RouteDecision:
    """The policy's decision for one request, given the edge's reading and the PII found in it."""
    # A request that looks like one for a private tool is as private as that tool's domain:
    # the best candidate, and any other that would be offered with it.
    near = {n for n, _ in edge.candidates[:1]} | {n for n, _ in edge.tools}
    level = max([sensitivity, *(tools[n].sensitivity for n in near)], key=sensitivity_rank)
    signals = QuerySignals(
        modalities=frozenset({"text"}),
        pii=pii,
        sensitivity=level,
        stakes=stakes,
        edge_top1=max(-1.0, edge.top if edge.tools else min(edge.top, threshold - 1e-6)),
        edge_margin=edge.margin,
        cloud_state=cloud_state(cloud),
    )
    config = policy.model_copy(
        update={
            "confidence": ConfidenceConfig(min_top1=max(-1.0, min(1.0, threshold)), min_margin=min_margin)
        }
    )
    decision = decide(signals, config)
    if decision.redact:
        # Tool routing never redacts-and-sends: a PII request is routed at the edge only.
        return RouteDecision(Route.EDGE, (*decision.reasons,), degraded=False)
    return decision


__all__ = ["PiiCheck", "cloud_state", "default_detector", "may_leave", "plan"]
