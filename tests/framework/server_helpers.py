"""Helpers for tests that start real servers as subprocesses (``chroma run``, ``edgeroute serve``)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx

from edgeroute.framework.serve.server import free_port
from edgeroute.framework.testing.chroma_server import chroma_run

__all__ = ["chroma_run", "free_port", "wait_ready"]


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
