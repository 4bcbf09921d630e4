"""`edgeroute sync --batch-api` as a user meets it: --no-wait leaves a job open (exit 3, shown by
`status`), the next run polls it to the end, and --watch is refused with it."""

from __future__ import annotations

import json
from pathlib import Path

from test_cli_dead_letters import cli

from edgeroute.framework.testing.emulator import GeminiEmulator
from edgeroute.framework.testing.emulator_batch import BatchScript


def test_no_wait_then_resume_then_status(tmp_path: Path, emu: GeminiEmulator) -> None:
    store, folder = tmp_path / "store", tmp_path / "docs"
    folder.mkdir()
    for i in range(5):
        (folder / f"n{i}.md").write_text(f"# Note {i}\nPublic note {i} about espresso machines.\n")
    index = cli(store, emu, "index", str(folder), "-c", "kbase", "--sensitivity", "public", "--offline")
    assert index.returncode == 3, index.stderr  # queued for the cloud
    emu.batches.default = BatchScript(polls=3)

    first = cli(store, emu, "sync", "-c", "kbase", "--batch-api", "--no-wait", "--json")
    assert first.returncode == 3, first.stderr  # a job is still open
    line = json.loads(first.stdout.splitlines()[-1])
    assert (line["jobs_submitted"], line["jobs_open"], line["written"], line["in_flight"]) == (1, 1, 0, 5)
    status = cli(store, emu, "status", "-c", "kbase")
    assert "batch jobs open │ 1" in status.stdout and "sync --batch-api" in status.stdout

    second = cli(store, emu, "sync", "-c", "kbase", "--batch-api", "--poll-interval", "0.05")
    assert second.returncode == 0, second.stderr
    assert "5 sent" in second.stdout and "1 resumed" in second.stdout and "0 still open" in second.stdout
    assert len(emu.batches.created) == 1 and emu.batches.live == []
    assert json.loads(cli(store, emu, "status", "-c", "kbase", "--json").stdout)["cloud_count"] == 5

    refused = cli(store, emu, "sync", "-c", "kbase", "--batch-api", "--watch")
    assert refused.returncode == 2 and "--watch" in refused.stderr
