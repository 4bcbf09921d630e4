"""Every example runs end to end (emulated Gemini, small inputs), so none of them can rot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

CASES = {
    "demo.py": (
        [],
        ["routing decisions", "privacy.pii", "privacy.sensitivity", "private texts found in them: none"],
    ),
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
    "agent_tool_schemas.py": (
        [],
        [
            "get_weather: Get the current weather",
            "Parameters: location: City name or zip code",
            "fit: target",
            "from the MCP listing alone: ['search_files', 'create_event']",
            " -> ",
        ],
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


def test_demo_json_proves_privacy_and_shows_every_route(tmp_path: Path) -> None:
    import json

    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    env["NO_PROXY"] = "127.0.0.1,localhost"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "demo.py"), "--edge", "hashing", "--json"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["private_texts_leaked"] == 0 and doc["private_texts_checked"] >= 5
    by_query = {r["query"]: r for r in doc["queries"]}
    assert {r["route"] for r in doc["queries"]} >= {"edge", "hybrid"}
    pii = next(r for q, r in by_query.items() if "4111" in q)
    assert pii["route"] == "edge" and "privacy.pii" in pii["reasons"]
    offline = doc["queries"][-1]
    assert offline["route"] == "edge" and offline["degraded"]
