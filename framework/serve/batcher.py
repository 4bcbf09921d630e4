"""Micro-batching of edge embedding: concurrent requests' texts go to the model in one call.

A batch-1 forward pass of a 300M-parameter encoder leaves most of the CPU's arithmetic idle; one
call over 32 short queries costs far less than 32 calls. :class:`MicroBatcher` wraps the edge
embedder: each ``aembed_*`` call queues its texts and awaits its rows, and one worker coroutine
takes the oldest request plus everything compatible that arrived within ``max_wait_ms`` (or until
``max_batch`` texts), and makes one model call on the embedder's inference thread (one call at a
time: the model already uses every core), so the event loop never blocks. While a batch is
computing, new requests gather, so under load the batches grow by themselves and the wait costs
nothing. Sync calls made from worker threads while the loop runs (a blocking step of a flow) join
the same batches.

Model work is shared fairly between tenants (:data:`current_tenant`, set when a request is admitted):
a request of more than ``max_batch`` texts is queued as slices of ``max_batch``, each batch starts
with the oldest job of the tenant served longest ago, and is filled round-robin, one job per tenant
at a time. So a tenant with a thousand texts queued delays another tenant's query by at most the
batch in progress, not by its whole queue.

The wait is for requests that can still come: with ``in_flight`` (the service's count of requests
being served) the worker stops waiting as soon as every request in flight has queued its texts, so a
lone request goes to the model at once instead of after ``max_wait_ms``, and two that arrive together
do not wait out the window either. Without it (a batcher used on its own) it always waits.

:meth:`MicroBatcher.amap_token_states` runs a function over each text's token states on the
inference thread right after the batch's model call (the PII head of a query): the request's loop
hands its work over once and gets vector and findings back once, with no hop through a worker thread.

Requests are batched only with requests of the same kind (queries, documents, or a named prompt)
and dims. A request whose caller is cancelled (its client disconnected) before its batch starts is
dropped from the batch. With ``enabled=False`` every call goes straight to the wrapped embedder:
the same server with batching off, for ``edgeroute bench serve``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from ..aio import in_executor, to_thread
from ..embedder import Embedder, Vectors
from ..errors import ConfigurationError, InputError
from ..spaces import EmbeddingSpace

logger = logging.getLogger(__name__)
T = TypeVar("T")

_Key = tuple[str, int | None, str | None]  # (kind, dims, prompt name)

current_tenant: ContextVar[str | None] = ContextVar("edgeroute_serve_tenant", default=None)
"""The tenant of the request being served (the service's admission sets it); None outside one."""


StatesFn = Callable[[str, Any], Any]
"""``fn(text, token_states)``, run on the inference thread for each text of a job (see amap_token_states)."""


@dataclass
class _Job:
    key: _Key
    texts: list[str]
    titles: list[str | None] | None
    future: asyncio.Future[Any]
    tenant: str | None = None
    arrived: float = field(default_factory=time.monotonic)
    finish: StatesFn | None = None


@dataclass
class BatchStats:
    """Counters for /metrics and the bench: how many calls, texts and dropped requests."""

    batches: int = 0
    texts: int = 0
    requests: int = 0
    dropped: int = 0
    largest: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "texts": self.texts,
            "requests": self.requests,
            "dropped": self.dropped,
            "largest": self.largest,
            "mean_batch": round(self.texts / self.batches, 2) if self.batches else None,
        }


