"""Every example runs end to end (emulated Gemini, small inputs), so none of them can rot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

CASES = {
    "quickstart.py": (["--edge", "tiny"], ["indexed 4 chunks", "route=", "best: "]),
    "langchain_rag.py": (
        ["--sensitivity", "restricted"],
        ["[edge/edge]", "decision: edge ['privacy.sensitivity']"],
    ),
    "llamaindex_query_engine.py": (["--stakes", "high"], ["bread:", "route=hybrid", "response:"]),
    "agent_tools.py": (
        [],
        ["-> weather_forecast", "['privacy.pii']", "no tool: ask the user", "tools to bind"],
    ),
    "enterprise_privacy.py": (
        [],
        ["kept out of the cloud index: 2", "['privacy.pii']", "cloud saw private text: nothing"],
    ),
    "multimodal.py": (["--limit", "6"], ["indexed 6 photos", "route cloud ['modality.cloud_required']"]),
}


@pytest.mark.parametrize("script", sorted(CASES))
def test_example_runs(script: str, tmp_path: Path) -> None:
    extra, expected = CASES[script]
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    env["NO_PROXY"] = "127.0.0.1,localhost"
    args = [sys.executable, str(EXAMPLES / script), "--emulator"]
    if "--edge" not in extra:
        args += ["--edge", "hashing"]
    proc = subprocess.run(
        args + extra, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for needle in expected:
        assert needle in proc.stdout, f"{needle!r} missing from:\n{proc.stdout}"


def test_every_example_is_tested() -> None:
    scripts = {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(CASES)
