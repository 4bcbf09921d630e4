"""The routing rules: query signals -> :class:`RouteDecision`, document signals -> placement.

Precedence, highest first (a rule never overrides one above it):

1. **privacy** (hard): sensitivity above ``cloud_ceiling`` or any PII/secret finding keeps the
   query on the device. Only ``redact_then_send = true`` lets a PII query (never an over-ceiling
   one) reach the cloud, with ``decision.redact`` set and a ``privacy.redact_then_send`` reason.
2. **modality**: parts the edge model cannot embed (image/audio/video/pdf for a text-only model)
   need the cloud. If the cloud may not or cannot serve them: :class:`RoutingRefused`, or with
   ``on_media_without_cloud = "text_only"`` the text parts alone at the edge, degraded.
3. **connectivity and budget**: circuit open, offline, no cloud configured, budget spent or a
   deadline too short for the cloud -> edge, flagged degraded only when the query would
   otherwise have used the cloud.
4. **stakes**: ``stakes="high"`` or a semantic high-stakes match -> hybrid.
5. **confidence**: edge first; below ``min_top1`` or ``min_margin`` -> hybrid.

Two-call contract: the engine calls :func:`decide` before edge retrieval (``edge_top1=None``)
and, when the answer carries ``confidence.pending`` (see :func:`needs_confidence`), again after
it with ``edge_top1``/``edge_margin`` filled in. The first answer is final for every other
outcome, so the engine can start cloud work at once for hybrid and cloud routes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import PolicyConfig
from .decision import Reason, Route, RouteDecision
from .sensitivity import above_ceiling
from .signals import DocumentSignals, PiiFinding, QuerySignals

REASON_CODES: dict[str, str] = {
    "privacy.sensitivity": "sensitivity above the cloud ceiling; the query stays on the device",
    "privacy.pii": "PII or secrets found on-device; the query stays on the device",
    "privacy.redact_then_send": "PII found, redact-then-send opted in; findings redacted before sending",
    "modality.cloud_required": "media parts the edge model cannot embed; the cloud serves the query",
    "modality.text_only": "media parts dropped (cloud cannot serve them); text answered at the edge",
    "cloud.unavailable": "the cloud is unreachable (circuit open, offline or not configured)",
    "budget.spent": "the cloud budget is spent",
    "deadline.too_short": "the deadline is shorter than the configured cloud floor",
    "stakes.high": "the caller marked the query high stakes",
    "stakes.semantic": "the query matched a high-stakes semantic route",
    "confidence.pending": "edge first; edge confidence not known yet",
    "confidence.ok": "edge confidence is above both thresholds",
    "confidence.low_top1": "edge top-1 score below the threshold; escalated",
    "confidence.low_margin": "edge margin between top-1 and top-2 below the threshold; escalated",
    "placement.edge": "document text goes to the edge index",
    "placement.cloud": "document may go to the cloud index",
    "placement.private": "document stays out of the cloud index",
    # emitted by edgeroute.policies.fallback, for what happened after the decision
    "deadline.missed": "the cloud missed the deadline; the edge answer is served, the late call cancelled",
    "cloud.failed": "the cloud call failed (after its retries); answered at the edge",
    "privacy.guard": "the privacy guard refused the cloud call (a routing bug was caught); answered at the edge",
    "route.forced": "the caller forced the route (evaluation)",
}
"""Every reason code :func:`decide`, :func:`place_document` and :mod:`.fallback` emit, with its meaning."""

REFUSAL_CODES: dict[str, str] = {
    "modality.cloud_not_allowed": "media query, but privacy rules keep it off the cloud",
    "modality.cloud_unavailable": "media query, but the cloud is unreachable, over budget or out of time",
    "modality.no_edge_parts": "media query with no part the edge can embed, and the cloud cannot serve it",
    "placement.nowhere": "document has no part the edge can embed and may not go to the cloud",
    "route.forced_private": "a cloud route was forced, but privacy keeps the query on the device",
}
"""Every code :class:`RoutingRefused` carries."""

_UNREACHABLE = frozenset({"open", "offline", "absent"})
_CLOUD_STATE_TEXT = {
    "open": "the cloud circuit breaker is open after repeated failures",
    "offline": "the device is offline",
    "absent": "no cloud embedder is configured",
}


class RoutingRefused(Exception):
    """The policy cannot serve this request. ``code`` is stable (see :data:`REFUSAL_CODES`).

    Pure on purpose: the engine maps it to ``edgeroute.framework.errors.RoutingError``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class DocumentPlacement:
    """Which indexes one document goes to, and why."""

    edge: bool
    cloud: bool
    reasons: tuple[Reason, ...] = field(default_factory=tuple)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(r.code for r in self.reasons)


