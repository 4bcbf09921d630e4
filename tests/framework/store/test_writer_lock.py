"""One writer per embedded store: the writer lock's semantics, with real processes and real Chroma."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgeroute.framework.errors import ConfigurationError, StoreError
from edgeroute.framework.settings import resolve_settings
from edgeroute.framework.store.chroma import VectorStore
from edgeroute.framework.store.lock import (
    LOCK_FILE,
    StoreLockedError,
    acquire_writer_lock,
    holds_lock,
    lock_timeout_from_env,
    read_holder,
)
from edgeroute.framework.testing.hashing import HashingEmbedder

EMB = HashingEmbedder(dims=16)

HOLDER = """
import sys, time
from edgeroute.framework.store.chroma import VectorStore
store = VectorStore.persistent(sys.argv[1])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
store.close()
print("released", flush=True)
time.sleep(float(sys.argv[3]) if len(sys.argv) > 3 else 0)
"""


def _holder(store: Path, hold_s: float, linger_s: float = 0.0) -> subprocess.Popen[str]:
    """A real process holding ``store``'s writer lock for ``hold_s`` s (it says "locked" once it has it)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store), str(hold_s), str(linger_s)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "locked", proc.stderr.read() if proc.stderr else ""
    return proc


def _write(store: VectorStore, ids: list[str]) -> None:
    col = store.create_collection("notes.edge", EMB.space)
    col.upsert(ids, EMB.embed_documents(ids), space=EMB.space, texts=ids, content_hashes=ids)


def test_second_writer_waits_then_fails_naming_the_holder(tmp_path: Path) -> None:
    store = tmp_path / "store"
    proc = _holder(store, 60)
    try:
        lines: list[str] = []
        t0 = time.monotonic()
        with pytest.raises(StoreLockedError) as info:
            acquire_writer_lock(store, timeout_s=1.0, progress=lines.append)
        waited = time.monotonic() - t0
        message = str(info.value)
        assert waited >= 1.0
        assert f"pid {proc.pid}" in message and "-c" in message  # the holder's pid and command line
        assert "chroma run" in message and "--chroma-url" in message and "--lock-timeout" in message
        assert info.value.holder["pid"] == proc.pid
        assert lines and f"pid {proc.pid}" in lines[0]  # the progress line names the holder too
        assert isinstance(info.value, StoreError)  # so the CLI exits 1
        with pytest.raises(StoreLockedError):
            VectorStore.persistent(store, lock_timeout_s=0)
    finally:
        proc.kill()
        proc.wait()


def test_waiting_writer_gets_the_lock_when_the_holder_closes(tmp_path: Path) -> None:
    store = tmp_path / "store"
    # Closes the store after 3 s, then lives on: this process starts waiting well within that, however
    # slowly it reads the holder's "locked" on a loaded machine.
    proc = _holder(store, 3.0, linger_s=30)
    try:
        opened = VectorStore.persistent(store, lock_timeout_s=30)
        assert opened.writer_lock is not None and opened.writer_lock.waited_s > 0.3
        assert read_holder(store)["pid"] == os.getpid()
        _write(opened, ["a", "b"])
        opened.close()
    finally:
        proc.kill()
        proc.wait()


