"""Helpers for tests that start real servers as subprocesses (``chroma run``, ``edgeroute serve``)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from edgeroute.framework.errors import StoreError
from edgeroute.framework.serve.server import free_port
from edgeroute.framework.store.chroma import VectorStore


@contextlib.contextmanager
def chroma_run(data: Path, log_path: Path) -> Iterator[int]:
    """A real ``chroma run`` on loopback over ``data``, logging to ``log_path``; yields its port."""
    exe = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
    port = free_port()
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [exe, "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                VectorStore.http("127.0.0.1", port)
                break
            except StoreError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"chroma run did not come up; see {log_path}") from None
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def wait_ready(proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    """Poll ``url``/readyz until it answers 200; kill ``proc`` and raise with its log if it never does."""
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"serve did not start: {log_path.read_text()}")
        time.sleep(0.2)
