"""What the pattern layer costs per 100 KB of text, on whitespace-free text and on prose.

    python -m edgeroute.framework.eval.bench_scan [--kb 100] [--runs 5] [--json]

Reports the median of ``runs`` timings, in milliseconds per 100 KB, for:

- ``find_secrets``: the secret rules (:mod:`edgeroute.framework.pii.secrets`) as they are now;
- ``generic_before``: gitleaks' generic-api-key regex as edgeroute ported it before (it starts with a
  lazy ``[\\w.-]{0,50}?`` prefix), alone, on the same text in the same run: the cost that was removed;
- ``pattern_layer``: :func:`~edgeroute.framework.pii.patterns.pattern_spans` with the default policy,
  everything the detector runs besides the model (PII patterns, validators and secret rules).

The whitespace-free text is random letters, digits and ``+/=-_.``, the shape of minified code and
base64 blobs; the prose is the project's own documentation, repeated to length.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import string
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from ...policies.config import PiiConfig
from ..pii.patterns import pattern_spans
from ..pii.secrets import _END, find_secrets

GENERIC_BEFORE = re.compile(
    r"(?i:[\w.-]{0,50}?(?:access|auth|(?-i:[Aa]pi|API)|credential|creds|key|passw(?:or)?d|secret|token)"
    r"(?:[ \t\w.-]{0,20})[\s'\"]{0,3}(?:=|>|:{1,3}=|\|\||:|=>|\?=|,)[\x60'\"\s=]{0,5})"
    r"((?i:[\w.=-]{10,150}|[a-z0-9][a-z0-9+/]{11,}={0,3}))" + _END
)
"""The generic rule before this change (commit ec200a7), kept only to measure against."""


def texts(chars: int) -> dict[str, str]:
    rnd = random.Random(0)
    dense = "".join(rnd.choice(string.ascii_letters + string.digits + "+/=-_.") for _ in range(chars))
    docs = Path(__file__).resolve().parents[2] / "docs"
    prose = "\n\n".join(p.read_text(encoding="utf-8") for p in sorted(docs.glob("*.md"))) or "plain prose. "
    return {"whitespace_free": dense, "prose": (prose * (chars // len(prose) + 1))[:chars]}


def _all_secrets(text: str) -> list[tuple[str, int, int]]:
    return list(find_secrets(text))


def _generic_before(text: str) -> list[re.Match[str]]:
    return list(GENERIC_BEFORE.finditer(text))


def _median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def measure_scan_speed(kb: int = 100, runs: int = 5) -> dict[str, Any]:
    """``{text kind: {rule set: ms per 100 KB}}`` for texts of ``kb`` kilobytes (see the module doc)."""
    cfg = PiiConfig()
    scale = 100 / kb
    out: dict[str, Any] = {"kb": kb, "runs": runs}
    for name, text in texts(kb * 1000).items():
        row = {
            "find_secrets": _median_ms(partial(_all_secrets, text), runs),
            "generic_before": _median_ms(partial(_generic_before, text), runs),
            "pattern_layer": _median_ms(partial(pattern_spans, text, cfg, cfg.phone_regions), runs),
        }
        out[name] = {k: round(v * scale, 1) for k, v in row.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--kb", type=int, default=100, help="text size in kilobytes (default 100)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per figure; the median is reported")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    result = measure_scan_speed(args.kb, args.runs)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"milliseconds per 100 KB (median of {args.runs}, {args.kb} KB texts)")
    for name in ("whitespace_free", "prose"):
        row = result[name]
        print(f"  {name:16} " + "  ".join(f"{k} {v:8.1f}" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
