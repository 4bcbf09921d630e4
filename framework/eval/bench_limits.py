"""``edgeroute bench limits``: the service's limits under hostile input, measured on loopback.

It starts one ``edgeroute serve`` process (hashing edge embedder, so the model plays no part; no
cloud, so the cloud plays none either), indexes a small corpus, and prints:

* **Huge bodies.** A ``/v1/documents`` request announcing ``body_mb`` MiB with ``Content-Length``, and
  another sent chunked without a length, each streamed from this process until the server answers:
  the status, the seconds to the answer, the bytes the client got out before it, and the server's
  RSS idle, at its peak while the body was refused (sampled every 10 ms), and after.
* **A flood of refused requests.** A tenant's ``/v1/retrieve`` p50, sent one at a time, alone and
  while another tenant (rate limit 1 request/s) floods the server from a second process with
  ``flood_concurrency`` requests in flight (each with a ``flood_body_kb`` KiB query), all but one
  refused with 429; and the server CPU the flood added per refused request. The phases alternate
  (alone, flood, alone, flood, ...) and the medians are compared, so a busy machine moves both.

Loopback only: it is a load generator.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import statistics
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from ..errors import InputError
from .bench_serve import _server, synthetic_corpus, synthetic_queries

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class BodyResult:
    mode: str  # "content-length" or "chunked"
    announced_mb: float | None
    status: int | None
    seconds_to_answer: float
    sent_mb: float
    rss_idle_mb: float
    rss_peak_mb: float
    rss_after_mb: float
    healthz_ms_after: float


@dataclass(frozen=True, slots=True)
class FloodResult:
    rounds: int
    alone_p50_ms: list[float]
    flood_p50_ms: list[float]
    alone_median_ms: float
    flood_median_ms: float
    ratio: float
    flood_requests: int
    flood_refused_429: int
    flood_per_s: float
    flood_body_kb: int
    server_cpu_ms_per_refused: float


@dataclass(frozen=True, slots=True)
class LimitsBenchResult:
    bodies: list[BodyResult]
    flood: FloodResult
    cores: int
    targets: dict[str, bool]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


class _Sampler:
    """The peak RSS of ``pid``, sampled every 10 ms in a thread while in the ``with`` block."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            self._stop.wait(0.01)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, rss_mb(self.pid))


def send_huge_body(url: str, key: str, total_bytes: int, *, chunked: bool) -> tuple[int | None, float, int]:
    """Stream a ``total_bytes`` body to ``/v1/documents`` until the server answers or closes.
    Returns (status or None, seconds to the answer, bytes sent)."""
    host, port = url.rsplit("//", 1)[1].split(":")
    lines = [
        "POST /v1/documents HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        f"Authorization: Bearer {key}",
        "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total_bytes}",
    ]
    piece = b'{"collection": "bench", "documents": [' + b"x" * (MiB - 40)
    t0 = time.perf_counter()
    sent = 0
    got = b""
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        sock.settimeout(0.0)
        while sent < total_bytes and not got:
            try:
                got = sock.recv(65536)
                if not got:
                    break  # closed
            except BlockingIOError:
                pass
            except OSError:
                break
            frame = (f"{len(piece):x}\r\n".encode() + piece + b"\r\n") if chunked else piece
            try:
                sock.settimeout(10)
                sock.sendall(frame)
                sock.settimeout(0.0)
                sent += len(piece)
            except OSError:
                break  # the server answered and closed while this chunk was going out
        sock.settimeout(30)
        try:
            while b"\r\n" not in got:
                more = sock.recv(65536)
                if not more:
                    break
                got += more
        except OSError:
            pass
    elapsed = time.perf_counter() - t0
    status = int(got.split(b" ", 2)[1]) if got.startswith(b"HTTP/1.1 ") else None
    return status, elapsed, sent


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _flood_process(url: str, key: str, concurrency: int, stop_at: float, body_kb: int, out: Any) -> None:
    payload = {"collection": "bench", "query": "flood " + "x" * (body_kb * 1024)}

    async def run() -> tuple[int, int]:
        counts = [0, 0]
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30, limits=limits
        ) as client:

            async def worker() -> None:
                while time.time() < stop_at:
                    try:
                        r = await client.post("/v1/retrieve", json=payload)
                    except httpx.HTTPError:
                        continue
                    counts[0] += 1
                    counts[1] += r.status_code == 429

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return counts[0], counts[1]

    out.put(asyncio.run(run()))


def _p50_for(client: httpx.Client, queries: list[str], seconds: float, start: int) -> tuple[float, int]:
    out: list[float] = []
    t_end = time.perf_counter() + seconds
    i = start
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        r = client.post(
            "/v1/retrieve", json={"collection": "bench", "query": queries[i % len(queries)], "k": 10}
        )
        i += 1
        if r.status_code == 200:
            out.append((time.perf_counter() - t0) * 1000.0)
    return (statistics.median(out) if out else float("nan")), i


