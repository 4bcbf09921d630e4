"""One writer per embedded store: an exclusive ``flock`` on ``STORE/.edgeroute-writer.lock``.

Chroma's embedded ``PersistentClient`` is not process-safe: several processes writing one store
directory at once corrupt it (``count()`` right, ``get(include=["embeddings"])`` failing). So every
process that opens an embedded store writable takes this lock first and keeps it until the store is
closed; readers never take it. The holder writes who it is (pid, command line, start time, host)
into the lock file, so a process that waits can name it.

``flock`` locks belong to an open file description, and a process that opened the file twice would
block itself; so one process holds one descriptor per store (a registry with a reference count,
guarded by a threading lock): several stores or engines on one directory in one process share the
lock, and their threads stay as safe as Chroma makes them. The kernel drops the lock when its holder
dies, ``kill -9`` included, so a crash never leaves a store locked.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigurationError, StoreError

LOCK_FILE = ".edgeroute-writer.lock"
QUEUE_FILE = ".edgeroute-writer.queue"  # held by the next writer while it waits for LOCK_FILE
DEFAULT_LOCK_TIMEOUT_S = 10.0
LOCK_TIMEOUT_ENV = "EDGEROUTE_LOCK_TIMEOUT_S"
_POLL_S = 0.05
_PROGRESS_EVERY_S = 0.5


class StoreLockedError(StoreError):
    """Another process holds an embedded store's writer lock, and did not let go in time (exit 1)."""

    def __init__(self, message: str, holder: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.holder = holder or {}


def lock_timeout_from_env(env: dict[str, str] | None = None) -> float:
    """``$EDGEROUTE_LOCK_TIMEOUT_S`` (seconds, >= 0), else :data:`DEFAULT_LOCK_TIMEOUT_S`."""
    raw = (os.environ if env is None else env).get(LOCK_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_LOCK_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"${LOCK_TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    return check_lock_timeout(value, f"${LOCK_TIMEOUT_ENV}")


def check_lock_timeout(value: float, what: str = "the lock timeout") -> float:
    if not value >= 0 or value == float("inf"):  # also refuses NaN
        raise ConfigurationError(f"{what} must be a finite number of seconds >= 0, got {value}")
    return float(value)


@dataclass
class _Held:
    fd: int
    refs: int
    pid: int


_registry_lock = threading.Lock()
_path_locks: dict[str, threading.Lock] = {}
_held: dict[str, _Held] = {}


def _after_fork_in_child() -> None:
    # A forked child shares the parent's open file descriptions, hence its flocks: drop them, so the
    # child takes (and waits for) the lock like any other process instead of writing beside its parent.
    global _registry_lock
    _registry_lock = threading.Lock()
    for held in _held.values():
        with contextlib.suppress(OSError):
            os.close(held.fd)
    _held.clear()
    _path_locks.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _key(directory: str | Path) -> str:
    return os.path.realpath(os.fspath(directory))


def holds_lock(directory: str | Path) -> bool:
    """Does this process hold the writer lock of the store in ``directory``?"""
    return _key(directory) in _held


def read_holder(directory: str | Path) -> dict[str, object]:
    """What the lock file says about its holder ({} when empty, unreadable or torn mid-write)."""
    try:
        text = (Path(directory) / LOCK_FILE).read_text(encoding="utf-8")
        info = json.loads(text)
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def describe_holder(info: dict[str, object]) -> str:
    if not info.get("pid"):
        return "another process (it has not written its name yet)"
    cmd = str(info.get("command") or "?")
    if len(cmd) > 200:
        cmd = cmd[:197] + "..."
    since = info.get("started")
    host = info.get("host")
    return (
        f"pid {info['pid']} (`{cmd}`"
        + (f", since {since}" if since else "")
        + (f", on {host}" if host else "")
        + ")"
    )


def _own_info() -> dict[str, object]:
    return {
        "pid": os.getpid(),
        "command": " ".join(sys.argv) or sys.executable,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": socket.gethostname(),
    }


def _write_info(fd: int) -> None:
    data = json.dumps(_own_info()).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _tty_progress(message: str) -> None:
    stream = sys.stderr
    if stream is not None and stream.isatty():
        stream.write("\r" + message + "\x1b[K")
        stream.flush()


def _tty_done() -> None:
    stream = sys.stderr
    if stream is not None and stream.isatty():
        stream.write("\r\x1b[K")
        stream.flush()


class WriterLock:
    """This process's share of one store's writer lock; :meth:`release` once (idempotent)."""

    def __init__(self, key: str, waited_s: float) -> None:
        self.path = key
        self.waited_s = waited_s
        """Seconds this call waited for another process to let go (0.0 when it was free or already ours)."""
        self._released = False

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        _release(self.path)

    def __enter__(self) -> WriterLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"WriterLock({self.path!r}, released={self._released})"


def acquire_writer_lock(
    directory: str | Path,
    *,
    timeout_s: float | None = None,
    progress: Callable[[str], None] | None = None,
    on_fresh: Callable[[], None] | None = None,
) -> WriterLock:
    """Take the writer lock of the store in ``directory`` (which must exist), waiting at most
    ``timeout_s`` seconds (None: ``$EDGEROUTE_LOCK_TIMEOUT_S`` or 10 s) for another process to let go.

    Raises :class:`StoreLockedError` naming the holder when it does not. ``progress`` gets a line
    about every half second while waiting (default: rewritten in place on stderr when it is a
    terminal). ``on_fresh`` runs under the lock when this process did not hold it already.
    """
    timeout = lock_timeout_from_env() if timeout_s is None else check_lock_timeout(timeout_s)
    key = _key(directory)
    with _registry_lock:
        path_lock = _path_locks.setdefault(key, threading.Lock())
    # One thread per store waits on the file; the others wait here and then share what it got.
    with path_lock:
        held = _held.get(key)
        if held is not None:
            held.refs += 1
            return WriterLock(key, 0.0)
        lock_path = os.path.join(key, LOCK_FILE)
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreError(
                f"cannot open the store's writer lock {lock_path} ({exc.strerror or exc}): "
                "check the store directory's permissions"
            ) from exc
        try:
            waited = _wait(fd, key, timeout, progress)
            _write_info(fd)
            if on_fresh is not None:
                on_fresh()
        except BaseException:
            os.close(fd)  # closing the descriptor also drops a lock just taken
            raise
        _held[key] = _Held(fd, 1, os.getpid())
        return WriterLock(key, waited)


def _wait(fd: int, key: str, timeout: float, progress: Callable[[str], None] | None) -> float:
    """Take ``fd``'s lock within ``timeout``: first the queue lock, then the writer lock, then let go
    of the queue. A writer that just let go and comes straight back (``sync`` between turns) finds
    the process that was waiting already in the queue, and so waits behind it."""
    start = time.monotonic()
    queue = os.open(os.path.join(key, QUEUE_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        if _try_lock(queue) and _try_lock(fd):
            return 0.0
        show = progress or _tty_progress
        next_line = start
        queued = _try_lock(queue)
        try:
            while True:
                now = time.monotonic()
                if now - start >= timeout:
                    break
                if now >= next_line:
                    who = describe_holder(read_holder(key))
                    show(
                        f"waiting for the store {key}: {who} is writing it ({now - start:.0f}/{timeout:.0f} s)"
                    )
                    next_line = now + _PROGRESS_EVERY_S
                time.sleep(min(_POLL_S, max(0.0, timeout - (now - start))))
                queued = queued or _try_lock(queue)
                if queued and _try_lock(fd):
                    return time.monotonic() - start
        finally:
            if progress is None:
                _tty_done()
    finally:
        os.close(queue)  # lets the next in the queue move up
    holder = read_holder(key)
    raise StoreLockedError(
        f"the store at {key} is being written by {describe_holder(holder)}; waited {timeout:g} s. "
        "An embedded store takes one writer at a time: wait for it to finish and retry, or wait "
        f"longer (--lock-timeout SECONDS or ${LOCK_TIMEOUT_ENV}); for several writers at once, serve "
        f"the store with a Chroma server (`chroma run --path {key} --port 8000`) and pass "
        "--chroma-url http://127.0.0.1:8000 to every command (see docs/deployment.md).",
        holder,
    )


def _release(key: str) -> None:
    with _registry_lock:
        path_lock = _path_locks.setdefault(key, threading.Lock())
    with path_lock:
        held = _held.get(key)
        if held is None:
            return
        held.refs -= 1
        if held.refs > 0:
            return
        del _held[key]
        with contextlib.suppress(OSError):
            os.ftruncate(held.fd, 0)  # the holder's name goes with the lock
        os.close(held.fd)  # closing the (only) descriptor releases the flock


__all__ = [
    "DEFAULT_LOCK_TIMEOUT_S",
    "LOCK_FILE",
    "LOCK_TIMEOUT_ENV",
    "QUEUE_FILE",
    "StoreLockedError",
    "WriterLock",
    "acquire_writer_lock",
    "check_lock_timeout",
    "describe_holder",
    "holds_lock",
    "lock_timeout_from_env",
    "read_holder",
]
