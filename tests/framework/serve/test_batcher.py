"""The micro-batcher: concurrent calls share model calls, bounded in size and wait; bad or cancelled
requests do not hurt their neighbours; a client that disconnects is cancelled."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import pytest
from conftest import Served

from edgeroute.framework.edge.embedder import TokenStates
from edgeroute.framework.embedder import Vectors
from edgeroute.framework.errors import InputError
from edgeroute.framework.pii import PiiDetector
from edgeroute.framework.pii.head import HeadSpan
from edgeroute.framework.serve.batcher import MicroBatcher
from edgeroute.framework.testing.hashing import HashingEmbedder
from edgeroute.policies.config import PiiConfig


class Recording(HashingEmbedder):
    """Records each model call's texts (the batcher calls the sync methods on its inference thread)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__(64)
        self.seen: list[list[str]] = []
        self.delay_s = delay_s

    def embed_queries(self, texts: Sequence[str], *, dims: int | None = None) -> Vectors:
        self.seen.append(list(texts))
        time.sleep(self.delay_s)
        return super().embed_queries(texts, dims=dims)

    def embed_documents(
        self, texts: Sequence[str], *, titles: Sequence[str | None] | None = None, dims: int | None = None
    ) -> Vectors:
        self.seen.append(list(texts))
        time.sleep(self.delay_s)
        return super().embed_documents(texts, titles=titles, dims=dims)


async def test_concurrent_queries_share_one_model_call_and_get_their_own_rows() -> None:
    inner = Recording()
    b = MicroBatcher(inner, max_batch=64, max_wait_ms=20)
    texts = [f"query number {i}" for i in range(20)]
    out = await asyncio.gather(*(b.aembed_queries([t]) for t in texts))
    assert len(inner.seen) == 1 and sorted(inner.seen[0]) == sorted(texts)
    for t, v in zip(texts, out, strict=True):
        np.testing.assert_allclose(v, HashingEmbedder(64).embed_queries([t]), atol=1e-6)
    assert b.stats.batches == 1 and b.stats.requests == 20
    await b.aclose()


async def test_batch_size_is_bounded_and_kinds_and_dims_are_not_mixed() -> None:
    inner = Recording(delay_s=0.01)
    b = MicroBatcher(inner, max_batch=8, max_wait_ms=20)
    calls = [b.aembed_queries([f"q{i}"]) for i in range(20)]
    calls += [b.aembed_documents([f"d{i}"]) for i in range(3)]
    calls += [b.aembed_queries([f"small{i}"], dims=32) for i in range(2)]
    out = await asyncio.gather(*calls)
    assert max(len(c) for c in inner.seen) <= 8
    for c in inner.seen:
        kinds = {t.rstrip("0123456789") for t in c}
        assert len(kinds) == 1, c
    assert out[-1].shape == (1, 32)
    assert sum(len(c) for c in inner.seen) == 25
    await b.aclose()


async def test_a_lone_request_waits_at_most_max_wait() -> None:
    b = MicroBatcher(Recording(), max_batch=64, max_wait_ms=30)
    t0 = time.perf_counter()
    await b.aembed_queries(["alone"])
    assert time.perf_counter() - t0 < 0.5
    await b.aclose()


async def test_a_bad_request_fails_alone() -> None:
    inner = Recording()
    b = MicroBatcher(inner, max_batch=64, max_wait_ms=20)
    good = asyncio.ensure_future(b.aembed_queries(["fine"]))
    with pytest.raises(InputError, match="empty"):
        await b.aembed_queries(["  "])
    with pytest.raises(InputError, match="dims"):
        await b.aembed_queries(["fine too"], dims=4096)
    assert (await good).shape == (1, 64)
    await b.aclose()


async def test_a_cancelled_request_is_dropped_before_its_batch_runs() -> None:
    inner = Recording()
    b = MicroBatcher(inner, max_batch=64, max_wait_ms=200)
    gone = asyncio.ensure_future(b.aembed_queries(["never embedded"]))
    kept = asyncio.ensure_future(b.aembed_queries(["embedded"]))
    await asyncio.sleep(0.02)
    gone.cancel()
    await kept
    assert inner.seen == [["embedded"]] and b.stats.dropped == 1
    await b.aclose()