def _kinds(findings: tuple[PiiFinding, ...]) -> str:
    return ", ".join(sorted({f.kind for f in findings}))


def _privacy(signals: QuerySignals | DocumentSignals, config: PolicyConfig) -> Reason | None:
    """The reason privacy keeps this off the cloud, or None when it may go."""
    if above_ceiling(signals.sensitivity, config.cloud_ceiling):
        return Reason(
            "privacy.sensitivity",
            f"sensitivity '{signals.sensitivity}' is above the cloud ceiling '{config.cloud_ceiling}', "
            "so it never leaves the device",
        )
    if signals.pii:
        return Reason(
            "privacy.pii",
            f"found {len(signals.pii)} PII/secret span(s) on-device ({_kinds(signals.pii)}), "
            "so it never leaves the device",
        )
    return None


def _cloud_blocker(signals: QuerySignals, config: PolicyConfig) -> Reason | None:
    """Rule 3: why the cloud cannot serve right now (health, budget, deadline), or None."""
    if signals.cloud_state in _UNREACHABLE:
        return Reason("cloud.unavailable", _CLOUD_STATE_TEXT[signals.cloud_state] + "; answering at the edge")
    if signals.budget_left is not None and signals.budget_left <= config.budget.reserve:
        return Reason(
            "budget.spent",
            f"cloud budget left {signals.budget_left:g} is at or below the reserve "
            f"{config.budget.reserve:g}; "
            "answering at the edge",
        )
    floor = config.hedging.skip_cloud_below_ms
    if signals.deadline_ms is not None and signals.deadline_ms < floor:
        return Reason(
            "deadline.too_short",
            f"deadline {signals.deadline_ms:g} ms is below the cloud floor {floor:g} ms; "
            "answering at the edge",
        )
    return None


def _wanted(signals: QuerySignals, config: PolicyConfig) -> tuple[Route, list[Reason]]:
    """Rules 4 and 5 for a query the edge can embed: where it would go with a healthy cloud."""
    if signals.stakes == "high":
        return Route.HYBRID, [
            Reason("stakes.high", "the caller marked the query high stakes; using both indexes")
        ]
    if signals.semantic_high_stakes and config.semantic.enabled:
        return Route.HYBRID, [
            Reason("stakes.semantic", "the query matched a high-stakes semantic route; using both indexes")
        ]
    if signals.edge_top1 is None:
        return Route.EDGE, [
            Reason("confidence.pending", "edge first; confidence is measured after edge retrieval")
        ]
    c = config.confidence
    if signals.edge_top1 < c.min_top1:
        return Route.HYBRID, [
            Reason(
                "confidence.low_top1",
                f"edge top-1 score {signals.edge_top1:.3f} is below {c.min_top1:.3f}; escalating to hybrid",
            )
        ]
    if signals.edge_margin is not None and signals.edge_margin < c.min_margin:
        return Route.HYBRID, [
            Reason(
                "confidence.low_margin",
                f"edge margin {signals.edge_margin:.3f} is below {c.min_margin:.3f}; escalating to hybrid",
            )
        ]
    return Route.EDGE, [Reason("confidence.ok", f"edge top-1 score {signals.edge_top1:.3f} is confident")]


def _redact_reason(signals: QuerySignals) -> Reason:
    return Reason(
        "privacy.redact_then_send",
        f"redact-then-send is opted in: {len(signals.pii)} PII/secret span(s) ({_kinds(signals.pii)}) "
        "are redacted before anything is sent to the cloud",
    )


