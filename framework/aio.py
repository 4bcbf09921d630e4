"""One sync/async strategy: the core is async; the sync API runs it on a private event-loop thread.

Every operation with I/O (the engine's flows, the cloud client, the cache, the tool router) is written
once, as a coroutine. Its sync twin is one line, ``return run_sync(self.aoperation(...))``, which hands
the coroutine to a *portal*: one daemon thread per process running its own asyncio loop. So:

* sync and async callers run the same body, raise the same exceptions and cancel the same way (a
  cloud call dropped at a deadline is a cancelled task in both modes, never an orphan thread);
* the sync API works from inside a running event loop (Jupyter, an async web handler calling sync
  code): the caller's loop is blocked for the call, but the work runs on the portal's loop, so
  nothing waits on itself;
* blocking work never runs on a loop: ONNX inference goes to the edge embedder's own executor, store
  and SQLite calls to :func:`to_thread`.

Why not anyio's ``start_blocking_portal``: its loop runs in a non-daemon executor thread, which a
process-wide portal would have to stop explicitly or the interpreter waits for it at exit. The
portal here is the same idea in a daemon thread, so an embedding library never holds a process open.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import functools
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

T = TypeVar("T")
P = ParamSpec("P")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
# Objects with an ``aclose()`` coroutine holding resources of the portal loop (the cloud client's
# HTTP sessions): closed at interpreter exit while the loop still runs, not torn down half-way.
_closables: weakref.WeakSet[Any] = weakref.WeakSet()


def _portal_loop() -> asyncio.AbstractEventLoop:
    global _loop, _thread
    with _lock:
        if _loop is None or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            thread = threading.Thread(target=serve, name="edgeroute-portal", daemon=True)
            thread.start()
            ready.wait()
            _loop, _thread = loop, thread
        return _loop


def in_portal() -> bool:
    """True on the portal's own thread, where blocking on the portal would wait on itself."""
    return _thread is not None and threading.current_thread() is _thread


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the portal loop and return its result (or raise its exception) in this thread.

    Safe from any thread, including one whose own event loop is running. If this thread is
    interrupted while waiting (KeyboardInterrupt), the coroutine is cancelled before the interrupt
    propagates, so no work is left running behind the caller.
    """
    if in_portal():
        coro.close()
        raise RuntimeError(
            "a sync edgeroute method was called from inside edgeroute's own event loop; "
            "call the async method (await engine.aretrieve(...)) instead"
        )
    future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, _portal_loop())
    try:
        return future.result()
    except BaseException:
        if not future.done():
            future.cancel()
            # Wait for the cancellation to land, so the caller never races the work it abandoned.
            concurrent.futures.wait([future], timeout=5.0)
        raise


def close_at_exit(obj: Any) -> None:
    """Have ``await obj.aclose()`` run on the portal loop at interpreter exit (held weakly)."""
    _closables.add(obj)


@atexit.register
def _close_portal() -> None:
    loop, thread = _loop, _thread
    if loop is None or thread is None or not thread.is_alive():
        return

    async def close_all() -> None:
        await asyncio.gather(*(obj.aclose() for obj in list(_closables)), return_exceptions=True)

    # Exiting anyway: a session that does not close in time is left to the OS.
    with contextlib.suppress(Exception):
        asyncio.run_coroutine_threadsafe(close_all(), loop).result(timeout=2.0)
    loop.call_soon_threadsafe(loop.stop)


def syncify(afn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """The sync twin of an async function or method: the same signature, run through :func:`run_sync`.

    In a class body, ``retrieve = syncify(aretrieve)`` is the whole sync method; the twin is named
    after ``afn`` without its leading ``a`` and says in its docstring that it runs ``afn``.
    """

    @functools.wraps(afn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        return run_sync(afn(*args, **kwargs))

    name = afn.__name__
    if name.startswith("a") and len(name) > 1:
        wrapper.__name__ = name[1:]
        wrapper.__qualname__ = afn.__qualname__.removesuffix(name) + name[1:]
    wrapper.__doc__ = (
        f"Sync twin of ``{name}`` (the same body, run on the portal).\n\n{afn.__doc__ or ''}".rstrip()
    )
    return wrapper


async def to_thread(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run blocking ``fn`` (store, SQLite, file I/O) in the loop's default thread pool."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def in_executor(
    executor: concurrent.futures.Executor, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    """Run blocking ``fn`` on ``executor`` (the edge embedder's inference thread) without blocking the loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, functools.partial(fn, *args, **kwargs))


def portal_thread() -> threading.Thread | None:
    """The portal's thread, once started (for tests and diagnostics)."""
    return _thread


__all__ = ["close_at_exit", "in_executor", "in_portal", "portal_thread", "run_sync", "syncify", "to_thread"]