def run_limits_bench(
    *,
    body_mb: float = 1024.0,
    phase_s: float = 5.0,
    rounds: int = 3,
    flood_concurrency: int = 16,
    flood_body_kb: int = 16,
    docs: int = 400,
    progress: Any = None,
) -> LimitsBenchResult:
    if body_mb <= 0 or phase_s <= 0 or rounds < 1 or flood_concurrency < 1:
        raise InputError("--body-mb, --phase and --flood-concurrency must be positive, --rounds >= 1")
    say = progress or (lambda _m: None)
    from ..serve.keys import KeyStore

    with tempfile.TemporaryDirectory(prefix="edgeroute-bench-limits-") as tmp:
        root = Path(tmp)
        keys = root / "keys.json"
        store = KeyStore(keys)
        key, _ = store.create("quiet")
        flood_key, _ = store.create("flood", limits={"rate_per_s": 1.0, "burst": 1})
        with _server(
            root / "store", keys, batching=True, edge="hashing", model=None, max_batch=32, max_wait_ms=2.0,
            log=root / "server.log", with_pid=True,
        ) as (url, pid):  # fmt: skip
            auth = {"Authorization": f"Bearer {key}"}
            say("indexing the corpus")
            r = httpx.post(url + "/v1/documents", json={"collection": "bench", "documents": synthetic_corpus(docs)},
                           headers=auth, timeout=600)  # fmt: skip
            r.raise_for_status()
            queries = synthetic_queries()
            with httpx.Client(base_url=url, headers=auth, timeout=60) as client:
                _p50_for(client, queries, 1.0, 0)  # warm up
            bodies = []
            for chunked in (False, True):
                mode = "chunked" if chunked else "content-length"
                say(f"a {body_mb:g} MiB body, {mode}")
                idle = rss_mb(pid)
                with _Sampler(pid) as sampler:
                    status, seconds, sent = send_huge_body(url, key, int(body_mb * MiB), chunked=chunked)
                    time.sleep(0.3)
                t0 = time.perf_counter()
                httpx.get(url + "/healthz", timeout=60)
                health_ms = (time.perf_counter() - t0) * 1000
                bodies.append(
                    BodyResult(
                        mode=mode,
                        announced_mb=None if chunked else body_mb,
                        status=status,
                        seconds_to_answer=round(seconds, 3),
                        sent_mb=round(sent / MiB, 1),
                        rss_idle_mb=round(idle, 1),
                        rss_peak_mb=round(sampler.peak, 1),
                        rss_after_mb=round(rss_mb(pid), 1),
                        healthz_ms_after=round(health_ms, 1),
                    )
                )
            flood = _flood_rounds(
                url, pid, key, flood_key, queries, phase_s, rounds, flood_concurrency, flood_body_kb, say
            )
    body_ok = all(b.status == 413 and b.rss_peak_mb - b.rss_idle_mb <= 100 for b in bodies)
    return LimitsBenchResult(
        bodies=bodies,
        flood=flood,
        cores=os.cpu_count() or 1,
        targets={"huge_body_413_within_100_mb": body_ok, "flood_p50_le_2x": flood.ratio <= 2.0},
    )


def _flood_rounds(
    url: str,
    pid: int,
    key: str,
    flood_key: str,
    queries: list[str],
    phase_s: float,
    rounds: int,
    conc: int,
    body_kb: int,
    say: Any,
) -> FloodResult:
    ctx = multiprocessing.get_context("spawn")
    alone: list[float] = []
    flooded: list[float] = []
    total = refused = 0
    flood_s = 0.0
    i = 0
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        for n in range(rounds):
            say(f"round {n + 1}/{rounds}: alone")
            p50, i = _p50_for(client, queries, phase_s, i)
            alone.append(round(p50, 2))
            say(f"round {n + 1}/{rounds}: during the flood")
            out = ctx.Queue()
            lead = 1.0  # the flood process starts (imports) before the measured phase
            stop_at = time.time() + lead + phase_s
            proc = ctx.Process(
                target=_flood_process, args=(url, flood_key, conc, stop_at, body_kb, out), daemon=True
            )
            proc.start()
            time.sleep(lead)
            p50, i = _p50_for(client, queries, phase_s, i)
            flooded.append(round(p50, 2))
            sent, got_429 = out.get(timeout=60)
            proc.join(30)
            total += sent
            refused += got_429
            flood_s += phase_s + lead
    # The server CPU one refused request costs: a flood on its own, the server's CPU time over it.
    say("the flood alone (server CPU per refused request)")
    out = ctx.Queue()
    c0 = cpu_s(pid)
    proc = ctx.Process(
        target=_flood_process,
        args=(url, flood_key, conc, time.time() + 1.0 + phase_s, body_kb, out),
        daemon=True,
    )
    proc.start()
    alone_sent, _ = out.get(timeout=60)
    proc.join(30)
    cpu_per = 1000 * (cpu_s(pid) - c0) / alone_sent if alone_sent else float("nan")
    a, f = statistics.median(alone), statistics.median(flooded)
    return FloodResult(
        rounds=rounds,
        alone_p50_ms=alone,
        flood_p50_ms=flooded,
        alone_median_ms=round(a, 2),
        flood_median_ms=round(f, 2),
        ratio=round(f / a, 2) if a else float("nan"),
        flood_requests=total,
        flood_refused_429=refused,
        flood_per_s=round(total / flood_s, 1) if flood_s else 0.0,
        flood_body_kb=body_kb,
        server_cpu_ms_per_refused=round(cpu_per, 3),
    )


__all__ = ["BodyResult", "FloodResult", "LimitsBenchResult", "run_limits_bench", "send_huge_body"]
