"""Effects and drivers: how the engine writes each operation once for sync and async callers.

An operation is a generator that yields *effects* (a blocking call, starting a cloud call, awaiting
one with a timeout) and receives their results. :func:`run_sync` executes effects with plain calls
and daemon threads; :func:`run_async` with threads for blocking work and tasks for cloud calls. The
generator itself holds the logic (routing, hedging, fusion), so there is one body per operation
(the pattern of httpx's auth flows).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Blocking:
    """Run a blocking function (store, SQLite, ONNX): inline when sync, in a thread when async.

    Flows pass lambdas over their loop variables freely: a driver calls ``fn`` before it resumes
    the flow, so the variables cannot change underneath it.
    """

    fn: Callable[[], Any]


@dataclass(frozen=True, slots=True)
class StartCloud:
    """Start a cloud call without waiting; the driver returns a handle for :class:`AwaitCloud`."""

    run: Callable[[], Any]
    arun: Callable[[], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class AwaitCloud:
    """Wait for a started cloud call, at most ``timeout_s`` (None: until it ends)."""

    handle: Any
    timeout_s: float | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a cloud call ended: ``value``, or ``error``, or ``late`` (dropped at the deadline)."""

    value: Any = None
    error: BaseException | None = None
    late: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.late


Effect = Blocking | StartCloud | AwaitCloud
Flow = Generator[Effect, Any, T]


def _retrieve_exception(fut: concurrent.futures.Future[Any] | asyncio.Future[Any]) -> None:
    """Done-callback for dropped calls: read the outcome so nothing warns about it later."""
    if not fut.cancelled():
        fut.exception()


def run_sync(flow: Flow[T]) -> T:
    """Drive ``flow`` with plain calls; cloud calls run in daemon threads (a late one may finish unseen)."""
    send: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = flow.throw(error) if error is not None else flow.send(send)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        send, error = None, None
        try:
            if isinstance(effect, Blocking):
                send = effect.fn()
            elif isinstance(effect, StartCloud):
                send = _start_thread(effect.run)
            else:
                send = _wait_future(effect.handle, effect.timeout_s)
        except BaseException as exc:  # handed to the flow, which decides
            error = exc


def _start_thread(fn: Callable[[], Any]) -> concurrent.futures.Future[Any]:
    fut: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def work() -> None:
        if not fut.set_running_or_notify_cancel():
            return
        try:
            fut.set_result(fn())
        except BaseException as exc:
            fut.set_exception(exc)

    # Daemon: a cloud call dropped at the deadline must not keep the process alive at exit.
    threading.Thread(target=work, name="edgeroute-cloud", daemon=True).start()
    return fut


def _wait_future(fut: concurrent.futures.Future[Any], timeout_s: float | None) -> Outcome:
    try:
        return Outcome(value=fut.result(timeout=timeout_s))
    except concurrent.futures.TimeoutError:
        fut.add_done_callback(_retrieve_exception)
        return Outcome(late=True)
    except Exception as exc:
        return Outcome(error=exc)


async def run_async(flow: Flow[T]) -> T:
    """Drive ``flow`` on the event loop; blocking calls go to threads, cloud calls are tasks."""
    send: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = flow.throw(error) if error is not None else flow.send(send)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        send, error = None, None
        try:
            if isinstance(effect, Blocking):
                send = await asyncio.to_thread(effect.fn)
            elif isinstance(effect, StartCloud):
                send = asyncio.ensure_future(effect.arun())
            else:
                send = await _wait_task(effect.handle, effect.timeout_s)
        except Exception as exc:
            error = exc


async def _wait_task(task: asyncio.Future[Any], timeout_s: float | None) -> Outcome:
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
    except asyncio.CancelledError:  # the caller gave up: the cloud call goes with it
        task.cancel()
        task.add_done_callback(_retrieve_exception)
        raise
    if not done:
        task.cancel()
        task.add_done_callback(_retrieve_exception)
        return Outcome(late=True)
    exc = task.exception()
    return Outcome(error=exc) if exc is not None else Outcome(value=task.result())


__all__ = ["AwaitCloud", "Blocking", "Effect", "Flow", "Outcome", "StartCloud", "run_async", "run_sync"]
