"""The privacy check in front of the cloud model on ``/v1/embeddings``.

The same rules as the router's: input above the tenant's cloud ceiling, or input in which PII
is found, stays on the device. The reasons name levels and PII kinds, never the text.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...policies.config import PolicyConfig
from ...policies.decision import Reason
from ...policies.signals import PiiFinding, sensitivity_rank


def privacy_reasons(
    findings: Sequence[Sequence[PiiFinding]], sensitivity: str, policy: PolicyConfig
) -> list[Reason]:
    """Why texts with these ``findings`` (one list per text, from the on-device detector) may not go to
    the cloud (empty when they may)."""
    reasons: list[Reason] = []
    if sensitivity_rank(sensitivity) > sensitivity_rank(policy.cloud_ceiling):
        reasons.append(
            Reason(
                "privacy.sensitivity",
                f"input marked {sensitivity!r} is above this tenant's cloud ceiling {policy.cloud_ceiling!r}",
            )
        )
    flagged: dict[int, list[str]] = {}
    for i, found in enumerate(findings):
        kinds = sorted({f.kind for f in found})
        if kinds:
            flagged[i] = kinds
    if flagged:
        where = "; ".join(f"input[{i}]: {', '.join(k)}" for i, k in list(flagged.items())[:10])
        reasons.append(Reason("privacy.pii", f"PII found ({where}); it may not leave the device"))
    return reasons


__all__ = ["privacy_reasons"]
