"""The engine's sync API is the async core run through the portal: a late cloud call is cancelled
(nothing billed or audited after the answer), no thread is left running, errors are the same in
both modes, and the sync API works inside a running event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from router_helpers import API_KEY, PUBLIC, EngineFactory, make_cloud

from edgeroute.framework.cloud.embedder import CloudEmbedder
from edgeroute.framework.errors import CloudAuthError, CollectionNotFoundError, InputError
from edgeroute.framework.testing.emulator import GeminiEmulator

# Threads the library may keep: the portal, the portal loop's worker pool, the edge inference
# thread. The emulator's per-connection handler threads are the test double's, not the library's.
ALLOWED = ("edgeroute-portal", "asyncio_", "edgeroute-edge", "gemini-emulator")


def _ours(threads: set[threading.Thread]) -> set[str]:
    return {t.name for t in threads if t.is_alive() and "process_request_thread" not in t.name}


def test_sync_deadline_cancels_the_late_call_nothing_billed_or_audited_after(
    make_engine: EngineFactory, emu: GeminiEmulator
) -> None:
    cloud = make_cloud(emu, timeout_s=5.0)
    engine = make_engine(cloud=cloud)
    engine.ingest(PUBLIC)
    # Every cloud call now answers after 4 s: an answer well before that came at the 150 ms deadline
    # (the bound leaves a loaded machine slack).
    emu.latency_ms = 4000
    calls_before, requests_before = cloud.usage.calls, emu.request_count
    t0 = time.perf_counter()
    result = engine.retrieve("trail cameras", k=3, stakes="high", deadline_ms=150)
    assert (time.perf_counter() - t0) * 1000 < 3000
    assert result.degraded and "deadline.missed" in result.decision.codes
    records = list(engine.audit.records())
    cancelled = [r for r in records if r["type"] == "cloud_call" and r["outcome"] == "cancelled"]
    assert len(cancelled) == 1 and cancelled[0]["cost_usd"] == 0 and cancelled[0]["tokens"] == 0
    assert records[-1]["type"] == "query" and records[-1]["cloud"] == "late"
    assert records[-1]["cloud_cost_usd"] == 0

    # Until the emulator is past its latency and has logged the call (a call left running would be
    # answered then; this one finds its client gone), however long a loaded machine takes.
    deadline = time.monotonic() + 60
    while len(emu.requests) <= requests_before and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # what a live client would do next with an answer: bill and audit it
    assert list(engine.audit.records()) == records  # nothing audited after the answer
    assert cloud.usage.calls == calls_before  # nothing billed
    late = emu.requests[requests_before:]
    assert len(late) == 1 and late[0]["status"] is None and late[0].get("abandoned") is True
    assert not [t for t in threading.enumerate() if t.name == "edgeroute-cloud"]


def test_sync_calls_leave_no_thread_running(make_engine: EngineFactory, emu: GeminiEmulator) -> None:
    engine = make_engine()
    engine.ingest(PUBLIC[:2])  # starts the portal and its pool once
    before = set(threading.enumerate())
    engine.ingest(PUBLIC)
    engine.retrieve("trail cameras", k=3, stakes="high")
    emu.set_faults(1.0, ["timeout"])
    engine.retrieve("espresso machines", k=3, stakes="high", deadline_ms=120)
    engine.sync()
    new = _ours(set(threading.enumerate()) - before)
    assert all(name.startswith(ALLOWED) for name in new), new


async def _both(
    call: Callable[[], Any], acall: Callable[[], Awaitable[Any]]
) -> tuple[BaseException, BaseException]:
    with pytest.raises(Exception) as sync_err:
        call()
    with pytest.raises(Exception) as async_err:
        await acall()
    return sync_err.value, async_err.value


async def test_the_same_errors_in_both_modes(make_engine: EngineFactory, emu: GeminiEmulator) -> None:
    engine = make_engine()
    await engine.aingest(PUBLIC)
    other = make_engine(collection="missing")
    wrong_key = CloudEmbedder(api_key="not-" + API_KEY, base_url=emu.base_url, dims=256)
    emu.api_key = API_KEY
    cases = [
        (lambda: engine.retrieve("shoes", k=0), lambda: engine.aretrieve("shoes", k=0), InputError),
        (lambda: other.retrieve("shoes"), lambda: other.aretrieve("shoes"), CollectionNotFoundError),
        (
            lambda: wrong_key.embed_queries(["shoes"]),
            lambda: wrong_key.aembed_queries(["shoes"]),
            CloudAuthError,  # a CloudRejectedError: the key is refused
        ),
    ]
    for call, acall, kind in cases:
        s, a = await _both(call, acall)
        assert type(s) is type(a) is kind and str(s) == str(a)


async def test_the_sync_api_works_inside_a_running_event_loop(make_engine: EngineFactory) -> None:
    # A notebook cell or an async handler calling the sync API: it must not deadlock, and the
    # cloud client used on this loop and the one used on the portal's loop must not collide.
    engine = make_engine()
    report = engine.ingest(PUBLIC)
    assert report.cloud.written == len(PUBLIC)
    sync_result = engine.retrieve("trail cameras", k=3, stakes="high")
    async_result = await engine.aretrieve("trail cameras", k=3, stakes="high")
    assert sync_result.decision.route.value == async_result.decision.route.value == "hybrid"
    assert [h.id for h in sync_result.hits] == [h.id for h in async_result.hits]
    again = await asyncio.gather(*(engine.aretrieve("mountain bikes", k=2, stakes="high") for _ in range(3)))
    assert all(not r.degraded for r in again)
    assert not engine.retrieve("mountain bikes", k=2, stakes="high").degraded
