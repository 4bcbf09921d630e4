"""``edgeroute bench cloud``: CloudEmbedder throughput and per-call overhead against the loopback emulator."""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from typing import Any

from ..cloud.embedder import CloudEmbedder
from ..testing.emulator import GeminiEmulator

_KEY = "edgeroute-bench-key"


@dataclass(frozen=True, slots=True)
class CloudBenchResult:
    """Measured figures; targets: ``ingest_s <= 3`` at 50 ms latency, ``overhead_p50_ms <= 5``."""

    texts: int
    latency_ms: float
    concurrency: int
    calls: int
    ingest_s: float
    texts_per_s: float
    overhead_p50_ms: float
    overhead_p90_ms: float
    overhead_samples: int
    sdk_only_p50_ms: float
    ingest_target_met: bool
    overhead_target_met: bool

    def as_dict(self) -> dict[str, float | int | bool]:
        return asdict(self)


def _serve(conn: Connection, latency_ms: float) -> None:
    with GeminiEmulator(api_key=_KEY, latency_ms=latency_ms) as emu:
        conn.send(emu.base_url)
        while True:
            msg = conn.recv()
            if msg == "stop":
                return
            conn.send(emu.request_count)


@contextmanager
def _emulator_process(latency_ms: float) -> Iterator[tuple[str, Callable[[], int]]]:
    """The emulator in its own process, as a real server would be: its CPU time is not the client's."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(child, latency_ms), daemon=True)
    proc.start()
    try:
        base_url = str(parent.recv())

        def count() -> int:
            parent.send("count")
            return int(parent.recv())

        yield base_url, count
    finally:
        parent.send("stop")
        proc.join(timeout=10)


def _sdk_call(cloud: CloudEmbedder, client: Any, i: int, dims: int) -> float:
    """One query straight through the SDK's own sync API (a client built with the same options, the
    same prefix); returns milliseconds."""
    from google.genai import types

    contents = [types.Content(parts=[types.Part(text=f"task: search result | query: query {i}")])]
    config = types.EmbedContentConfig(output_dimensionality=dims)
    t = time.perf_counter()
    client.models.embed_content(model=cloud.model, contents=contents, config=config)
    return (time.perf_counter() - t) * 1000


def run_cloud_bench(
    *,
    texts: int = 1000,
    latency_ms: float = 50.0,
    concurrency: int = 8,
    overhead_calls: int = 50,
    dims: int = 768,
    progress: Callable[[str, int, int], None] | None = None,
) -> CloudBenchResult:
    """Ingest ``texts`` documents at ``latency_ms`` injected latency, then time single-query calls.

    The emulator runs in a separate process. Overhead per call = wall time of
    ``embed_queries([q])`` minus the injected latency, so it counts the client, the SDK, HTTP on
    loopback and the emulator's own work: an upper bound on the client's share.
    """
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    docs = [f"document {i}: notes about topic {i % 37} and item {i * 7 % 101}" for i in range(texts)]
    with _emulator_process(latency_ms) as (base_url, request_count):
        cloud = CloudEmbedder(dims=dims, api_key=_KEY, base_url=base_url, concurrency=concurrency)
        cloud.embed_queries(["warm-up"])  # connection pool and SDK import costs are not per-call costs
        before = request_count()
        t0 = time.perf_counter()
        cloud.embed_documents(docs)
        ingest_s = time.perf_counter() - t0
        calls = request_count() - before
        if progress:
            progress("ingest", texts, texts)
        samples: list[float] = []
        sdk_samples: list[float] = []
        sdk_client = cloud._new_client()
        _sdk_call(cloud, sdk_client, -1, dims)  # its own warm-up
        for i in range(overhead_calls):
            t = time.perf_counter()
            cloud.embed_queries([f"query {i}"])
            samples.append((time.perf_counter() - t) * 1000 - latency_ms)
            # Interleaved with a bare SDK call, so both see the same machine load: the gap is edgeroute's.
            sdk_samples.append(_sdk_call(cloud, sdk_client, i, dims) - latency_ms)
            if progress:
                progress("overhead", i + 1, overhead_calls)
    samples.sort()
    p50 = statistics.median(samples)
    p90 = samples[int(0.9 * (len(samples) - 1))]
    return CloudBenchResult(
        texts=texts,
        latency_ms=latency_ms,
        concurrency=concurrency,
        calls=calls,
        ingest_s=round(ingest_s, 3),
        texts_per_s=round(texts / ingest_s, 1),
        overhead_p50_ms=round(p50, 2),
        overhead_p90_ms=round(p90, 2),
        overhead_samples=len(samples),
        sdk_only_p50_ms=round(statistics.median(sdk_samples), 2),
        ingest_target_met=ingest_s <= 3.0,
        overhead_target_met=p50 <= 5.0,
    )
