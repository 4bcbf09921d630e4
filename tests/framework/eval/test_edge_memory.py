"""``python -m edgeroute.framework.eval.edge_memory``: the step-by-step resident memory of a fresh query
process, here on the tiny model (the real model's figures are in docs/edge-model.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from edgeroute.framework.eval.edge_memory import measure, table
from edgeroute.framework.testing.tiny_model import build_tiny_model

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")


def test_reports_every_step_in_a_fresh_process_and_the_peak(tmp_path: Path) -> None:
    model = build_tiny_model(tmp_path / "tiny")
    result = measure(str(model), queries=3, threads=1)
    steps = [s["step"] for s in result["steps"]]
    assert steps[:4] == ["python", "numpy", "onnxruntime", "edge modules"]
    assert steps[4].startswith("tokenizer (") and steps[5:] == [
        "onnx session (weights)",
        "first query",
        "3 queries",
    ]
    peaks = [s["VmHWM"] for s in result["steps"]]
    assert peaks == sorted(peaks) and result["peak_mb"] == peaks[-1] > 0
    # Importing the edge path loads none of the heavy modules (chromadb, pydantic, torch, tokenizers, ...).
    assert result["heavy_modules"] == []
    assert "peak RSS" in table(result) and result["mappings_mb"]
