"""``edgeroute bench serve``: requests/s and latency percentiles of ``edgeroute serve`` on loopback,
with micro-batching on and off, side by side in one run.

The bench starts its own server processes (one with batching, one without; the same store, model
and settings otherwise), indexes a small synthetic corpus once, measures the latency of single
requests sent one at a time, then holds ``concurrency`` requests in flight for ``duration_s``
seconds against each. Or it measures a server already running on loopback (``url``; then only
that server's configuration is measured). Loopback only: it is a load generator.

The load generator runs in this process (asyncio + httpx), the server in another, so the two
share the machine's cores as a client on the same host would. No cloud is configured for the
servers it starts: retrieval takes the edge route, which is the path micro-batching serves.

With the real model, single requests are also measured side by side with the query's own work in
this process: ``PiiDetector.embed_query_batch`` (one forward pass for the vector and the token
states, the PII head and patterns: what a served retrieval cannot do without) and the bare
``EdgeEmbedder.embed_queries``, in alternating rounds on the same queries, so the ratio of the
served request to its own embedding holds on a busy machine too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

from ..errors import ConfigurationError, InputError

_SUBJECTS = (
    "running shoes", "espresso machines", "mountain bikes", "noise cancelling headphones", "trail cameras",
    "standing desks", "electric kettles", "hiking backpacks", "robot vacuums", "mechanical keyboards",
    "winter jackets", "air purifiers", "camping stoves", "smart thermostats", "yoga mats", "e-readers",
)  # fmt: skip
_ASPECTS = (
    "battery life", "warranty terms", "cleaning routine", "price per year of use", "weight and size",
    "noise level", "repairability", "return policy", "energy use", "comfort over long days",
)  # fmt: skip
_ASKS = (
    "which {s} have the best {a} for someone on a tight budget",
    "how do {s} compare on {a} after two years of daily use",
    "what should I check about the {a} before buying {s} online",
    "are there {s} with good {a} that also work well for beginners",
)  # fmt: skip


def synthetic_corpus(n_docs: int = 400, seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed)
    docs = []
    for i in range(n_docs):
        s, a, b = rng.choice(_SUBJECTS), rng.choice(_ASPECTS), rng.choice(_ASPECTS)
        docs.append(
            {
                "id": f"doc-{i}",
                "title": f"{s.title()} guide {i}",
                "text": f"A buying guide for {s}: we tested {a} and {b} across {rng.randint(5, 40)} models; "
                f"model {i} stood out for {a}, while its {b} was average.",
            }
        )
    return docs


def synthetic_queries(n: int = 500, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [
        rng.choice(_ASKS).format(s=rng.choice(_SUBJECTS), a=rng.choice(_ASPECTS)) + f" (#{i})"
        for i in range(n)
    ]


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[idx]


@dataclass(frozen=True, slots=True)
class LoadResult:
    label: str
    concurrency: int
    duration_s: float
    requests: int
    errors: int
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_batch: float | None = None
    error_kinds: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SideBySide:
    """Single served requests against the same queries' own work in this process, query by query.

    Wall-clock p50s and their ratio (the target), and the CPU each costs: the server process's CPU
    per served request against this process's CPU per ``embed_query_batch``. On a machine shared with
    other work the wall-clock figures move with the load (a CPU-bound burst waits for a core as much
    as it computes); the CPU figures do not, so they say how much work the service adds.
    """

    requests: int
    served_p50_ms: float
    embed_query_p50_ms: float  # PiiDetector.embed_query_batch: vector + token states + PII findings
    embed_p50_ms: float  # EdgeEmbedder.embed_queries: the vector alone
    served_over_embed_query: float
    served_over_embed: float
    served_cpu_ms: float | None = None  # the server process's CPU per served request (all its threads)
    embed_query_cpu_ms: float | None = None
    cpu_ratio: float | None = None


@dataclass(frozen=True, slots=True)
class ServeBenchResult:
    endpoint: str
    edge: str
    concurrency: int
    duration_s: float
    single_p50_ms: float
    single_requests: int
    batched: LoadResult | None
    unbatched: LoadResult | None
    speedup: float | None
    p99_over_single: float
    max_batch: int
    max_wait_ms: float
    cores: int
    targets: dict[str, bool | None]
    side_by_side: SideBySide | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_loopback(url: str) -> str:
    host = urlparse(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise InputError(
            f"--url {url!r} is not on loopback; bench serve is a load generator and only targets this host"
        )
    return url.rstrip("/")


class _Body:
    def __init__(self, endpoint: str, collection: str, queries: list[str]) -> None:
        self.endpoint = endpoint
        self.collection = collection
        self.queries = queries
        self.i = 0

    def next(self) -> tuple[str, dict[str, Any]]:
        q = self.queries[self.i % len(self.queries)]
        self.i += 1
        if self.endpoint == "retrieve":
            return "/v1/retrieve", {"collection": self.collection, "query": q, "k": 10}
        return "/v1/embeddings", {"model": "edge", "input": q, "input_type": "query"}


async def _load(
    url: str, key: str, body: _Body, concurrency: int, duration_s: float, label: str
) -> tuple[list[float], int, dict[str, int], float]:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60.0, limits=limits
    ) as client:
        t_end = time.perf_counter() + duration_s

        async def worker() -> None:
            while time.perf_counter() < t_end:
                path, payload = body.next()
                t0 = time.perf_counter()
                try:
                    r = await client.post(path, json=payload)
                    if r.status_code != 200:
                        errors[f"http {r.status_code}"] = errors.get(f"http {r.status_code}", 0) + 1
                        continue
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    continue
                latencies.append((time.perf_counter() - t0) * 1000.0)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return latencies, sum(errors.values()), errors, elapsed


def _batch_figure(url: str) -> tuple[float, float]:
    text = httpx.get(url + "/metrics", timeout=10).text
    values = {}
    for line in text.splitlines():
        if line.startswith(("edgeroute_edge_batches_total ", "edgeroute_edge_batched_texts_total ")):
            name, value = line.split()
            values[name] = float(value)
    return values.get("edgeroute_edge_batches_total", 0.0), values.get(
        "edgeroute_edge_batched_texts_total", 0.0
    )


def measure(url: str, key: str, body: _Body, concurrency: int, duration_s: float, label: str) -> LoadResult:
    b0, t0 = _batch_figure(url)
    lat, n_err, kinds, elapsed = asyncio.run(_load(url, key, body, concurrency, duration_s, label))
    b1, t1 = _batch_figure(url)
    return LoadResult(
        label=label,
        concurrency=concurrency,
        duration_s=round(elapsed, 2),
        requests=len(lat),
        errors=n_err,
        requests_per_s=round(len(lat) / elapsed, 2) if elapsed else 0.0,
        p50_ms=round(_percentile(lat, 50), 2),
        p95_ms=round(_percentile(lat, 95), 2),
        p99_ms=round(_percentile(lat, 99), 2),
        mean_batch=round((t1 - t0) / (b1 - b0), 2) if b1 > b0 else None,
        error_kinds=kinds,
    )


def single_latency(
    url: str, key: str, body: _Body, seconds: float, max_requests: int = 200
) -> tuple[float, int]:
    """p50 of requests sent one at a time (nothing to batch with): the latency of a single request."""
    out: list[float] = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        t_end = time.perf_counter() + seconds
        while time.perf_counter() < t_end and len(out) < max_requests:
            path, payload = body.next()
            t0 = time.perf_counter()
            r = client.post(path, json=payload)
            if r.status_code == 200:
                out.append((time.perf_counter() - t0) * 1000.0)
    return round(statistics.median(out), 2) if out else float("nan"), len(out)


InProcess = Callable[[str], tuple[float, float, float]]
"""``fn(query) -> (ms with findings, ms of the bare embedding, CPU ms with findings)``: one query's
own work, timed in this process."""


def in_process_query(model: Path | None) -> InProcess:
    """The query's own work in this process, as a served retrieval does it: the default policy's
    PiiDetector over the edge model (one pass for vector and findings), and the bare embedding."""
    from ...policies.config import PolicyConfig
    from ..edge.embedder import EdgeEmbedder
    from ..pii import PiiDetector

    detector = PiiDetector(PolicyConfig(), embedder=EdgeEmbedder.load(model))
    edge = detector.embedder
    if edge is None or detector.head is None:
        raise ConfigurationError("the edge model has no token-state outputs; the side-by-side needs them")

    def run(query: str) -> tuple[float, float, float]:
        c0, t0 = time.process_time(), time.perf_counter()
        detector.embed_query_batch(query)
        t1, c1 = time.perf_counter(), time.process_time()
        edge.embed_queries([query])
        return (t1 - t0) * 1000.0, (time.perf_counter() - t1) * 1000.0, (c1 - c0) * 1000.0

    return run


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds of every live thread of process ``pid`` (Linux schedstat, nanosecond precise)."""
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total / 1e9