def decide(signals: QuerySignals, config: PolicyConfig) -> RouteDecision:
    """Route one query. Pure and total: returns a decision or raises :class:`RoutingRefused`."""
    reasons: list[Reason] = []
    blocked = _privacy(signals, config)
    # Redaction can only help with PII; an over-ceiling query stays private whatever the opt-in.
    redactable = blocked is not None and blocked.code == "privacy.pii" and config.redact_then_send
    if redactable:
        blocked = None
    if blocked is not None:
        reasons.append(blocked)

    media = signals.modalities - signals.edge_modalities
    edge_parts = signals.modalities & signals.edge_modalities
    if media:
        unavailable = _cloud_blocker(signals, config)
        if blocked is None and unavailable is None:
            if redactable:
                reasons.append(_redact_reason(signals))
            reasons.append(
                Reason(
                    "modality.cloud_required",
                    f"the query has {', '.join(sorted(media))} parts the edge model cannot embed; "
                    "the cloud serves it",
                )
            )
            wanted: Route = Route.CLOUD
            why: list[Reason] = []
            if edge_parts and (
                signals.stakes == "high" or (signals.semantic_high_stakes and config.semantic.enabled)
            ):
                wanted, why = _wanted(signals, config)
            return RouteDecision(wanted, (*reasons, *why), degraded=False, redact=redactable)
        cause = blocked or unavailable
        assert cause is not None
        code = "modality.cloud_not_allowed" if blocked is not None else "modality.cloud_unavailable"
        if config.on_media_without_cloud == "error":
            raise RoutingRefused(
                code,
                f"the query has {', '.join(sorted(media))} parts that need the cloud, but {cause.message}. "
                "Remove the media parts, lower the sensitivity if allowed, or set "
                'on_media_without_cloud = "text_only" to answer from the text parts at the edge.',
            )
        if not edge_parts:
            raise RoutingRefused(
                "modality.no_edge_parts",
                f"the query has only {', '.join(sorted(media))} parts, which need the cloud, "
                f"but {cause.message}. "
                "Add a text part or retry when the cloud can serve it.",
            )
        if unavailable is not None and blocked is None:
            reasons.append(unavailable)
        reasons.append(
            Reason(
                "modality.text_only",
                f"the {', '.join(sorted(media))} parts were dropped and the text parts answered at the edge",
            )
        )
        return RouteDecision(Route.EDGE, tuple(reasons), degraded=True)

    if blocked is not None:
        return RouteDecision(Route.EDGE, tuple(reasons))

    wanted, why = _wanted(signals, config)
    if wanted is Route.EDGE:
        return RouteDecision(Route.EDGE, (*reasons, *why))
    unavailable = _cloud_blocker(signals, config)
    if unavailable is not None:
        return RouteDecision(Route.EDGE, (*reasons, *why, unavailable), degraded=True)
    if redactable:
        reasons.append(_redact_reason(signals))
    return RouteDecision(wanted, (*reasons, *why), redact=redactable)


def needs_confidence(decision: RouteDecision) -> bool:
    """True when the engine should run edge retrieval and call :func:`decide` again with confidence."""
    return "confidence.pending" in decision.codes


def place_document(signals: DocumentSignals, config: PolicyConfig) -> DocumentPlacement:
    """Decide which indexes a document goes to.

    Its edge-embeddable parts (its text, for a text-only edge model) always go to the edge index.
    The cloud index takes it only when privacy allows (sensitivity at or below the ceiling and no
    PII found); redact-then-send never applies to documents. A document with nothing the edge can
    embed that may not go to the cloud raises :class:`RoutingRefused` (``placement.nowhere``).
    """
    edge_parts = signals.modalities & signals.edge_modalities
    media = signals.modalities - signals.edge_modalities
    reasons: list[Reason] = []
    blocked = _privacy(signals, config)
    if not edge_parts and blocked is not None:
        raise RoutingRefused(
            "placement.nowhere",
            f"the document has only {', '.join(sorted(media))} parts, which the edge model cannot embed, "
            f"and {blocked.message}. Add its text, or lower its sensitivity if that is allowed.",
        )
    if edge_parts:
        reasons.append(
            Reason("placement.edge", f"its {', '.join(sorted(edge_parts))} parts go to the edge index")
        )
    if blocked is not None:
        reasons.append(blocked)
        reasons.append(Reason("placement.private", "it is kept out of the cloud index"))
        return DocumentPlacement(edge=bool(edge_parts), cloud=False, reasons=tuple(reasons))
    what = f"with its {', '.join(sorted(media))} parts" if media else "its sensitivity allows it"
    reasons.append(Reason("placement.cloud", f"it goes to the cloud index ({what})"))
    return DocumentPlacement(edge=bool(edge_parts), cloud=True, reasons=tuple(reasons))


__all__ = [
    "REASON_CODES",
    "REFUSAL_CODES",
    "DocumentPlacement",
    "RoutingRefused",
    "decide",
    "needs_confidence",
    "place_document",
]