def test_kill_9_of_the_holder_releases_the_lock(tmp_path: Path) -> None:
    store = tmp_path / "store"
    proc = _holder(store, 600)
    with pytest.raises(StoreLockedError):
        acquire_writer_lock(store, timeout_s=0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert read_holder(store)["pid"] == proc.pid  # its name is still in the file, but the kernel let go
    lock = acquire_writer_lock(store, timeout_s=5)
    assert lock.waited_s < 5
    lock.release()


def test_readers_never_take_the_lock_nor_wait(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with VectorStore.persistent(store) as writer:
        _write(writer, ["a", "b", "c"])
    proc = _holder(store, 60)
    try:
        reader = VectorStore.persistent(store, read_only=True, lock_timeout_s=0)
        assert reader.writer_lock is None
        assert reader.get_collection("notes.edge").count() == 3
        with pytest.raises(StoreError, match="read-only"):
            _write(reader, ["d"])
        reader.close()
    finally:
        proc.kill()
        proc.wait()


def test_stores_and_threads_in_one_process_share_the_lock(tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = VectorStore.persistent(store)
    _write(first, ["seed"])
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            own = VectorStore.persistent(store, lock_timeout_s=0)  # never waits on its own process
            _write(own, [f"t{n}-{i}" for i in range(20)])
            own.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert holds_lock(store)  # ``first`` still holds it
    assert first.get_collection("notes.edge").count() == 1 + 6 * 20
    first.close()
    assert not holds_lock(store)
    assert (store / LOCK_FILE).read_text() == ""  # the holder's name goes with the lock
    probe = subprocess.run(
        [sys.executable, "-c", HOLDER, str(store), "0"], capture_output=True, text=True, timeout=120
    )
    assert probe.returncode == 0 and "released" in probe.stdout


def test_a_closed_store_refuses_writes_and_close_is_idempotent(tmp_path: Path) -> None:
    store = VectorStore.persistent(tmp_path / "store")
    _write(store, ["a"])
    col = store.get_collection("notes.edge")
    store.close()
    store.close()
    assert store.closed
    with pytest.raises(StoreError, match="closed"):
        col.upsert(["b"], EMB.embed_documents(["b"]), space=EMB.space, texts=["b"], content_hashes=["b"])
    reopened = VectorStore.persistent(tmp_path / "store", read_only=True)
    assert reopened.get_collection("notes.edge").count() == 1
    reopened.close()


def test_a_reader_in_the_writing_process_sees_its_writes(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with VectorStore.persistent(store) as writer:
        _write(writer, ["a"])
        reader = VectorStore.persistent(store, read_only=True)
        _write(writer, ["b", "c"])
        assert reader.get_collection("notes.edge").count() == 3
        reader.close()


def test_writes_of_other_processes_between_turns_are_read_back(tmp_path: Path) -> None:
    """Open, write, close; another process writes; open again: Chroma state is reloaded from disk."""
    store = tmp_path / "store"
    with VectorStore.persistent(store) as writer:
        _write(writer, [f"a{i}" for i in range(300)])
    early_reader = VectorStore.persistent(store, read_only=True)  # loaded before the other process
    code = (
        "import sys\n"
        "from edgeroute.framework.store.chroma import VectorStore\n"
        "from edgeroute.framework.testing.hashing import HashingEmbedder\n"
        "e = HashingEmbedder(dims=16)\n"
        "with VectorStore.persistent(sys.argv[1]) as s:\n"
        "    c = s.create_collection('notes.edge', e.space)\n"
        "    ids = [f'b{i}' for i in range(300)]\n"
        "    c.upsert(ids, e.embed_documents(ids), space=e.space, texts=ids, content_hashes=ids)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(store)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    with VectorStore.persistent(store) as writer:
        _write(writer, [f"c{i}" for i in range(300)])
        assert writer.get_collection("notes.edge").count() == 900
    early_reader.close()
    check = (
        "import sys, json, chromadb\n"
        "c = chromadb.PersistentClient(path=sys.argv[1]).get_collection('notes.edge')\n"
        "print(json.dumps([c.count(), len(c.get(include=['embeddings'])['embeddings'])]))\n"
    )
    back = subprocess.run(
        [sys.executable, "-c", check, str(store)], capture_output=True, text=True, timeout=120
    )
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout) == [900, 900]


def test_lock_timeout_settings() -> None:
    assert lock_timeout_from_env({}) == 10.0
    assert lock_timeout_from_env({"EDGEROUTE_LOCK_TIMEOUT_S": "2.5"}) == 2.5
    for bad in ("soon", "-1", "nan", "inf"):
        with pytest.raises(ConfigurationError, match="EDGEROUTE_LOCK_TIMEOUT_S"):
            lock_timeout_from_env({"EDGEROUTE_LOCK_TIMEOUT_S": bad})
    assert resolve_settings(store="/tmp/x", env={"EDGEROUTE_LOCK_TIMEOUT_S": "3"}).lock_timeout_s == 3.0
    assert resolve_settings(store="/tmp/x", lock_timeout_s=0, env={}).lock_timeout_s == 0.0
    with pytest.raises(ConfigurationError, match="--lock-timeout"):
        resolve_settings(store="/tmp/x", lock_timeout_s=-2, env={})
    s = resolve_settings(store="/tmp/x", env={"EDGEROUTE_CHROMA_URL": "http://127.0.0.1:8123"})
    assert s.chroma_url == "http://127.0.0.1:8123"
    with pytest.raises(ConfigurationError, match="chroma-url"):
        resolve_settings(store="/tmp/x", chroma_url="ftp://x", env={})
