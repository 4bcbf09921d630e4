"""What the policy sees: facts about one query or one document, gathered by the engine beforehand.

Signals are plain frozen values so the rules stay pure: the engine measures (PII scan, edge
retrieval, circuit state, budget), then hands the numbers to :func:`edgeroute.policies.rules.decide`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .decision import Stakes
from .sensitivity import Sensitivity, SensitivityError, sensitivity_rank

CloudState = Literal["closed", "half_open", "open", "offline", "absent"]
CLOUD_STATES: tuple[str, ...] = ("closed", "half_open", "open", "offline", "absent")
KNOWN_MODALITIES: frozenset[str] = frozenset({"text", "image", "audio", "video", "pdf"})


class SignalError(ValueError):
    """A signal value is out of range; the message names the field, the value and what is allowed."""


@dataclass(frozen=True, slots=True)
class PiiFinding:
    """One span of ``text[start:end]`` that a detector flagged.

    ``kind`` is the specific thing found (``"email"``, ``"us_ssn"``, ``"aws_access_key_id"``),
    ``detector`` the detector that found it (``"email"``, ``"national_id"``, ``"api_key"``).
    """

    kind: str
    start: int
    end: int
    detector: str

    def __post_init__(self) -> None:
        if self.start < 0 or self.end <= self.start:
            raise SignalError(f"PiiFinding span must satisfy 0 <= start < end, got {self.start}..{self.end}")


def _check_sensitivity(level: str) -> None:
    try:
        sensitivity_rank(level)
    except SensitivityError as exc:
        raise SignalError(str(exc)) from None


def _check_modalities(field: str, value: frozenset[str], *, allow_empty: bool = False) -> None:
    if not isinstance(value, frozenset):
        raise SignalError(f"{field} must be a frozenset of modality names, got {type(value).__name__}")
    if not value and not allow_empty:
        raise SignalError(f"{field} is empty; a query or document needs at least one part")
    unknown = sorted(value - KNOWN_MODALITIES)
    if unknown:
        raise SignalError(f"{field} has unknown modality {unknown}; use {sorted(KNOWN_MODALITIES)}")


@dataclass(frozen=True, slots=True)
class QuerySignals:
    """Everything :func:`~edgeroute.policies.rules.decide` needs to know about one query.

    ``edge_top1``/``edge_margin`` are None before edge retrieval has run (the first of the
    engine's two ``decide`` calls). ``budget_left`` None means unlimited; ``deadline_ms`` None
    means no deadline. ``edge_modalities`` is what the on-device model can embed (read from its
    manifest), so a multimodal edge model keeps image queries on the device.
    """

    modalities: frozenset[str]
    pii: tuple[PiiFinding, ...] = ()
    sensitivity: Sensitivity = "internal"
    stakes: Stakes = "normal"
    edge_top1: float | None = None
    edge_margin: float | None = None
    cloud_state: CloudState = "closed"
    budget_left: float | None = None
    deadline_ms: float | None = None
    semantic_high_stakes: bool = False
    edge_modalities: frozenset[str] = frozenset({"text"})

    def __post_init__(self) -> None:
        _check_modalities("modalities", self.modalities)
        _check_modalities("edge_modalities", self.edge_modalities, allow_empty=True)
        _check_sensitivity(self.sensitivity)
        if self.stakes not in ("normal", "high"):
            raise SignalError(f"unknown stakes {self.stakes!r}; use 'normal' or 'high'")
        if self.cloud_state not in CLOUD_STATES:
            raise SignalError(
                f"unknown cloud_state {self.cloud_state!r}; use one of {', '.join(CLOUD_STATES)}"
            )
        if self.deadline_ms is not None and self.deadline_ms <= 0:
            raise SignalError(f"deadline_ms must be positive or None, got {self.deadline_ms}")
        if self.edge_margin is not None and self.edge_margin < 0:
            raise SignalError(
                f"edge_margin is top-1 minus top-2 and cannot be negative, got {self.edge_margin}"
            )

    @property
    def has_confidence(self) -> bool:
        """True once edge retrieval has reported its top-1 score."""
        return self.edge_top1 is not None


@dataclass(frozen=True, slots=True)
class DocumentSignals:
    """What :func:`~edgeroute.policies.rules.place_document` needs to know about one document."""

    sensitivity: Sensitivity
    pii: tuple[PiiFinding, ...]
    modalities: frozenset[str]
    edge_modalities: frozenset[str] = frozenset({"text"})

    def __post_init__(self) -> None:
        _check_modalities("modalities", self.modalities)
        _check_modalities("edge_modalities", self.edge_modalities, allow_empty=True)
        _check_sensitivity(self.sensitivity)


__all__ = [
    "CLOUD_STATES",
    "KNOWN_MODALITIES",
    "CloudState",
    "DocumentSignals",
    "PiiFinding",
    "QuerySignals",
    "SignalError",
    "sensitivity_rank",
]