class MicroBatcher:
    """An :class:`~edgeroute.framework.embedder.Embedder` that batches concurrent async calls to ``inner``."""

    def __init__(
        self,
        inner: Embedder,
        *,
        max_batch: int = 32,
        max_wait_ms: float = 2.0,
        enabled: bool = True,
        in_flight: Callable[[], int] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ConfigurationError(f"max_batch must be >= 1, got {max_batch}")
        if not 0 <= max_wait_ms <= 1000:
            raise ConfigurationError(f"max_wait_ms must be between 0 and 1000, got {max_wait_ms}")
        self.inner = inner
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.enabled = enabled and max_batch > 1
        # Requests being served (the service's count); None: unknown, so always wait out the window.
        self.in_flight = in_flight
        self._inside = 0  # _submit calls whose texts are queued or computing
        self.stats = BatchStats()
        self._pending: deque[_Job] = deque()
        self._turn = 0  # batches started; a tenant's last turn orders the round-robin
        self._last_turn: dict[str | None, int] = {}
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # One inference at a time: the model already uses every core for one call. EdgeEmbedder
        # runs its async calls on an inference thread of its own; other embedders get one here.
        self._own_thread = _has_inference_thread(inner)
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="edgeroute-batcher")

    # -- the Embedder protocol (identity and sync calls go straight through) ---------------------------

    @property
    def space(self) -> EmbeddingSpace:
        return self.inner.space

    def space_for(self, dims: int | None = None) -> EmbeddingSpace:
        return self.inner.space_for(dims)

    def __getattr__(self, name: str) -> Any:
        # manifest, prompt_names, count_tokens, truncated_count ... of the wrapped embedder
        return getattr(self.inner, name)

    def embed_queries(self, texts: Sequence[str], *, dims: int | None = None) -> Vectors:
        if self._bridged():
            out: Vectors = self._from_thread(self.aembed_queries(texts, dims=dims))
            return out
        return self.inner.embed_queries(texts, dims=dims)

    def embed_documents(
        self, texts: Sequence[str], *, titles: Sequence[str | None] | None = None, dims: int | None = None
    ) -> Vectors:
        if self._bridged():
            out: Vectors = self._from_thread(self.aembed_documents(texts, titles=titles, dims=dims))
            return out
        return self.inner.embed_documents(texts, titles=titles, dims=dims)

    def embed_with_token_states(
        self, texts: Sequence[str], prompt_name: str | None = "query", *, dims: int | None = None
    ) -> tuple[Vectors, list[Any]]:
        """EdgeEmbedder's one pass for vectors and token states (the PII head reads them), batched too."""
        if self._bridged():
            out: tuple[Vectors, list[Any]] = self._from_thread(
                self._submit(("states", dims, prompt_name), list(texts), None)
            )
            return out
        result: tuple[Vectors, list[Any]] = self.inner.embed_with_token_states(texts, prompt_name, dims=dims)  # type: ignore[attr-defined]
        return result

    async def aembed_with_token_states(
        self, texts: Sequence[str], prompt_name: str | None = "query", *, dims: int | None = None
    ) -> tuple[Vectors, list[Any]]:
        out: tuple[Vectors, list[Any]] = await self._submit(("states", dims, prompt_name), list(texts), None)
        return out

    async def amap_token_states(
        self,
        texts: Sequence[str],
        prompt_name: str | None,
        fn: StatesFn,
        *,
        dims: int | None = None,
    ) -> tuple[Vectors, list[Any]]:
        """Vectors and ``[fn(text, states) ...]`` from one batched pass; ``fn`` runs on the inference
        thread right after the model call, so the caller's loop hands the work over once."""
        key: _Key = ("states", dims, prompt_name)
        out: tuple[Vectors, list[Any]] = await self._submit(key, list(texts), None, finish=fn)
        return out

    async def arun(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run blocking ``fn`` that calls this embedder (PII detection) in a worker thread: its model
        calls join the batches, instead of running alone on the inference thread."""
        return await to_thread(fn, *args, **kwargs)

    def start(self) -> None:
        """Bind to the running loop now, so sync calls from worker threads batch from the first one."""
        loop = asyncio.get_running_loop()
        if self.enabled and (self._worker is None or self._worker.done()):
            self._loop = loop
            self._wakeup = asyncio.Event()
            self._worker = loop.create_task(self._run(), name="edgeroute-microbatcher")

    def _bridged(self) -> bool:
        """True when a sync call comes from a worker thread while the batching loop runs elsewhere.

        Code that embeds through the sync API in a thread (a flow's blocking step) then joins the
        batches too: its thread waits on the loop's batch instead of running the model alone.
        """
        loop = self._loop
        if not self.enabled or loop is None or not loop.is_running() or loop.is_closed():
            return False
        try:
            return asyncio.get_running_loop() is not loop
        except RuntimeError:
            return True

    def _from_thread(self, coro: Coroutine[Any, Any, Any]) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def aembed_queries(
        self, texts: Sequence[str], *, dims: int | None = None, task: str | None = None
    ) -> Vectors:
        key: _Key = ("prompt", dims, task) if task else ("query", dims, None)
        out: Vectors = await self._submit(key, list(texts), None)
        return out

    async def aembed_documents(
        self, texts: Sequence[str], *, titles: Sequence[str | None] | None = None, dims: int | None = None
    ) -> Vectors:
        out: Vectors = await self._submit(
            ("document", dims, None), list(texts), list(titles) if titles else None
        )
        return out

    async def aembed(
        self, texts: Sequence[str], prompt_name: str | None, *, dims: int | None = None
    ) -> Vectors:
        out: Vectors = await self._submit(("prompt", dims, prompt_name), list(texts), None)
        return out

    # -- batching ---------------------------------------------------------------------------------------

    async def _call(
        self,
        key: _Key,
        texts: list[str],
        titles: list[str | None] | None,
        finish: Sequence[StatesFn | None] | None = None,
    ) -> Vectors:
        """One model call, on the embedder's own inference thread (EdgeEmbedder's async API), or for an
        embedder without one on the batcher's: never on the loop, never in the loop's shared pool
        (threads of that pool may be waiting on this very batch, see :meth:`_bridged`).

        ``finish``: for the ``states`` kind, a function per text (or None) applied to its token
        states on the same thread, after the model call."""
        kind, dims, prompt = key
        inner = self.inner
        if kind == "states":
            if finish is not None and any(f is not None for f in finish):
                arun = getattr(inner, "arun", None)
                if arun is not None:  # EdgeEmbedder: its inference thread
                    done: Any = await arun(_states_then, inner, texts, prompt, dims, finish)
                else:
                    done = await in_executor(self._executor, _states_then, inner, texts, prompt, dims, finish)
                return done  # type: ignore[no-any-return]
            states: Any = await inner.aembed_with_token_states(texts, prompt, dims=dims)  # type: ignore[attr-defined]
            return states  # type: ignore[no-any-return]
        if self._own_thread:
            if kind == "query":
                return await inner.aembed_queries(texts, dims=dims)
            if kind == "document":
                return await inner.aembed_documents(texts, titles=titles, dims=dims)
            out: Vectors = await inner.aembed(texts, prompt, dims=dims)  # type: ignore[attr-defined]
            return out
        if kind == "query":
            return await in_executor(self._executor, inner.embed_queries, texts, dims=dims)
        if kind == "document":
            return await in_executor(self._executor, inner.embed_documents, texts, titles=titles, dims=dims)
        embed = getattr(inner, "embed", None)
        if embed is None:
            raise ConfigurationError(
                f"the edge embedder {type(inner).__name__} has no named prompts; leave input_type unset"
            )
        out = await in_executor(self._executor, embed, texts, prompt, dims=dims)
        return out

    def _validate(self, key: _Key, texts: list[str], titles: list[str | None] | None) -> None:
        """Refuse a bad request before it joins a batch, so it cannot fail its neighbours' requests."""
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                raise InputError(f"input[{i}] is empty or not a string; every input must be non-empty text")
        if titles is not None and len(titles) != len(texts):
            raise InputError(f"got {len(titles)} titles for {len(texts)} texts; give one per text")
        self.inner.space_for(key[1])  # unknown dims raise here
        if key[0] == "prompt":
            names: Sequence[str] | None = getattr(self.inner, "prompt_names", None)
            if names is None:
                raise InputError(
                    f"the edge model {self.space.model!r} has no named prompts; use input_type "
                    "'query' or 'document'"
                )
            if key[2] not in names:
                raise InputError(
                    f"unknown input_type {key[2]!r}; this model's prompts are: {', '.join(names)}"
                )

    async def _submit(
        self,
        key: _Key,
        texts: list[str],
        titles: list[str | None] | None,
        finish: StatesFn | None = None,
    ) -> Any:
        # Any: vectors, or (vectors, token states or finish's results) for the "states" kind
        loop = asyncio.get_running_loop()
        self._validate(key, texts, titles)
        if not self.enabled or not texts or (self._loop is not None and self._loop is not loop):
            out = await self._call(key, texts, titles, [finish] * len(texts) if finish else None)
            failed = next((r for r in out[1] if isinstance(r, _Failed)), None) if finish else None
            if failed is not None:
                raise failed.error
            return out
        if self._worker is None or self._worker.done():
            self.start()
        tenant = current_tenant.get()
        futures: list[asyncio.Future[Any]] = []
        # Slices of max_batch: a large request takes turns with other tenants' work between slices.
        for start in range(0, len(texts), self.max_batch):
            part = slice(start, start + self.max_batch)
            job = _Job(
                key,
                texts[part],
                titles[part] if titles else None,
                loop.create_future(),
                tenant,
                finish=finish,
            )
            self._pending.append(job)
            futures.append(job.future)
        assert self._wakeup is not None
        self._inside += 1
        self._wakeup.set()
        self.stats.requests += 1
        try:
            if len(futures) == 1:
                return await futures[0]
            parts = await asyncio.gather(*futures)
        finally:
            self._inside -= 1
        if key[0] == "states":
            return np.concatenate([p[0] for p in parts]), [s for p in parts for s in p[1]]
        return np.concatenate(parts)

    def _more_coming(self) -> bool:
        """Whether a request may still join the batch being gathered: some request in flight has not
        queued its texts yet (unknown without ``in_flight``: then assume so)."""
        return self.in_flight is None or self.in_flight() > self._inside

    def _ready(self, key: _Key) -> int:
        return sum(len(j.texts) for j in self._pending if j.key == key)

    def _first(self) -> _Job:
        """The oldest job of the tenant whose last turn is the longest ago (never served: first)."""
        best = self._pending[0]
        best_turn = self._last_turn.get(best.tenant, -1)
        for job in self._pending:
            turn = self._last_turn.get(job.tenant, -1)
            if turn < best_turn:
                best, best_turn = job, turn
        return best

    def _take(self, first: _Job) -> list[_Job]:
        """``first``, then jobs of its key round-robin across tenants (least recently served first,
        each tenant's in arrival order), up to ``max_batch`` texts."""
        queues: dict[str | None, deque[_Job]] = {}
        for job in self._pending:
            if job is not first and job.key == first.key:
                queues.setdefault(job.tenant, deque()).append(job)
        order = sorted((t for t in queues if t != first.tenant), key=lambda t: self._last_turn.get(t, -1))
        if first.tenant in queues:
            order.append(first.tenant)
        taken = [first]
        size = len(first.texts)
        progress = True
        while progress:
            progress = False
            for tenant in order:
                queue = queues[tenant]
                if queue and size + len(queue[0].texts) <= self.max_batch:
                    job = queue.popleft()
                    taken.append(job)
                    size += len(job.texts)
                    progress = True
        chosen = {id(j) for j in taken}
        self._pending = deque(j for j in self._pending if id(j) not in chosen)
        self._turn += 1
        for job in taken:
            self._last_turn[job.tenant] = self._turn
        return taken

    async def _run(self) -> None:
        assert self._wakeup is not None
        wakeup = self._wakeup
        while True:
            while not self._pending:
                wakeup.clear()
                await wakeup.wait()
            first = self._first()
            # Gather for up to max_wait after the oldest request arrived (no wait if it already has),
            # and only while a request in flight has yet to queue its texts.
            while self._ready(first.key) < self.max_batch and self._more_coming():
                left = first.arrived + self.max_wait_s - time.monotonic()
                if left <= 0:
                    break
                wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wakeup.wait(), left)
            jobs = self._take(first)
            live = [j for j in jobs if not j.future.done()]
            self.stats.dropped += len(jobs) - len(live)
            if not live:
                continue
            await self._compute(first.key, live)

    async def _compute(self, key: _Key, jobs: list[_Job]) -> None:
        texts = [t for j in jobs for t in j.texts]
        titles: list[str | None] | None = None
        if any(j.titles for j in jobs):
            titles = [t for j in jobs for t in (j.titles or [None] * len(j.texts))]
        self.stats.batches += 1
        self.stats.texts += len(texts)
        self.stats.largest = max(self.stats.largest, len(texts))
        finish = None
        if any(j.finish is not None for j in jobs):
            finish = [j.finish for j in jobs for _ in j.texts]
        try:
            vecs = await self._call(key, texts, titles, finish)
        except asyncio.CancelledError:
            for j in jobs:
                if not j.future.done():
                    j.future.cancel()
            raise
        except Exception as exc:
            for j in jobs:
                if not j.future.done():
                    j.future.set_exception(exc)
            return
        start = 0
        for j in jobs:
            n = len(j.texts)
            if not j.future.done():
                if isinstance(vecs, tuple):  # (vectors, token states or finish's results)
                    rows = vecs[1][start : start + n]
                    failed = next((r for r in rows if isinstance(r, _Failed)), None)
                    if failed is not None:  # its finish raised: that request fails, alone
                        j.future.set_exception(failed.error)
                    else:
                        j.future.set_result((vecs[0][start : start + n], rows))
                else:
                    j.future.set_result(vecs[start : start + n])
            start += n

    async def aclose(self) -> None:
        """Finish what is queued, then stop the worker."""
        for _ in range(1000):
            if not self._pending:
                break
            await asyncio.sleep(0.005)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        self._executor.shutdown(wait=True)


@dataclass(frozen=True)
class _Failed:
    """A ``finish`` that raised: its request fails with ``error``, its batch neighbours do not."""

    error: Exception


def _states_then(
    inner: Any, texts: list[str], prompt: str | None, dims: int | None, finish: Sequence[StatesFn | None]
) -> tuple[Vectors, list[Any]]:
    """On the inference thread: one pass for vectors and token states, then each text's ``finish``
    (its states as they are where it has none; a :class:`_Failed` where it raised)."""
    vecs, states = inner.embed_with_token_states(texts, prompt, dims=dims)
    out: list[Any] = []
    for t, st, f in zip(texts, states, finish, strict=True):
        try:
            out.append(st if f is None else f(t, st))
        except Exception as exc:
            out.append(_Failed(exc))
    return vecs, out


def _has_inference_thread(inner: Embedder) -> bool:
    from ..edge.embedder import EdgeEmbedder

    return isinstance(inner, EdgeEmbedder)


__all__ = ["BatchStats", "MicroBatcher"]