async def test_batching_off_calls_the_model_once_per_request() -> None:
    inner = Recording()
    b = MicroBatcher(inner, enabled=False)
    await asyncio.gather(*(b.aembed_queries([f"q{i}"]) for i in range(5)))
    assert len(inner.seen) == 5 and b.stats.batches == 0


async def test_a_model_failure_reaches_every_request_in_the_batch() -> None:
    class Broken(Recording):
        def embed_queries(self, texts: Sequence[str], *, dims: int | None = None) -> Vectors:
            raise RuntimeError("onnx fell over")

    b = MicroBatcher(Broken(), max_batch=64, max_wait_ms=20)
    results = await asyncio.gather(*(b.aembed_queries([f"q{i}"]) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert (await asyncio.gather(b.aembed_queries(["next"]), return_exceptions=True))[
        0
    ].__class__ is RuntimeError
    await b.aclose()


def test_a_client_that_disconnects_is_cancelled(serve: Callable[..., Served]) -> None:
    inner = Recording()
    s = serve(edge=inner, max_batch=1000, max_wait_ms=1000)
    # As if more requests were on their way: the batcher waits out its window, so this request is
    # still queued when its client leaves (a lone request would go to the model at once).
    s.service.edge.in_flight = lambda: 99
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            s.url + "/v1/embeddings",
            json={"input": "left before the batch ran", "model": "edge"},
            headers=s.headers(),
            timeout=0.2,
        )
    # Past the 1 s window (a batch holding the request would have run by then), and until the drop
    # is counted, however long a loaded machine takes to get there.
    t0, deadline = time.monotonic(), time.monotonic() + 60
    while (s.service.edge.stats.dropped == 0 or time.monotonic() - t0 < 1.5) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert inner.seen == []
    assert s.service.edge.stats.dropped == 1
    metrics = httpx.get(s.url + "/metrics").text
    assert 'edgeroute_requests_total{endpoint="/v1/embeddings",route="edge",status="499"} 1.0' in metrics
    # and the server carries on
    r = httpx.post(
        s.url + "/v1/embeddings", json={"input": "next", "model": "edge"}, headers=s.headers(), timeout=5
    )
    assert r.status_code == 200 and inner.seen == [["next"]]


async def test_sync_calls_from_worker_threads_join_the_batches() -> None:
    inner = Recording()
    b = MicroBatcher(inner, max_batch=64, max_wait_ms=30)
    b.start()
    out = await asyncio.gather(*(asyncio.to_thread(b.embed_queries, [f"threaded {i}"]) for i in range(6)))
    assert sum(len(c) for c in inner.seen) == 6 and len(inner.seen) < 6
    assert all(v.shape == (1, 64) for v in out)
    assert b.embed_queries(["on the loop thread itself"]).shape == (1, 64)  # no deadlock: goes direct
    await b.aclose()


async def test_the_loop_keeps_running_while_the_model_computes() -> None:
    b = MicroBatcher(Recording(delay_s=0.4), max_batch=64, max_wait_ms=1)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    t = asyncio.ensure_future(ticker())
    await b.aembed_queries(["slow model call"])
    t.cancel()
    assert ticks >= 20  # ~40 possible in 0.4 s; a blocked loop would give 0
    await b.aclose()


class Gated(Recording):
    """A model whose first call waits until the test opens the gate, so that work queues behind it."""

    def __init__(self) -> None:
        super().__init__()
        import threading

        self.gate = threading.Event()

    def embed_queries(self, texts: Sequence[str], *, dims: int | None = None) -> Vectors:
        if not self.seen:
            self.seen.append(list(texts))
            self.gate.wait(10)
            return HashingEmbedder.embed_queries(self, texts, dims=dims)
        return super().embed_queries(texts, dims=dims)


async def _as_tenant(tenant: str, coro: Callable[[], object]) -> object:
    from edgeroute.framework.serve.batcher import current_tenant

    current_tenant.set(tenant)  # each task has its own context: this sets it for this call only
    return await coro()  # type: ignore[misc]


async def test_model_work_is_shared_round_robin_between_tenants() -> None:
    inner = Gated()
    b = MicroBatcher(inner, max_batch=4, max_wait_ms=0)
    blocker = asyncio.ensure_future(_as_tenant("bulk", lambda: b.aembed_queries(["blocker"])))
    while not inner.seen:
        await asyncio.sleep(0.005)
    # While the model is busy, "bulk" queues 40 texts in one request and 3 more, then "small" and
    # "other" one query each.
    bulk = asyncio.ensure_future(
        _as_tenant("bulk", lambda: b.aembed_queries([f"bulk{i}" for i in range(40)]))
    )
    more = [
        asyncio.ensure_future(_as_tenant("bulk", lambda i=i: b.aembed_queries([f"more{i}"])))
        for i in range(3)
    ]
    await asyncio.sleep(0.02)
    small = asyncio.ensure_future(_as_tenant("small", lambda: b.aembed_queries(["small query"])))
    other = asyncio.ensure_future(_as_tenant("other", lambda: b.aembed_queries(["other query"])))
    await asyncio.sleep(0.02)
    inner.gate.set()
    out = await asyncio.gather(blocker, bulk, *more, small, other)
    batches = inner.seen[1:]
    # The first batch after the busy one already serves the two small tenants, beside bulk's slice.
    assert "small query" in batches[0] and "other query" in batches[0], batches
    assert all(len(c) <= 4 for c in batches)
    # bulk's 40 texts came back whole and in order, from 10 slices.
    bulk_rows = out[1]
    np.testing.assert_allclose(
        bulk_rows, HashingEmbedder(64).embed_queries([f"bulk{i}" for i in range(40)]), atol=1e-6
    )
    await b.aclose()


async def test_a_tenant_that_arrives_behind_a_long_queue_is_served_next() -> None:
    inner = Gated()
    b = MicroBatcher(inner, max_batch=2, max_wait_ms=0)
    blocker = asyncio.ensure_future(_as_tenant("a", lambda: b.aembed_queries(["blocker"])))
    while not inner.seen:
        await asyncio.sleep(0.005)
    a_jobs = [
        asyncio.ensure_future(_as_tenant("a", lambda i=i: b.aembed_queries([f"a{i}"]))) for i in range(10)
    ]
    await asyncio.sleep(0.02)
    late = asyncio.ensure_future(_as_tenant("b", lambda: b.aembed_queries(["b0"])))
    await asyncio.sleep(0.02)
    inner.gate.set()
    await asyncio.gather(blocker, *a_jobs, late)
    batches = inner.seen[1:]
    # Arrival order would put b0 in the sixth batch; round-robin puts it in the first.
    assert batches[0] == ["b0", "a0"] or batches[0] == ["a0", "b0"], batches
    assert [t for c in batches for t in c if t.startswith("a")] == [f"a{i}" for i in range(10)]
    await b.aclose()


# -- the wait is for requests that can still come --------------------------------------------------------


async def test_a_lone_request_in_flight_goes_to_the_model_at_once() -> None:
    inner = Recording()
    b = MicroBatcher(inner, max_batch=64, max_wait_ms=1000, in_flight=lambda: 1)
    t0 = time.perf_counter()
    out = await b.aembed_queries(["alone"])
    # Not the 1 s window (the longest allowed): anything under it did not wait it out, and a loaded
    # machine gets all the slack there is.
    assert time.perf_counter() - t0 < 1.0
    np.testing.assert_allclose(out, HashingEmbedder(64).embed_queries(["alone"]), atol=1e-6)
    assert inner.seen == [["alone"]]
    await b.aclose()


async def test_the_batch_waits_for_a_request_still_on_its_way_and_runs_when_it_arrives() -> None:
    inner = Recording()
    b = MicroBatcher(inner, max_batch=64, max_wait_ms=1000, in_flight=lambda: 2)

    async def later() -> Vectors:
        await asyncio.sleep(0.1)
        return await b.aembed_queries(["second"])

    t0 = time.perf_counter()
    _, second = await asyncio.gather(b.aembed_queries(["first"]), later())
    # One model call for both, run as soon as the second request queued (not after the 1 s window:
    # under it, the batch did not wait the window out).
    assert inner.seen == [["first", "second"]]
    assert time.perf_counter() - t0 < 1.0
    np.testing.assert_allclose(second, HashingEmbedder(64).embed_queries(["second"]), atol=1e-6)
    await b.aclose()


class StatesRecording(Recording):
    """Stands in for EdgeEmbedder's one pass of vectors and token states (one 'token' per word; the
    state marks the word "Lopez"), recording each model call."""

    has_token_states = True
    manifest = SimpleNamespace(dims=1)

    def embed_with_token_states(
        self, texts: Sequence[str], prompt: str | None = "query", *, dims: int | None = None
    ) -> tuple[Vectors, list[TokenStates]]:
        self.seen.append(list(texts))
        out = []
        for t in texts:
            words = list(re.finditer(r"\S+", t))
            mark = [[1.0 if w.group().strip("?") == "Lopez" else 0.0] * 2 for w in words]
            offsets = np.array([[w.start(), w.end()] for w in words]).reshape(-1, 2)
            out.append(TokenStates(np.array(mark, np.float32).reshape(-1, 2), offsets))
        return HashingEmbedder.embed_queries(self, texts, dims=dims), out


class MarkHead:
    dims = 2

    def spans(
        self, states: Any, offsets: Any, thresholds: dict[str, float], text: str | None = None
    ) -> list[HeadSpan]:
        return [
            HeadSpan("person", int(o[0]), int(o[1]), 0.9)
            for s, o in zip(states, offsets, strict=True)
            if s[0] > 0.5
        ]


async def test_query_findings_come_from_the_batched_pass_on_the_model_thread() -> None:
    inner = StatesRecording()
    b = MicroBatcher(inner, max_batch=64, max_wait_ms=1000, in_flight=lambda: 3)
    det = PiiDetector(PiiConfig(), embedder=b, head=MarkHead())  # type: ignore[arg-type]
    alone = PiiDetector(PiiConfig(), embedder=StatesRecording(), head=MarkHead())  # type: ignore[arg-type]
    texts = ["the prognosis for Maria Lopez?", "mail j.w@example.org", "red running shoes"]
    # A plain token-state request (the detection pass of a flow) shares the batch and gets its states.
    *got, (_, states) = await asyncio.gather(
        *(det.aembed_query(t) for t in texts), b.aembed_with_token_states(["Lopez again"])
    )
    assert len(inner.seen) == 1 and sorted(inner.seen[0]) == sorted([*texts, "Lopez again"])
    for t, (vec, found) in zip(texts, got, strict=True):
        want_vec, want_found = alone.embed_query_batch(t)
        np.testing.assert_allclose(vec, want_vec, atol=1e-6)
        assert found == want_found
    assert [f.kind for f in got[0][1]] == ["person"] and [f.kind for f in got[1][1]] == ["email"]
    assert isinstance(states[0], TokenStates)
    await b.aclose()


async def test_a_findings_function_that_raises_fails_its_request_alone() -> None:
    inner = StatesRecording()
    b = MicroBatcher(inner, max_batch=64, max_wait_ms=1000, in_flight=lambda: 2)

    def broken(text: str, states: Any) -> Any:
        raise RuntimeError("head failed")

    ok, bad = await asyncio.gather(
        b.amap_token_states(["fine Lopez"], "query", lambda t, st: len(st.states)),
        b.amap_token_states(["broken"], "query", broken),
        return_exceptions=True,
    )
    assert len(inner.seen) == 1  # one model call for both
    assert isinstance(bad, RuntimeError) and not isinstance(ok, BaseException) and ok[1] == [2]
    off = MicroBatcher(StatesRecording(), enabled=False)
    with pytest.raises(RuntimeError, match="head failed"):
        await off.amap_token_states(["broken"], "query", broken)
    await b.aclose()
    await off.aclose()
