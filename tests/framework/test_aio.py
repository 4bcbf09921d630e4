"""The portal behind every sync method: same results, same errors, no thread left behind, and
usable from inside a running event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import pytest

from edgeroute.framework import aio
from edgeroute.framework.errors import InputError


async def _double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


async def _fail() -> None:
    await asyncio.sleep(0)
    raise InputError("k must be a positive integer, got 0")


def test_run_sync_returns_the_coroutine_result_and_runs_it_on_the_portal() -> None:
    async def where() -> str:
        return threading.current_thread().name

    assert aio.run_sync(_double(21)) == 42
    assert aio.run_sync(where()) == "edgeroute-portal"


def test_run_sync_raises_the_same_exception_as_await() -> None:
    with pytest.raises(InputError) as sync_err:
        aio.run_sync(_fail())
    with pytest.raises(InputError) as async_err:
        asyncio.run(_fail())
    assert str(sync_err.value) == str(async_err.value)


async def test_run_sync_works_inside_a_running_event_loop() -> None:
    # What Jupyter or an async web handler calling sync code does: no deadlock, no "loop is running".
    assert aio.run_sync(_double(4)) == 8
    assert await _double(4) == 8


def test_run_sync_on_the_portal_itself_is_refused_not_deadlocked() -> None:
    async def nested() -> int:
        return aio.run_sync(_double(1))

    with pytest.raises(RuntimeError, match="call the async method"):
        aio.run_sync(nested())


def test_many_calls_start_one_portal_thread_and_no_other() -> None:
    aio.run_sync(_double(0))
    before = set(threading.enumerate())
    for i in range(50):
        assert aio.run_sync(_double(i)) == 2 * i
    assert set(threading.enumerate()) <= before
    portal = aio.portal_thread()
    assert portal is not None and portal.daemon and portal.is_alive()


def test_syncify_keeps_the_signature_and_the_errors() -> None:
    double = aio.syncify(_double)
    assert double(5) == 10 and double.__name__ == "_double"
    with pytest.raises(InputError, match="positive integer"):
        aio.syncify(_fail)()


def test_to_thread_and_in_executor_run_off_the_loop() -> None:
    loop_thread = []

    async def probe() -> tuple[str, str]:
        loop_thread.append(threading.current_thread().name)
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="probe") as pool:
            a = await aio.to_thread(lambda: threading.current_thread().name)
            b = await aio.in_executor(pool, lambda: threading.current_thread().name)
        return a, b

    a, b = aio.run_sync(probe())
    assert loop_thread == ["edgeroute-portal"] and a != "edgeroute-portal" and b.startswith("probe")