def side_by_side(
    url: str, key: str, body: _Body, work: InProcess, *, requests: int = 80, server_pid: int | None = None
) -> SideBySide:
    """Served single requests and ``work`` on the same queries, alternating query by query, so the
    machine's load moves both alike; with ``server_pid``, the CPU each costs too."""
    served: list[float] = []
    with_findings: list[float] = []
    bare: list[float] = []
    server_cpu = work_cpu = 0.0
    cpu_known = server_pid is not None
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        for path, payload in (body.next() for _ in range(3)):  # warm both sides
            client.post(path, json=payload)
            work(str(payload.get("query", payload.get("input"))))
        for _ in range(requests):
            path, payload = body.next()
            c0 = process_cpu_s(server_pid) if server_pid is not None else None
            t0 = time.perf_counter()
            r = client.post(path, json=payload)
            ms = (time.perf_counter() - t0) * 1000.0
            c1 = process_cpu_s(server_pid) if server_pid is not None else None
            if r.status_code != 200:
                continue
            served.append(ms)
            if c0 is not None and c1 is not None:
                server_cpu += c1 - c0
            else:
                cpu_known = False
            a, b, cpu_ms = work(str(payload.get("query", payload.get("input"))))
            work_cpu += cpu_ms
            with_findings.append(a)
            bare.append(b)
    med = statistics.median
    s50, q50, e50 = med(served), med(with_findings), med(bare)
    n = len(served)
    q_cpu = work_cpu / n if n else None
    s_cpu = server_cpu / n * 1000.0 if cpu_known and n else None
    return SideBySide(
        requests=n,
        served_p50_ms=round(s50, 2),
        embed_query_p50_ms=round(q50, 2),
        embed_p50_ms=round(e50, 2),
        served_over_embed_query=round(s50 / q50, 3),
        served_over_embed=round(s50 / e50, 3),
        served_cpu_ms=None if s_cpu is None else round(s_cpu, 2),
        embed_query_cpu_ms=None if q_cpu is None else round(q_cpu, 2),
        cpu_ratio=None if s_cpu is None or not q_cpu else round(s_cpu / q_cpu, 3),
    )


