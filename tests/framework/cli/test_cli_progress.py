"""Progress bars on a terminal (a real pseudo-terminal), none with --json or through a pipe."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest


def run_on_tty(args: list[str], env: dict[str, str]) -> tuple[int, bytes]:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from edgeroute.framework.cli import main; main()", *args],
        stdout=slave,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return proc.wait(timeout=120), out


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEROUTE_", "GEMINI_", "GOOGLE_"))}
    out.update(EDGEROUTE_STORE=str(tmp_path / "store"), EDGEROUTE_EDGE="hashing", TERM="xterm", COLUMNS="120")
    return out


def test_index_shows_files_and_edge_embedding_on_a_terminal_only(tmp_path: Path, env: dict[str, str]) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    for i in range(3):
        (notes / f"n{i}.txt").write_text(f"note {i} about trail shoes")
    code, out = run_on_tty(["index", str(notes), "--sensitivity", "confidential"], env)
    assert code == 0, out
    assert b"reading files" in out and b"edge embedding" in out
    code, out = run_on_tty(["index", str(notes), "--sensitivity", "confidential", "--json"], env)
    assert code == 0 and b"edge embedding" not in out and b"reading files" not in out
    piped = subprocess.run(
        [sys.executable, "-c", "from edgeroute.framework.cli import main; main()", "index", str(notes)],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert b"edge embedding" not in piped.stderr + piped.stdout
