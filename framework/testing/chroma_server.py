"""A real ``chroma run`` server on loopback, for tests and benchmarks that need the server store."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import ConfigurationError, StoreError


@contextlib.contextmanager
def chroma_run(data: Path, log_path: Path) -> Iterator[int]:
    """``chroma run`` over ``data`` on 127.0.0.1, logging to ``log_path``; yields its port once it answers,
    and stops it on exit."""
    from ..serve.server import free_port
    from ..store.chroma import VectorStore

    exe = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
    port = free_port()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [exe, "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    VectorStore.http("127.0.0.1", port).close()
                    break
                except StoreError:  # not up yet
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise ConfigurationError(f"chroma run did not start; see {log_path}") from None
                    time.sleep(0.2)
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
