"""The write order of one collection: ingests and deletes of it run one at a time.

An ingest writes the edge index, then queues the cloud-bound documents in the outbox; a delete
takes them out of the outbox, the cloud index and the edge index. Interleaved, the two could leave
an id in one index and not the other (an ingest's edge write, a whole delete, then the ingest's
enqueue). So each holds the collection's write order from its first write to its last, and
whichever takes it last wins in every place. The drain does not take it: its cloud writes are
ordered by the outbox's generations (see :mod:`.outbox`), and cloud calls never run under it.

The order is a thread lock shared by every engine of this process on the same outbox and
collection, plus an exclusive ``flock`` on a lock file beside the outbox file
(``<outbox>.writers/<digest>.lock``), which orders processes sharing the outbox (two ``serve``
replicas on one Chroma server). Waiting polls without blocking a thread, so waiters never starve
the thread pool the holder needs, and a cancelled waiter leaves nothing held. The kernel drops a
killed holder's flock.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from ..errors import ConfigurationError

_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()
_FIRST_WAIT_S, _MAX_WAIT_S = 0.001, 0.05


class WriteOrder:
    """One collection's write order (see the module docstring). ``outbox_path=None``: this process only."""

    def __init__(self, outbox_path: Path | None, collection: str, *, scope: object | None = None) -> None:
        key = str(outbox_path.resolve()) if outbox_path is not None else f"memory:{id(scope)}"
        with _LOCKS_GUARD:
            self._lock = _LOCKS.setdefault((key, collection), threading.Lock())
        self._file: Path | None = None
        self._made = False
        if outbox_path is not None:
            digest = hashlib.sha256(collection.encode()).hexdigest()[:24]
            self._file = outbox_path.with_name(outbox_path.name + ".writers") / f"{digest}.lock"

    def _try(self) -> int | None:
        """Take the order without waiting: the file descriptor holding the flock (-1 without a file),
        or None when someone else holds it."""
        if not self._lock.acquire(blocking=False):
            return None
        if self._file is None:
            return -1
        try:
            if not self._made:
                self._file.parent.mkdir(parents=True, exist_ok=True)
                self._made = True
            fd = os.open(self._file, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            self._lock.release()
            raise ConfigurationError(
                f"the write-order lock {self._file} cannot be created ({exc.strerror or exc}); "
                "the outbox's directory must be writable"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            self._lock.release()
            return None
        except BaseException:
            os.close(fd)
            self._lock.release()
            raise
        return fd

    def _release(self, fd: int) -> None:
        if fd >= 0:
            os.close(fd)  # drops the flock
        self._lock.release()

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Wait for the order (polling, cancellable), hold it for the block, then let it go."""
        wait = _FIRST_WAIT_S
        while (fd := self._try()) is None:
            await asyncio.sleep(wait)
            wait = min(wait * 2, _MAX_WAIT_S)
        try:
            yield
        finally:
            self._release(fd)


__all__ = ["WriteOrder"]
