"""The CLI's processes run numpy's OpenBLAS with one thread unless the environment says otherwise."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("threadpoolctl")

PROBE = (
    "import edgeroute.framework.cli, numpy, threadpoolctl; "
    "print(sorted({i['num_threads'] for i in threadpoolctl.threadpool_info() if i['user_api'] == 'blas'}))"
)


def _blas_threads(extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"} | extra
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def test_one_blas_thread_by_default_and_the_environment_wins() -> None:
    assert _blas_threads({}) in ("[1]", "[]")  # [] where numpy has no BLAS threadpoolctl sees
    if (os.cpu_count() or 1) > 1:
        assert _blas_threads({"OPENBLAS_NUM_THREADS": "2"}) in ("[2]", "[]")
