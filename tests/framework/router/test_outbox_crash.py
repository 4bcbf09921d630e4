"""kill -9 a real ``edgeroute sync`` mid-run, restart it: every eligible document is in the cloud index once."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgeroute.framework.settings import build_engine, resolve_settings
from edgeroute.framework.testing.emulator import GeminiEmulator

N_DOCS = 60


def _ctrl_c_enabled() -> None:
    """In the child: Ctrl-C's default action, which a shell's background job (``cmd &``) starts ignored
    and which a Python child then keeps ignoring, so the SIGINT these tests send would do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _env(store: Path, emu: GeminiEmulator, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEROUTE_", "GEMINI_", "GOOGLE_"))}
    env.update(
        EDGEROUTE_STORE=str(store),
        EDGEROUTE_COLLECTION="crash",
        EDGEROUTE_EDGE="hashing",
        EDGEROUTE_CACHE="off",
        GEMINI_API_KEY="crash-key",
        GOOGLE_GEMINI_BASE_URL=emu.base_url,
        NO_PROXY="127.0.0.1,localhost",
        **extra,
    )
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from edgeroute.framework.cli import main; main()", *args]


def _watch(store: Path, emu: GeminiEmulator, *extra: str, interval: str = "0.2") -> subprocess.Popen[str]:
    """``edgeroute sync --watch --interval INTERVAL --json EXTRA...`` in the background, its output piped."""
    return subprocess.Popen(
        _cli("sync", "--watch", "--interval", interval, "--json", *extra),
        env=_env(store, emu),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ctrl_c_enabled,
    )


def _depth(outbox: Path) -> int:
    with sqlite3.connect(outbox, timeout=10) as db:
        return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])


def _index_offline(path: Path, store: Path, emu: GeminiEmulator) -> subprocess.CompletedProcess[str]:
    """``edgeroute index PATH --offline`` as public documents: done at the edge, cloud work queued."""
    index = subprocess.run(
        _cli("index", str(path), "--offline", "--sensitivity", "public", "--json"),
        env=_env(store, emu),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert index.returncode == 3, index.stderr
    return index


def test_killed_sync_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    rows = []
    for i in range(N_DOCS):
        text = f"note {i} about trail running and shoe fitting, part {i}"
        if i % 6 == 0:
            text += f"; call the customer at +1 415 555 {1000 + i}"  # PII: never eligible for the cloud
        rows.append({"_id": f"n{i}", "title": f"note {i}", "text": text})
    corpus.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    eligible = {f"corpus.jsonl/n{i}" for i in range(N_DOCS) if i % 6 != 0} | {
        f"n{i}" for i in range(N_DOCS) if i % 6 != 0
    }
    store = tmp_path / "store"
    outbox = store / "outbox.sqlite"

    with GeminiEmulator(latency_ms=120) as emu:
        index = _index_offline(corpus, store, emu)  # done at the edge, cloud work queued
        queued = json.loads(index.stdout)["queued"]
        assert queued == _depth(outbox) and 0 < queued < N_DOCS
        assert emu.request_count == 0

        kills = 0
        for _ in range(3):  # kill at three different points
            before = _depth(outbox)
            if before == 0:
                break
            proc = subprocess.Popen(
                _cli("sync", "--batch-size", "3"),
                env=_env(store, emu),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            deadline = time.monotonic() + 60
            while _depth(outbox) >= before and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.1 * kills)  # land somewhere else inside the next batch each time
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
            proc.wait(timeout=30)
        assert kills >= 1, "sync finished before it could be killed; raise the emulator latency"
        assert 0 < _depth(outbox) < queued

        final = subprocess.run(
            _cli("sync", "--json"), env=_env(store, emu), capture_output=True, text=True, timeout=120
        )
        assert final.returncode == 0, final.stderr
        assert json.loads(final.stdout.splitlines()[-1])["remaining"] == 0

        with build_engine(resolve_settings(env=_env(store, emu)), read_only=True) as engine:
            cloud = engine.store.get_collection("crash.cloud")
            edge = engine.store.get_collection("crash.edge")
            all_ids = [r["_id"] for r in rows]
            in_cloud = {r.id for r in cloud.get([f"corpus.jsonl/{i}" for i in all_ids] + all_ids)}
            assert cloud.count() == len(in_cloud) == queued  # exactly once each
            assert in_cloud <= eligible and len(in_cloud) == N_DOCS - len(range(0, N_DOCS, 6))
            assert edge.count() == N_DOCS
            assert engine.outbox.depth() == 0


def test_sync_watch_drains_in_the_background_until_interrupted(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    for i in range(4):
        (notes / f"n{i}.txt").write_text(f"public note {i} about espresso machines\n")
    store = tmp_path / "store"
    with GeminiEmulator() as emu:
        _index_offline(notes, store, emu)  # queued: edge done, cloud pending
        assert _depth(store / "outbox.sqlite") == 4
        proc = _watch(store, emu)
        assert proc.stdout is not None
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
        reader.start()
        # Until the queue is empty and at least one more (empty) round reported, however slowly a
        # loaded machine gets there.
        deadline = time.monotonic() + 120
        while (_depth(store / "outbox.sqlite") or sum(x.startswith("{") for x in lines) < 2) and (
            time.monotonic() < deadline and proc.poll() is None
        ):
            time.sleep(0.1)
        assert proc.poll() is None, "--watch must keep running"
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        reader.join(30)
        assert proc.returncode == 0
        reports = [json.loads(line) for line in lines if line.startswith("{")]
        assert sum(r["written"] for r in reports) == 4 and len(reports) >= 2


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_sync_watch_finishes_the_round_in_flight_when_stopped(tmp_path: Path, sig: signal.Signals) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    for i in range(3):
        (notes / f"n{i}.txt").write_text(f"public note {i} about grinders\n")
    store = tmp_path / "store"
    with GeminiEmulator(latency_ms=1500) as emu:
        _index_offline(notes, store, emu)
        # One document per cloud call, so the round makes three calls of 1.5 s each; and 30 s between
        # rounds, so however late the signal lands on a loaded machine no second round has begun.
        proc = _watch(store, emu, "--batch-size", "1", interval="30")
        deadline = time.monotonic() + 60
        while not emu.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert emu.requests, "the watch never called the cloud"
        proc.send_signal(sig)  # lands while the round's second cloud call is in flight (3 s of them left)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-2000:]
        assert "Traceback" not in err
        reports = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert len(reports) == 1 and reports[0]["written"] == 3  # the round finished, no new one began
        assert _depth(store / "outbox.sqlite") == 0
