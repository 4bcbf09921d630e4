"""One writer per embedded store, as a user meets it: concurrent `edgeroute` processes take turns on
the store's writer lock, a writer kept out too long exits 1 naming the holder, readers never wait, and
`--chroma-url` puts the vectors on a `chroma run` server (no lock) while the outbox stays in --store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lock_helpers import CAN_SEE_WAITERS, start_together
from server_helpers import chroma_run

from edgeroute.framework.store.chroma import VectorStore
from edgeroute.framework.testing.emulator import GeminiEmulator

CLI = [sys.executable, "-c", "from edgeroute.framework.cli import main; main()"]

READ_BACK = """
import json, sys, chromadb
client = chromadb.PersistentClient(path=sys.argv[1])
out = {}
for name in sys.argv[2:]:
    col = client.get_collection(name)
    out[name] = [col.count(), len(col.get(include=["embeddings"])["embeddings"])]
print(json.dumps(out))
"""


def env_for(store: Path, emu: GeminiEmulator | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEROUTE_", "GEMINI_", "GOOGLE_"))}
    env.update(EDGEROUTE_STORE=str(store), EDGEROUTE_EDGE="hashing", NO_PROXY="127.0.0.1,localhost")
    if emu is not None:
        env.update(GEMINI_API_KEY="lock-key", GOOGLE_GEMINI_BASE_URL=emu.base_url)
    env.update(extra)
    return env


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=300)
    proc.stderr = " ".join(proc.stderr.split())  # rich wraps long lines
    return proc


def run_at_once(
    env: dict[str, str], commands: list[list[str]], meet_at: Path | None = None
) -> list[tuple[int, str, str]]:
    """Run ``commands`` side by side; with ``meet_at`` (a store), hold its writer lock until all of them
    wait for it, so they surely meet there however slowly each starts."""

    def start() -> list[subprocess.Popen[str]]:
        return [
            subprocess.Popen([*CLI, *c], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for c in commands
        ]

    procs = start() if meet_at is None else start_together(meet_at, start)
    outs = [p.communicate(timeout=600) for p in procs]
    return [(p.returncode, o, " ".join(e.split())) for p, (o, e) in zip(procs, outs, strict=True)]


def folders(tmp_path: Path, n: int, files: int) -> list[Path]:
    roots = []
    for f in range(n):
        root = tmp_path / f"team{f}"
        root.mkdir()
        for i in range(files):
            (root / f"t{f}-page{i}.md").write_text(
                f"# Team {f} page {i}\n\nHow team {f} handles request type {i} and its follow-up {i % 7}.\n"
            )
        roots.append(root)
    return roots


def read_back(store: Path, *names: str) -> dict[str, list[int]]:
    """count() and every stored embedding, read in a fresh process (as the corruption showed itself)."""
    done = subprocess.run(
        [sys.executable, "-c", READ_BACK, str(store), *names], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, list[int]] = json.loads(done.stdout)
    return result


def test_three_concurrent_index_then_three_concurrent_sync_take_turns(tmp_path: Path) -> None:
    """The issue's target: every process exits 0 or 3, both indexes count every document, and Chroma
    reads every stored embedding back."""
    store = tmp_path / "store"
    roots = folders(tmp_path, 3, 40)
    env = env_for(store, EDGEROUTE_LOCK_TIMEOUT_S="120")  # a loaded CI box: turns, never a timeout
    indexed = run_at_once(
        env,
        [["index", str(r), "-c", "handbook", "--sensitivity", "public", "--json"] for r in roots],
        meet_at=store if CAN_SEE_WAITERS else None,
    )
    assert [code for code, _, _ in indexed] == [3, 3, 3], [e for _, _, e in indexed]  # no cloud: queued
    waits = [json.loads(out)["lock_wait_s"] for _, out, _ in indexed]
    assert sum(1 for w in waits if w > 0) >= (3 if CAN_SEE_WAITERS else 1)  # they did meet at the lock
    with GeminiEmulator() as emu:
        synced = run_at_once(
            env_for(store, emu, EDGEROUTE_LOCK_TIMEOUT_S="120"),
            [["sync", "-c", "handbook", "--batch-size", "4", "--json"] for _ in range(3)],
        )
    assert all(code in (0, 3) for code, _, _ in synced), synced
    reports = [json.loads(out.splitlines()[-1]) for _, out, _ in synced]
    assert sum(r["written"] for r in reports) == 120  # each document sent once, by one of them
    assert read_back(store, "handbook.edge", "handbook.cloud") == {
        "handbook.edge": [120, 120],
        "handbook.cloud": [120, 120],
    }


def test_a_writer_kept_out_exits_1_naming_the_holder_and_readers_do_not_wait(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (root,) = folders(tmp_path, 1, 3)
    env = env_for(store)
    assert run(env, "index", str(root), "-c", "handbook").returncode == 3  # no cloud: queued
    holder = VectorStore.persistent(store)  # this test process is now the store's writer
    try:
        t0 = time.monotonic()
        kept_out = run(env, "index", str(root), "-c", "handbook", "--lock-timeout", "1")
        assert kept_out.returncode == 1, kept_out.stderr
        assert time.monotonic() - t0 >= 1.0
        assert f"pid {os.getpid()}" in kept_out.stderr and "--chroma-url" in kept_out.stderr
        assert "chroma run" in kept_out.stderr
        by_env = run({**env, "EDGEROUTE_LOCK_TIMEOUT_S": "0"}, "delete", "t0-page0.md#0", "-c", "handbook")
        assert by_env.returncode == 1 and "being written by" in by_env.stderr
        # Readers take no lock: with a zero timeout they would fail at once if they tried.
        quick = {**env, "EDGEROUTE_LOCK_TIMEOUT_S": "0"}
        status = run(quick, "status", "-c", "handbook", "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["edge_count"] == 3
        assert run(quick, "query", "request type 1", "-c", "handbook", "--json").returncode == 0
        listed = run(quick, "collections", "--store", str(store), "--json")
        assert listed.returncode == 0 and {"handbook.edge"} <= {c["name"] for c in json.loads(listed.stdout)}
    finally:
        holder.close()
    assert run(env, "index", str(root), "-c", "handbook", "--lock-timeout", "0").returncode == 3


def test_sync_watch_lets_go_between_rounds(tmp_path: Path) -> None:
    store = tmp_path / "store"
    roots = folders(tmp_path, 2, 3)
    env = env_for(store)
    assert run(env, "index", str(roots[0]), "-c", "handbook", "--offline").returncode == 3
    watcher = subprocess.Popen(
        [*CLI, "sync", "--watch", "--interval", "1", "-c", "handbook", "--json"],
        # A cloud that is configured but offline: every round fails its sends and keeps the rows queued.
        env={
            **env,
            "EDGEROUTE_OFFLINE": "1",
            "GEMINI_API_KEY": "k",
            "GOOGLE_GEMINI_BASE_URL": "http://127.0.0.1:9",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        watcher.stdout.readline()  # one round done
        # Beside the watcher, another writer gets its turn within the default wait.
        beside = run(env, "index", str(roots[1]), "-c", "handbook", "--offline")
        assert beside.returncode == 3, beside.stderr
        after = json.loads(watcher.stdout.readline())  # and the watcher goes on, rows still queued
        assert after["remaining"] >= 3
    finally:
        watcher.terminate()
        watcher.wait(timeout=60)
    assert watcher.returncode == 3  # documents still queued (offline)
    assert read_back(store, "handbook.edge") == {"handbook.edge": [6, 6]}


@pytest.mark.server
def test_chroma_url_puts_the_vectors_on_a_server_and_keeps_state_in_store(tmp_path: Path) -> None:
    state = tmp_path / "state"
    roots = folders(tmp_path, 3, 10)
    with chroma_run(tmp_path / "chroma-data", tmp_path / "chroma.log") as port:
        url = f"http://127.0.0.1:{port}"
        env = env_for(state, EDGEROUTE_LOCK_TIMEOUT_S="0")  # no file lock is taken with a server
        indexed = run_at_once(
            env,
            [["index", str(r), "-c", "handbook", "--chroma-url", url, "--offline", "--json"] for r in roots],
        )
        assert [code for code, _, _ in indexed] == [3, 3, 3], [e for _, _, e in indexed]
        assert all(json.loads(out)["lock_wait_s"] == 0 for _, out, _ in indexed)
        assert not (state / "chroma.sqlite3").exists()  # the vectors are on the server ...
        assert (state / "outbox.sqlite").is_file()  # ... the outbox stays in --store
        status = run(env, "status", "-c", "handbook", "--chroma-url", url, "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["edge_count"] == 30
        assert json.loads(status.stdout)["outbox_depth"] == 30
        hit = run({**env, "EDGEROUTE_CHROMA_URL": url}, "query", "team 2 page 4", "-c", "handbook", "--json")
        assert hit.returncode == 0, hit.stderr
        assert json.loads(hit.stdout)["hits"][0]["id"].startswith("t2-page4")
        listed = run(env, "collections", "--chroma-url", url, "--json")
        assert listed.returncode == 0 and {"handbook.edge"} <= {c["name"] for c in json.loads(listed.stdout)}
        server = VectorStore.http("127.0.0.1", port)
        assert server.get_collection("handbook.edge").count() == 30
        server.close()
    unreachable = run(env, "status", "-c", "handbook", "--chroma-url", url)
    assert unreachable.returncode == 1 and "chroma run" in unreachable.stderr
