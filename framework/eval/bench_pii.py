"""Precision and recall of the on-device PII detectors on a labelled JSONL set.

Each line: ``{"text": ..., "spans": [{"start", "end", "kind", "detector"}, ...]}``. A finding is a
true positive when it overlaps a labelled span of the same detector; a labelled span is recalled
when some finding of its detector overlaps it. ``overall`` ignores the detector (any overlap), which
is what privacy cares about: was the sensitive span caught at all.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ...policies.config import PiiConfig, PolicyConfig, UserPattern
from ...policies.pii import detect_pii
from ...policies.signals import PiiFinding
from ..errors import InputError

BENCH_PII_CONFIG = PiiConfig(
    terms=("Project Falcon", "Bluebird merger"),
    patterns=(UserPattern(name="employee_id", regex=r"\bEMP-\d{6}\b"),),
)
"""The user terms and patterns the shipped labelled set expects (its user_terms/user_patterns rows)."""


@dataclass(frozen=True, slots=True)
class _Span:
    start: int
    end: int
    detector: str


def default_pii_set() -> Path:
    """Path of the labelled set shipped with edgeroute (``policies/data/pii_labelled.jsonl``)."""
    return Path(str(resources.files("edgeroute.policies").joinpath("data", "pii_labelled.jsonl")))


def _load(path: Path) -> list[tuple[str, list[_Span]]]:
    if not path.is_file():
        raise InputError(
            f"labelled PII set {path} does not exist; pass a JSONL file or omit it for the default"
        )
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text = row["text"]
            spans = [_Span(int(s["start"]), int(s["end"]), str(s["detector"])) for s in row.get("spans", [])]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise InputError(
                f"{path}:{n}: expected {{'text': str, 'spans': [{{'start','end','detector'}}]}}; "
                f"got an error: {exc}"
            ) from None
        if not isinstance(text, str) or any(not 0 <= s.start < s.end <= len(text) for s in spans):
            raise InputError(f"{path}:{n}: 'text' must be a string and every span must lie inside it")
        rows.append((text, spans))
    if not rows:
        raise InputError(f"labelled PII set {path} has no rows")
    return rows


def _overlaps(a: PiiFinding | _Span, b: _Span) -> bool:
    return a.start < b.end and b.start < a.end


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": round(p, 4),
        "recall": round(r, 4),
        "f1": round(2 * p * r / (p + r) if p + r else 0.0, 4),
    }


def measure_pii(
    path: str | Path | None = None, config: PolicyConfig | PiiConfig | None = None
) -> dict[str, Any]:
    """Run :func:`detect_pii` over a labelled set; per-detector and overall precision/recall, latency.

    ``path`` defaults to the shipped set, ``config`` to :data:`BENCH_PII_CONFIG`. Returns
    ``{"texts", "detectors": {name: {tp, fp, fn, precision, recall, f1}}, "overall": {...},
    "latency_ms": {"mean", "p50", "p95", "max"}, "errors": [first false positives/negatives]}``.
    """
    rows = _load(Path(path) if path is not None else default_pii_set())
    cfg = config if config is not None else BENCH_PII_CONFIG
    counts: dict[str, list[int]] = {}
    overall = [0, 0, 0]
    latencies: list[float] = []
    errors: list[dict[str, str]] = []
    detect_pii("warm-up", cfg)  # compile outside the timed loop
    for text, gold in rows:
        t0 = time.perf_counter()
        found = detect_pii(text, cfg)
        latencies.append((time.perf_counter() - t0) * 1000)
        for f in found:
            c = counts.setdefault(f.detector, [0, 0, 0])
            if any(_overlaps(f, g) and g.detector == f.detector for g in gold):
                c[0] += 1
            else:
                c[1] += 1
                if len(errors) < 50:
                    errors.append(
                        {"type": "fp", "detector": f.detector, "span": text[f.start : f.end], "text": text}
                    )
            overall[0 if any(_overlaps(f, g) for g in gold) else 1] += 1
        for g in gold:
            c = counts.setdefault(g.detector, [0, 0, 0])
            if not any(_overlaps(f, g) and f.detector == g.detector for f in found):
                c[2] += 1
                if len(errors) < 50:
                    errors.append(
                        {"type": "fn", "detector": g.detector, "span": text[g.start : g.end], "text": text}
                    )
            if not any(_overlaps(f, g) for f in found):
                overall[2] += 1
    latencies.sort()
    n = len(latencies)
    return {
        "texts": len(rows),
        "detectors": {name: _prf(*c) for name, c in sorted(counts.items())},
        "overall": _prf(*overall),
        "latency_ms": {
            "mean": round(sum(latencies) / n, 4),
            "p50": round(latencies[n // 2], 4),
            "p95": round(latencies[min(n - 1, int(n * 0.95))], 4),
            "max": round(latencies[-1], 4),
        },
        "errors": errors,
    }


__all__ = ["BENCH_PII_CONFIG", "default_pii_set", "measure_pii"]
