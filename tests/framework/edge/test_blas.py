"""one_blas_thread: BLAS runs with one thread inside, and the setting is restored when the last caller leaves."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from edgeroute.framework.edge.blas import one_blas_thread

threadpoolctl = pytest.importorskip("threadpoolctl")


def _blas_threads() -> list[int]:
    return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]


def test_limits_inside_and_restores_after_nesting() -> None:
    before = _blas_threads()
    if not before:
        pytest.skip("numpy has no BLAS threadpoolctl can see")
    with one_blas_thread():
        assert _blas_threads() == [1] * len(before)
        with one_blas_thread():
            assert _blas_threads() == [1] * len(before)
        assert _blas_threads() == [1] * len(before)  # the outer caller is still inside
    assert _blas_threads() == before


def test_concurrent_callers_leave_the_setting_as_found() -> None:
    before = _blas_threads()
    x = np.ones((27, 256), dtype=np.float32)
    w = np.ones((256, 64), dtype=np.float32)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(50):
                with one_blas_thread():
                    assert float((x @ w)[0, 0]) == 256.0
        except BaseException as exc:  # surfaced below: a failed assert in a thread is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert _blas_threads() == before
