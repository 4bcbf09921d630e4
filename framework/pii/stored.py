"""Findings kept between runs: their JSON form, and the detector version they were computed under.

Ingest stores a document's findings keyed by its content hash and :attr:`PiiDetector.version`
(:mod:`edgeroute.framework.router.findings_store`), so re-indexing an unchanged document and the drain
re-check the policy without running the model again. The version changes whenever the findings could:
another head (its weights' sha256), other pattern or secret rules (the sha256 of their source), another
edge model under the head, or a policy PII setting (detectors, terms, thresholds, regions, backend).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from importlib import resources

from ...policies.signals import PiiFinding

_RULE_MODULES = ("patterns.py", "secrets.py", "ported_rules.py", "ds_rules.py", "data/gitleaks_rules.json")
# The pure detectors and the context rules the secret rules read live in edgeroute.policies.
_POLICY_RULE_MODULES = ("pii.py", "secret_context.py")


@lru_cache(maxsize=1)
def rules_version() -> str:
    """sha256 of the pattern and secret rules' source and data: any change to a rule changes it."""
    h = hashlib.sha256()
    for package, names in (
        (__package__ or "edgeroute.framework.pii", _RULE_MODULES),
        ("edgeroute.policies", _POLICY_RULE_MODULES),
    ):
        base = resources.files(package)
        for name in names:
            h.update(name.encode())
            h.update(base.joinpath(*name.split("/")).read_bytes())
    return h.hexdigest()


def detector_version(parts: dict[str, object]) -> str:
    """A short, stable digest of what determines a detector's findings (see the module docstring)."""
    payload = json.dumps({**parts, "rules": rules_version()}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def findings_to_json(found: tuple[PiiFinding, ...]) -> str:
    return json.dumps([[f.kind, f.start, f.end, f.detector, f.score] for f in found], separators=(",", ":"))


def findings_from_json(payload: str) -> tuple[PiiFinding, ...]:
    return tuple(
        PiiFinding(kind=str(k), start=int(s), end=int(e), detector=str(d), score=float(sc))
        for k, s, e, d, sc in json.loads(payload)
    )


__all__ = ["detector_version", "findings_from_json", "findings_to_json", "rules_version"]