@contextlib.contextmanager
def _server(
    store: Path,
    keys: Path,
    *,
    batching: bool,
    edge: str,
    model: Path | None,
    max_batch: int,
    max_wait_ms: float,
    log: Path,
    with_pid: bool = False,
) -> Iterator[Any]:
    """The server's URL, or ``(url, pid)`` with ``with_pid`` (``bench limits`` reads its RSS)."""
    from ..serve.server import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    args = [
        sys.executable, "-m", "edgeroute.framework.cli", "serve", "--store", str(store), "--keys", str(keys),
        "--port", str(port), "--edge", edge, "--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms),
        "--batching" if batching else "--no-batching", "--log-level", "warning",
    ]  # fmt: skip
    if model is not None:
        args += ["--model", str(model)]
    with log.open("ab") as fh:
        proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ConfigurationError(
                    f"the bench server did not start; its log: {log}\n{log.read_text()[-2000:]}"
                )
            time.sleep(0.25)
        yield (url, proc.pid) if with_pid else url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_serve_bench(
    concurrency: int = 32,
    duration_s: float = 30.0,
    *,
    url: str | None = None,
    key: str | None = None,
    collection: str = "bench",
    endpoint: str = "retrieve",
    edge: str = "model",
    model: Path | None = None,
    compare: bool = True,
    max_batch: int = 32,
    max_wait_ms: float = 2.0,
    warmup_s: float = 3.0,
    single_s: float = 8.0,
    docs: int = 400,
    progress: Callable[[str], None] | None = None,
    load: bool = True,
    in_process: InProcess | None = None,
    side_requests: int = 80,
) -> ServeBenchResult:
    """Measure the service; see the module docstring. ``url`` + ``key`` target a running loopback server.

    ``load=False`` measures single requests only (no concurrent runs, no batching-off server).
    ``in_process``: the query's own work timed in this process (:func:`in_process_query`, loaded
    here by default with the real model) for the side-by-side of ``side_requests`` single requests."""
    if concurrency < 1 or duration_s <= 0:
        raise InputError("--concurrency must be >= 1 and --duration > 0")
    if endpoint not in ("retrieve", "embeddings"):
        raise InputError(f"--endpoint must be 'retrieve' or 'embeddings', got {endpoint!r}")
    say = progress or (lambda _msg: None)
    queries = synthetic_queries()
    body = _Body(endpoint, collection, queries)
    if in_process is None and edge == "model" and endpoint == "retrieve":
        say("loading the edge model in this process for the side-by-side")
        in_process = in_process_query(model)
    pair: list[SideBySide] = []

    def one_server(
        target: str, k: str, label: str, do_single: bool, pid: int | None = None
    ) -> tuple[LoadResult | None, float, int]:
        if endpoint == "retrieve":
            say(f"{label}: indexing the corpus")
            r = httpx.post(target + "/v1/documents", json={"collection": collection, "documents": synthetic_corpus(docs)},
                           headers={"Authorization": f"Bearer {k}"}, timeout=600)  # fmt: skip
            if r.status_code != 200:
                raise ConfigurationError(
                    f"indexing the bench corpus failed: HTTP {r.status_code} {r.text[:300]}"
                )
        say(f"{label}: warming up")
        measure(target, k, body, concurrency if load else 1, warmup_s, "warmup")
        single, n_single = (float("nan"), 0)
        if do_single:
            say(f"{label}: single requests")
            single, n_single = single_latency(target, k, body, single_s)
            if in_process is not None:
                say(f"{label}: single requests side by side with the query's own work in this process")
                pair.append(side_by_side(target, k, body, in_process, requests=side_requests, server_pid=pid))
        if not load:
            return None, single, n_single
        say(f"{label}: {concurrency} concurrent for {duration_s:g} s")
        return measure(target, k, body, concurrency, duration_s, label), single, n_single

    if url is not None:
        if not key:
            raise InputError("--url needs --key (an API key of that server)")
        target = check_loopback(url)
        batched, single, n_single = one_server(target, key, "server", True)
        unbatched = None
    else:
        from ..serve.keys import KeyStore

        with tempfile.TemporaryDirectory(prefix="edgeroute-bench-serve-") as tmp:
            root = Path(tmp)
            keys = root / "keys.json"
            bench_key, _ = KeyStore(keys).create("bench")
            common = {
                "edge": edge,
                "model": model,
                "max_batch": max_batch,
                "max_wait_ms": max_wait_ms,
                "log": root / "server.log",
            }
            with _server(root / "store", keys, batching=True, with_pid=True, **common) as (target, pid):  # type: ignore[arg-type]
                batched, single, n_single = one_server(target, bench_key, "batching on", True, pid)
            unbatched = None
            if compare and load:
                with _server(root / "store", keys, batching=False, **common) as target:  # type: ignore[arg-type]
                    unbatched, _, _ = one_server(target, bench_key, "batching off", False)
    speedup = (
        round(batched.requests_per_s / unbatched.requests_per_s, 2)
        if batched is not None and unbatched is not None and unbatched.requests_per_s
        else None
    )
    p99_ratio = (
        round(batched.p99_ms / single, 2)
        if batched is not None and single == single and single > 0
        else float("nan")
    )
    sbs = pair[0] if pair else None
    return ServeBenchResult(
        endpoint=endpoint,
        edge=edge if url is None else "server's",
        concurrency=concurrency,
        duration_s=duration_s,
        single_p50_ms=single,
        single_requests=n_single,
        batched=batched,
        unbatched=unbatched,
        speedup=speedup,
        p99_over_single=p99_ratio,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        cores=os.cpu_count() or 1,
        targets={
            "speedup_ge_3": None if speedup is None else speedup >= 3.0,
            "p99_le_4x_single": p99_ratio <= 4.0 if p99_ratio == p99_ratio else None,
            "zero_errors": (batched is None or batched.errors == 0)
            and (unbatched is None or unbatched.errors == 0),
            "single_le_1_3x_embed_query": None if sbs is None else sbs.served_over_embed_query <= 1.3,
        },
        side_by_side=sbs,
    )


__all__ = [
    "InProcess",
    "LoadResult",
    "ServeBenchResult",
    "SideBySide",
    "check_loopback",
    "in_process_query",
    "run_serve_bench",
    "side_by_side",
    "synthetic_corpus",
    "synthetic_queries",
]
