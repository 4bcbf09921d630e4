"""``edgeroute emulator`` and ``edgeroute bench cloud`` from the command line."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from google import genai
from google.genai import types
from typer.testing import CliRunner

from edgeroute.framework.cli import cloud as _  # noqa: F401  (registers the commands)
from edgeroute.framework.cli.app import app


def _ctrl_c_enabled() -> None:
    """In the child: Ctrl-C's default action, which a shell's background job (``cmd &``) starts ignored
    and which a Python child then keeps ignoring, so the SIGINT these tests send would do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_bench_cloud_json() -> None:
    result = CliRunner().invoke(app, ["bench", "cloud", "--json", "--texts", "300", "--calls", "5"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["texts"] == 300 and data["calls"] == 3 and data["overhead_samples"] == 5
    assert data["texts_per_s"] > 0 and data["ingest_s"] > 0.05  # at least one 50 ms round trip


def test_emulator_command_serves_the_sdk(tmp_path: Path) -> None:
    record = tmp_path / "rec.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "edgeroute.framework.cli",
        "emulator",
        "--port",
        "0",
        "--record",
        str(record),
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"}, preexec_fn=_ctrl_c_enabled
    )
    try:
        assert proc.stdout is not None
        url = ""
        deadline = time.monotonic() + 60
        while not url and time.monotonic() < deadline:
            m = re.search(r"http://127\.0\.0\.1:\d+", proc.stdout.readline())
            url = m.group(0) if m else ""
        assert url, "the emulator did not print its address"
        client = genai.Client(api_key="any-key", http_options=types.HttpOptions(base_url=url))
        r = client.models.embed_content(model="gemini-embedding-2-preview", contents="hello")
        assert r.embeddings is not None and len(r.embeddings[0].values or []) == 3072
        assert json.loads(record.read_text().splitlines()[0])["parts"] == [
            [{"kind": "text", "text": "hello"}]
        ]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)


def test_emulator_command_rejects_unknown_fault() -> None:
    result = CliRunner().invoke(app, ["emulator", "--faults", "429,teapot"])
    assert result.exit_code != 0 and "teapot" in result.output


def _emulator(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "edgeroute.framework.cli", "emulator", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    proc.stderr = " ".join(proc.stderr.split())  # rich wraps long lines
    return proc


def test_emulator_on_a_busy_port_is_a_clear_usage_error() -> None:
    from edgeroute.framework.testing.emulator import GeminiEmulator

    with GeminiEmulator() as busy:
        proc = _emulator("--port", str(busy.port))
    assert proc.returncode == 2, proc.stderr
    assert "already in use" in proc.stderr and "--port 0" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_emulator_refuses_a_record_path_it_cannot_write_at_start(tmp_path: Path) -> None:
    proc = _emulator("--port", "0", "--record", str(tmp_path / "missing" / "rec.jsonl"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr, proc.stderr
    (tmp_path / "a-dir").mkdir()
    proc = _emulator("--port", "0", "--record", str(tmp_path / "a-dir"))
    assert proc.returncode == 2 and "is a directory" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_cli_default_fault_list_is_every_kind_and_start_up_skips_the_emulator() -> None:
    from edgeroute.framework.cli.cloud import ALL_FAULTS
    from edgeroute.framework.testing.emulator import FAULT_KINDS

    assert ",".join(FAULT_KINDS) == ALL_FAULTS
    code = "import sys, edgeroute.framework.cli; print('pytest' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split()[0] == "False"
