"""Dead letters as a user meets them: `edgeroute status` shows them, `sync` no longer sends them and
exits 3, `sync --retry-dead` queues them again and drains."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from edgeroute.framework.documents import Document
from edgeroute.framework.router.outbox import Outbox
from edgeroute.framework.testing.emulator import GeminiEmulator


def cli(store: Path, emu: GeminiEmulator, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEROUTE_", "GEMINI_", "GOOGLE_"))}
    env.update(
        EDGEROUTE_STORE=str(store),
        EDGEROUTE_EDGE="hashing",
        NO_PROXY="127.0.0.1,localhost",
        GEMINI_API_KEY="dead-key",
        GOOGLE_GEMINI_BASE_URL=emu.base_url,
    )
    cmd = [sys.executable, "-c", "from edgeroute.framework.cli import main; main()", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    proc.stdout = proc.stdout if "--json" in args else " ".join(proc.stdout.split())  # rich wraps lines
    return proc


def test_status_shows_dead_letters_and_sync_retry_dead_sends_them(
    tmp_path: Path, emu: GeminiEmulator
) -> None:
    store, folder = tmp_path / "store", tmp_path / "docs"
    folder.mkdir()
    (folder / "refunds.md").write_text("# Refunds\nRefunds are processed within five working days.\n")
    assert cli(store, emu, "index", str(folder), "-c", "kbase", "--sensitivity", "public").returncode == 0
    # A document the cloud refused three times (say, before it was chunked), now fixed.
    with Outbox(store / "outbox.sqlite") as box:
        box.enqueue(
            "kbase", [Document("extra", "Exchanges are free within thirty days.", sensitivity="public")]
        )
        box._db.execute(
            "UPDATE outbox SET state = 'dead', attempts = 3, error_kind = 'permanent', "
            "last_error = 'CloudRejectedError: Gemini answered 400 INVALID_ARGUMENT: input token count'"
        )

    status = cli(store, emu, "status", "-c", "kbase", "--json")
    assert status.returncode == 0, status.stderr
    figures = json.loads(status.stdout)
    assert figures["outbox_dead"] == 1 and figures["outbox_depth"] == 0
    assert figures["outbox"]["dead_by_collection"] == {"kbase": 1}
    text = cli(store, emu, "status", "-c", "kbase")
    assert "dead letters" in text.stdout and "--retry-dead" in text.stdout

    sent = emu.request_count
    plain = cli(store, emu, "sync", "-c", "kbase", "--json")
    assert plain.returncode == 3, plain.stderr  # not everything reached the cloud index
    assert json.loads(plain.stdout.splitlines()[-1])["dead"] == 1
    assert emu.request_count == sent  # a dead letter is not sent again

    retry = cli(store, emu, "sync", "-c", "kbase", "--retry-dead", "--json")
    assert retry.returncode == 0, retry.stderr
    line = json.loads(retry.stdout.splitlines()[-1])
    assert line["retried_dead"] == 1 and line["written"] == 1 and line["dead"] == 0
    assert json.loads(cli(store, emu, "status", "-c", "kbase", "--json").stdout)["outbox_dead"] == 0
