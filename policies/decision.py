"""The policy's output: where a query goes, and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from .sensitivity import SENSITIVITY_LEVELS, Sensitivity


class Route(StrEnum):
    EDGE = "edge"
    CLOUD = "cloud"
    HYBRID = "hybrid"

    def __str__(self) -> str:
        return self.value


Stakes = Literal["normal", "high"]


@dataclass(frozen=True, slots=True)
class Reason:
    """A stable machine-readable ``code`` plus a sentence for people."""

    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True, slots=True)
class RouteDecision:
    route: Route
    reasons: tuple[Reason, ...] = field(default_factory=tuple)
    degraded: bool = False
    redact: bool = False  # True only when the user opted in to redact-then-send and PII was found

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(r.code for r in self.reasons)

    @property
    def uses_cloud(self) -> bool:
        return self.route in (Route.CLOUD, Route.HYBRID)

    def to_dict(self) -> dict[str, object]:
        return {
            "route": self.route.value,
            "reasons": [{"code": r.code, "message": r.message} for r in self.reasons],
            "degraded": self.degraded,
            "redact": self.redact,
        }


__all__ = ["SENSITIVITY_LEVELS", "Reason", "Route", "RouteDecision", "Sensitivity", "Stakes"]
