"""Sensitivity levels, and the one check of a level against the cloud ceiling."""

from __future__ import annotations

from typing import Literal

Sensitivity = Literal["public", "internal", "confidential", "restricted"]
SENSITIVITY_LEVELS: tuple[Sensitivity, ...] = ("public", "internal", "confidential", "restricted")
"""Lowest first: ``public < internal < confidential < restricted``."""


class SensitivityError(ValueError):
    """Not a sensitivity level; the message lists the levels."""


def check_sensitivity(level: object) -> Sensitivity:
    """``level`` as a :data:`Sensitivity`, or :class:`SensitivityError` naming the allowed levels."""
    if level not in SENSITIVITY_LEVELS:
        raise SensitivityError(f"unknown sensitivity {level!r}; use one of {', '.join(SENSITIVITY_LEVELS)}")
    return level


def sensitivity_rank(level: str) -> int:
    """Position of ``level`` in ``public < internal < confidential < restricted``."""
    return SENSITIVITY_LEVELS.index(check_sensitivity(level))


def above_ceiling(level: str, ceiling: str) -> bool:
    """True when content at ``level`` must stay on the device under a ``ceiling`` (``cloud_ceiling``)."""
    return sensitivity_rank(level) > sensitivity_rank(ceiling)


__all__ = [
    "SENSITIVITY_LEVELS",
    "Sensitivity",
    "SensitivityError",
    "above_ceiling",
    "check_sensitivity",
    "sensitivity_rank",
]
