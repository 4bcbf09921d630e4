"""What the tool router takes and gives: a registered tool, a decision, a fit's figures, the audit sink."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ...framework.errors import InputError
from ...policies.decision import RouteDecision
from ...policies.sensitivity import Sensitivity, SensitivityError, check_sensitivity
from .openset import TradeOff


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
    fit's wall time, embedding included (``embed_seconds`` of it embedding the edge side's texts; the
    rest is the scorer, the folds and the cloud side). ``method`` is the scoring that was fitted.

    ``target`` is what the threshold was chosen for (``max_false_reject=0.05`` by default), and
    ``calibrated_on`` the rows it was chosen on: ``labelled requests``, or ``held-out folds of the
    registered examples`` (each example scored by a scorer fitted without it). On those rows it
    reaches ``expected_in_scope`` (in-scope requests answered with the right tool),
    ``expected_false_reject`` (right-ranked requests it refuses) and ``expected_out_of_scope_recall``
    (no-tool requests refused; None without no-tool examples). ``trade_off`` is the curve: the
    threshold and those three figures at false-reject rates from 1% to 30%, to move along it by
    refitting with another target.
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
    target: str = ""
    calibrated_on: str = ""
    expected_in_scope: float = 0.0
    expected_false_reject: float = 0.0
    expected_out_of_scope_recall: float | None = None
    trade_off: tuple[TradeOff, ...] = ()
    embed_seconds: float = 0.0


def checked_spec(name: str, description: str, examples: Sequence[str], sensitivity: Sensitivity) -> ToolSpec:
    """A :class:`ToolSpec` from what a caller registers, with a clear error for each thing wrong."""
    if not isinstance(name, str) or not name.strip():
        raise InputError("a tool needs a non-empty name")
    if not isinstance(description, str) or not description.strip():
        raise InputError(f"tool {name!r} needs a non-empty description of what it does")
    if isinstance(examples, str):
        raise InputError(f"examples of tool {name!r} must be a list of requests, not one string")
    items = tuple(examples)
    if not items or any(not isinstance(e, str) or not e.strip() for e in items):
        raise InputError(
            f"tool {name!r} needs at least one example request, each a non-empty string "
            "(for example ['refund my last order'])"
        )
    try:
        check_sensitivity(sensitivity)
    except SensitivityError as exc:
        raise InputError(str(exc)) from exc
    return ToolSpec(name, description, items, sensitivity)


__all__ = ["AuditSink", "ToolDecision", "ToolFit", "ToolSpec", "checked_spec"]
