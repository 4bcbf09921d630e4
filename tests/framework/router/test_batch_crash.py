"""A real ``edgeroute sync --batch-api`` killed between submit and the job's name being stored, and
halfway through writing results; restarted, every document is in the cloud index once, and the
emulator's record shows no row was submitted twice and nothing private left."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from test_outbox_crash import _cli, _depth, _env, _index_offline

from edgeroute.framework.settings import build_engine, resolve_settings
from edgeroute.framework.testing.emulator import GeminiEmulator
from edgeroute.framework.testing.emulator_batch import BatchScript

N_DOCS = 30
# The child dies with os._exit (no cleanup, no finally, like kill -9) at the point KILL_AT names.
_KILLED_CLI = """
import os
from edgeroute.framework.cloud import batch
from edgeroute.framework.router import batch_drain
at = os.environ["KILL_AT"]
if at == "submit":  # the job exists at the service; its name never reaches the outbox
    create = batch.BatchEmbedder.asubmit
    async def asubmit(self, *a, **k):
        await create(self, *a, **k)
        os._exit(9)
    batch.BatchEmbedder.asubmit = asubmit
elif at == "results":  # two chunks of results stored, the second chunk's rows not yet completed
    batch_drain.WRITE_CHUNK = 4
    write = batch_drain.write_index
    done = []
    async def write_index(*a, **k):
        await write(*a, **k)
        done.append(1)
        if len(done) == 2:
            os._exit(9)
    batch_drain.write_index = write_index
from edgeroute.framework.cli import main
main()
"""


def _corpus(tmp_path: Path) -> tuple[Path, set[str], list[str]]:
    rows, eligible, private = [], set(), []
    for i in range(N_DOCS):
        text = f"note {i} about trail running and shoe fitting, part {i}"
        if i % 5 == 0:
            text += f"; call the customer at +1 415 555 {1000 + i}"  # PII: never eligible for the cloud
            private.append(text)
        else:
            eligible.add(f"n{i}")
        rows.append({"_id": f"n{i}", "title": f"note {i}", "text": text})
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path, eligible, private


def _batch_sync(
    store: Path, emu: GeminiEmulator, *extra: str, kill_at: str | None = None
) -> subprocess.CompletedProcess[str]:
    args = ["sync", "--batch-api", "--poll-interval", "0.05", "--job-size", "8", "--json", *extra]
    cmd = [sys.executable, "-c", _KILLED_CLI, *args] if kill_at else _cli(*args)
    env = _env(store, emu, **({"KILL_AT": kill_at} if kill_at else {}))
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)


def _check_exactly_once(store: Path, emu: GeminiEmulator, eligible: set[str], private: list[str]) -> None:
    with build_engine(resolve_settings(env=_env(store, emu)), read_only=True) as engine:
        cloud = engine.store.get_collection("crash.cloud")
        assert set(cloud.ids()) == eligible and cloud.count() == len(eligible)  # each once, none missing
        assert engine.outbox.depth() == 0 and engine.status()["batch_jobs_open"] == 0
    sent = Counter(p["text"] for job in emu.batches.created for item in job["parts"] for p in item)
    assert len(sent) == len(eligible) and set(sent.values()) == {1}  # no row in two jobs
    assert not any(t in s for s in sent for t in private)
    assert not any(
        t in p.get("text", "") for r in emu.requests for c in r["parts"] for p in c for t in private
    )
    assert emu.batches.live == []


@pytest.mark.parametrize("kill_at", ["submit", "results"])
def test_a_killed_batch_drainer_resumes_its_jobs_and_writes_each_document_once(
    tmp_path: Path, kill_at: str
) -> None:
    corpus, eligible, private = _corpus(tmp_path)
    store = tmp_path / "store"
    with GeminiEmulator(record_path=tmp_path / "sent.jsonl") as emu:
        emu.batches.default = BatchScript(polls=1)
        index = _index_offline(corpus, store, emu)
        assert json.loads(index.stdout)["queued"] == len(eligible) == _depth(store / "outbox.sqlite")
        killed = _batch_sync(store, emu, kill_at=kill_at)
        assert killed.returncode == 9, killed.stderr
        created = len(emu.batches.created)
        assert created >= 1
        if kill_at == "submit":
            assert created == 1  # the job was made; the drainer died before it stored the name
        restarted = _batch_sync(store, emu)
        assert restarted.returncode == 0, restarted.stderr
        report = json.loads(restarted.stdout.splitlines()[-1])
        assert report["jobs_resumed"] >= 1 and report["remaining"] == 0 and report["jobs_open"] == 0
        if kill_at == "results":
            # Only the chunks not yet completed were written again; the job was not submitted again.
            assert report["written"] == len(eligible) - 4
        _check_exactly_once(store, emu, eligible, private)
