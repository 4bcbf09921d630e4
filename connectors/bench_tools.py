"""Measure agent tool routing: top-1 accuracy, accuracy at the "unsure" threshold, latency per decision.

The labelled set ships with the package (``edgeroute/connectors/data``): 14 tools and 320 requests,
40 of which should get no tool. Thresholds are fitted on the ``fit`` half and every figure is
measured on the held-out ``test`` half. Run it with ``python -m edgeroute.connectors.bench_tools
[MODEL_DIR]`` (``--tiny`` for the generated test model, ``--hashing`` for the hashing embedder).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..framework.embedder import Embedder
from ..framework.errors import ConfigurationError

DEFAULT_TOOL_DATA = Path(__file__).resolve().parent / "data"


def _installed_data() -> Path:
    return DEFAULT_TOOL_DATA


def load_tool_data(data_dir: str | Path | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The tool definitions (``tools.json``) and the labelled requests (``tool_requests.jsonl``)."""
    base = Path(data_dir) if data_dir is not None else _installed_data()
    tools_file, requests_file = base / "tools.json", base / "tool_requests.jsonl"
    if not tools_file.is_file() or not requests_file.is_file():
        raise ConfigurationError(
            f"tool-routing data not found in {base} (need tools.json and tool_requests.jsonl); "
            "pass data_dir= pointing at edgeroute/connectors/data"
        )
    spec = json.loads(tools_file.read_text(encoding="utf-8"))
    rows = [
        json.loads(line) for line in requests_file.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    return spec, rows


def _percentile(values: list[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def measure_tool_routing(
    embedder: Embedder, *, data_dir: str | Path | None = None, repeats: int = 1
) -> dict[str, Any]:
    """Fit a :class:`~edgeroute.connectors.tools.ToolRouter` on the ``fit`` split and measure the ``test`` split.

    Returns ``top1_accuracy`` (best tool right, over requests that have a tool), ``accuracy_at_threshold``
    (the decision right over all test requests: the tool when confident, "unsure" for no-tool ones),
    ``coverage`` (share answered with a tool), ``answered_precision``, ``no_tool_recall``,
    ``latency_p50_ms``/``latency_p95_ms`` per decision (one request at a time, warm), and the fit.
    """
    from .tools import ToolRouter

    spec, rows = load_tool_data(data_dir)
    router = ToolRouter(embedder)
    for t in spec["tools"]:
        router.register(
            t["name"], t["description"], t["examples"], sensitivity=t.get("sensitivity", "internal")
        )
    router.add_no_tool_examples(spec.get("no_tool_examples", []))
    fit_rows = [(r["request"], r["tool"]) for r in rows if r["split"] == "fit"]
    test_rows = [(r["request"], r["tool"]) for r in rows if r["split"] == "test"]
    fit = router.fit(fit_rows)
    router.route(test_rows[0][0])  # warm-up: first-call allocations are not a decision's latency

    latencies: list[float] = []
    top1 = right = answered = answered_right = no_tool = no_tool_right = 0
    for _ in range(max(1, repeats)):
        top1 = right = answered = answered_right = no_tool = no_tool_right = 0
        for request, label in test_rows:
            t0 = time.perf_counter()
            d = router.route(request, k=1)
            latencies.append((time.perf_counter() - t0) * 1000)
            if label is not None:
                top1 += d.candidates[0][0] == label
            else:
                no_tool += 1
                no_tool_right += d.unsure
            if d.unsure:
                right += label is None
            else:
                answered += 1
                answered_right += d.top == label
                right += d.top == label
    with_tool = sum(1 for _, label in test_rows if label is not None)
    return {
        "space": embedder.space.fingerprint,
        "tools": len(spec["tools"]),
        "fit_requests": len(fit_rows),
        "test_requests": len(test_rows),
        "top1_accuracy": top1 / with_tool,
        "accuracy_at_threshold": right / len(test_rows),
        "coverage": answered / len(test_rows),
        "answered_precision": answered_right / answered if answered else 0.0,
        "no_tool_recall": no_tool_right / no_tool if no_tool else 0.0,
        "latency_p50_ms": _percentile(latencies, 50),
        "latency_p95_ms": _percentile(latencies, 95),
        "threshold": fit.threshold,
        "min_margin": fit.min_margin,
        "fit_accuracy": fit.accuracy,
    }


def make_embedder(
    kind: str = "edge", model_dir: str | Path | None = None, threads: int | None = None
) -> Embedder:
    """The embedder to measure: ``edge`` (EmbeddingGemma), ``tiny`` (generated test model) or ``hashing``."""
    if kind == "hashing":
        from ..framework.testing.hashing import HashingEmbedder

        return HashingEmbedder(256)
    from ..framework.edge.embedder import EdgeEmbedder

    if kind == "tiny":
        from ..framework.testing.tiny_model import build_tiny_model

        return EdgeEmbedder.load(build_tiny_model(Path(tempfile.mkdtemp()) / "tiny"))
    if kind != "edge":
        raise ConfigurationError(f"embedder must be 'edge', 'tiny' or 'hashing', got {kind!r}")
    return EdgeEmbedder.load(model_dir, threads=threads)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edgeroute.connectors.bench_tools", description=__doc__)
    p.add_argument(
        "model_dir", nargs="?", default=None, help="EmbeddingGemma model directory (default: cache)"
    )
    p.add_argument("--tiny", action="store_true", help="use the generated tiny test model")
    p.add_argument("--hashing", action="store_true", help="use the hashing embedder (no model)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--repeats", type=int, default=1)
    args = p.parse_args(argv)
    kind = "hashing" if args.hashing else "tiny" if args.tiny else "edge"
    embedder = make_embedder(kind, args.model_dir, args.threads)
    out = measure_tool_routing(embedder, data_dir=args.data_dir, repeats=args.repeats)
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
