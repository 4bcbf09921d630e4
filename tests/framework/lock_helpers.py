"""Start several real writer processes on one embedded store so that they surely meet at its writer lock:
the test holds the lock while they start and lets go once every one of them waits for it (seen in
``/proc``: a process keeps the lock's queue file open only while it waits). However slowly each process
starts on a loaded machine, none can have finished before another began."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from edgeroute.framework.store.lock import QUEUE_FILE, acquire_writer_lock

CAN_SEE_WAITERS = Path("/proc/self/fd").is_dir()


def waiting_for_the_writer_lock(pid: int, store: Path) -> bool:
    """Is process ``pid`` inside the writer lock's wait on ``store``?"""
    queue = os.path.realpath(store / QUEUE_FILE)
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == queue:
                return True
        except OSError:
            continue  # closed while we looked
    return False


def start_together(
    store: Path, start: Callable[[], list[subprocess.Popen[str]]], timeout_s: float = 300
) -> list[subprocess.Popen[str]]:
    """Run ``start()`` (which launches the writers) while holding ``store``'s writer lock (the directory
    is created if missing); return its processes once all of them wait for the lock, which is then let
    go. The writers need a lock timeout above the time they take to start."""
    store.mkdir(parents=True, exist_ok=True)
    hold = acquire_writer_lock(store, timeout_s=60)
    procs: list[subprocess.Popen[str]] = []
    try:
        procs = start()
        deadline = time.monotonic() + timeout_s
        while not all(waiting_for_the_writer_lock(p.pid, store) for p in procs):
            assert all(p.poll() is None for p in procs), "a writer ended before waiting for the lock"
            assert time.monotonic() < deadline, "the writers never all waited for the lock"
            time.sleep(0.05)
    except BaseException:
        for p in procs:
            p.kill()
            p.communicate()
        raise
    finally:
        hold.release()
    return procs
