"""What the tool router takes and gives: a registered tool, a decision, a fit's figures, the audit sink."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ...policies.decision import RouteDecision
from ...policies.sensitivity import Sensitivity


class AuditSink(Protocol):
    """Anything with ``write(record)``, such as :class:`edgeroute.framework.router.audit.AuditLog`."""

    def write(self, record: Mapping[str, Any]) -> Any: ...


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One registered tool: what it does, how users ask for it, and how sensitive its domain is."""

    name: str
    description: str
    examples: tuple[str, ...]
    sensitivity: Sensitivity = "internal"


@dataclass(frozen=True, slots=True)
class ToolDecision:
    """The answer for one request.

    ``tools`` are the tools to offer, best first, as ``(name, score)`` (the head's calibrated
    probability by default; the nearest examples' cosine with ``method="nearest"``); empty exactly when
    ``unsure`` (then ask the user). A request of several clauses gets one tool per clause, in the
    order asked. ``candidates`` ranks every tool for the whole request whatever the outcome.
    ``served_by`` is ``"edge"`` or ``"cloud"`` (escalated); ``decision`` is the policy's
    :class:`~edgeroute.policies.decision.RouteDecision`; ``audit`` is the record written to the log.
    """

    tools: list[tuple[str, float]]
    unsure: bool
    decision: RouteDecision
    latency_ms: float
    candidates: list[tuple[str, float]] = field(default_factory=list)
    served_by: str = "edge"
    audit: dict[str, Any] = field(default_factory=dict)

    @property
    def top(self) -> str | None:
        """The chosen tool's name, or None for "no tool / ask the user"."""
        return self.tools[0][0] if self.tools else None


@dataclass(frozen=True, slots=True)
class ToolFit:
    """What :meth:`ToolRouter.fit` chose, and the figures it reaches on the requests it was chosen on.

    ``threshold``: the chosen tool's confidence (its nearest examples' cosine, by default) below which
    the answer is "no tool". ``accuracy``:
    decisions right (the tool when sure, "unsure" for no-tool labels) over the labelled requests, or
    over held-out folds of the examples when none were given; ``top1_accuracy`` the best tool right
    over those with a tool. ``temperature`` calibrates the head's probabilities; ``seconds`` is the
    fit's wall time, embedding included. ``method`` is the scoring that was fitted.
    """

    threshold: float
    min_margin: float
    accuracy: float
    top1_accuracy: float
    requests: int
    cloud_threshold: float | None = None
    cloud_min_margin: float | None = None
    temperature: float = 1.0
    examples: int = 0
    seconds: float = 0.0
    method: str = ""


__all__ = ["AuditSink", "ToolDecision", "ToolFit", "ToolSpec"]
