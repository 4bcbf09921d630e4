"""Decisions after the decision: a route forced by the caller, and the edge fallback when the cloud
did not answer. Pure, like :mod:`.rules`; their reason codes are registered in
:data:`.rules.REASON_CODES` (and ``route.forced_private`` in :data:`.rules.REFUSAL_CODES`).
"""

from __future__ import annotations

from .decision import Reason, Route, RouteDecision
from .rules import RoutingRefused

_PRIVATE_CODES = frozenset({"privacy.sensitivity", "privacy.pii"})


def force_route(decision: RouteDecision, route: str) -> RouteDecision:
    """Replace the policy's choice by ``route`` (for evaluation), never against privacy.

    Raises ``ValueError`` for an unknown route and :class:`RoutingRefused`
    (``route.forced_private``) when a cloud route is forced onto a query privacy keeps on the device.
    """
    try:
        forced = Route(route)
    except ValueError:
        raise ValueError(
            f"route {route!r} is unknown; use edge, cloud or hybrid (or None for the policy)"
        ) from None
    private = _PRIVATE_CODES & set(decision.codes)
    if forced is not Route.EDGE and private and not decision.redact:
        raise RoutingRefused(
            "route.forced_private",
            f"route {forced.value!r} was forced, but privacy keeps this query on the device "
            f"({', '.join(sorted(private))}); force 'edge' or lower the sensitivity",
        )
    why = Reason("route.forced", f"route {forced.value!r} was forced by the caller (evaluation)")
    return RouteDecision(forced, (why,), redact=decision.redact)


def kept_private(decision: RouteDecision) -> bool:
    """True when privacy (sensitivity or PII) keeps this query's text on the device."""
    return bool(_PRIVATE_CODES & set(decision.codes)) and not decision.uses_cloud


def degrade(decision: RouteDecision, code: str, message: str) -> RouteDecision:
    """The edge answer served in place of ``decision``, flagged degraded, with the reason appended."""
    return RouteDecision(Route.EDGE, (*decision.reasons, Reason(code, message)), degraded=True)


def cloud_fallback(
    decision: RouteDecision,
    *,
    late: bool,
    deadline_ms: float | None = None,
    error: str | None = None,
    privacy_refused: bool = False,
) -> RouteDecision:
    """The decision actually served when the cloud did not answer: late, refused by the privacy
    guard, or failed with ``error`` (``"TypeName: message"``)."""
    if late:
        return degrade(
            decision,
            "deadline.missed",
            f"the cloud did not answer within the {deadline_ms or 0:g} ms deadline; the edge answer is "
            "returned and the late cloud call was cancelled",
        )
    if privacy_refused:
        return degrade(decision, "privacy.guard", f"the privacy guard refused the cloud call: {error}")
    return degrade(decision, "cloud.failed", f"the cloud call failed ({error}); answered at the edge")


__all__ = ["cloud_fallback", "degrade", "force_route", "kept_private"]
