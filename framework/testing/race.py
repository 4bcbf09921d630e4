"""A delete/ingest race on one collection, and the check that both indexes end with the last operation.

Two workers ingest and delete the same ids at random for a bounded time (at least ``seconds``, and
until ``min_operations`` were done, but never past ``max_seconds``) against one persistent
store and one outbox file (each worker its own :class:`HybridEngine`, as two ``serve`` replicas or
two threads of one would), with the emulator's latency keeping drains in flight while deletes land.
Then the outbox is drained, the store is read back by a fresh engine, and every id is judged:
its edge record, its cloud record and its outbox row must all say what the last operation on it
said. Used by the race test and by ``python -m edgeroute.framework.testing.race`` (figures).
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..cloud.embedder import CloudEmbedder
from ..cloud.retry import RetryPolicy
from ..documents import Document
from ..router.audit import AuditLog
from ..router.engine import HybridEngine
from ..router.outbox import Outbox
from ..store.chroma import VectorStore
from .emulator import GeminiEmulator
from .hashing import HashingEmbedder


@dataclass(slots=True)
class _Op:
    kind: str  # "ingest" or "delete"
    text: str | None
    start: float
    end: float


@dataclass(slots=True)
class RaceResult:
    ids: int
    operations: int
    stale: list[str] = field(default_factory=list)
    """Ids whose edge record, cloud record or outbox row disagrees with the last operation."""
    mismatched_text: list[str] = field(default_factory=list)
    """Ids present in both indexes with different content."""


def _engine(store: VectorStore, outbox: Path, emu: GeminiEmulator, name: str) -> HybridEngine:
    cloud = CloudEmbedder(
        api_key="race-key",
        base_url=emu.base_url,
        dims=128,
        timeout_s=5.0,
        retry=RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.05),
    )
    return HybridEngine(
        store, name, edge=HashingEmbedder(64), cloud=cloud, outbox=Outbox(outbox), audit=AuditLog(None)
    )


def _worker(
    engine: HybridEngine,
    ids: list[str],
    stop: threading.Event,
    seed: int,
    log: dict[str, list[_Op]],
    lock: threading.Lock,
) -> None:
    rng = random.Random(seed)
    n = 0
    while not stop.is_set():
        picked = rng.sample(ids, rng.randint(1, 4))
        n += 1
        start = time.monotonic()
        if rng.random() < 0.5:
            texts: dict[str, str | None] = {i: f"{i} version {seed}-{n} about running shoes" for i in picked}
            engine.ingest([Document(i, t or "", sensitivity="public") for i, t in texts.items()])
            kind = "ingest"
        else:
            engine.delete(picked)
            texts = {i: None for i in picked}
            kind = "delete"
        end = time.monotonic()
        with lock:
            for i in picked:
                log.setdefault(i, []).append(_Op(kind, texts[i], start, end))


def _drainer(engine: HybridEngine, stop: threading.Event) -> None:
    """The service's background drain, made eager: drains beside the writers' own."""
    while not stop.is_set():
        engine.sync()
        time.sleep(0.01)


def _operations(log: dict[str, list[_Op]], lock: threading.Lock) -> int:
    with lock:
        return sum(len(v) for v in log.values())


def run_race(
    root: Path,
    *,
    ids: int = 200,
    seconds: float = 5.0,
    latency_ms: float = 20.0,
    seed: int = 0,
    min_operations: int = 0,
    max_seconds: float | None = None,
) -> RaceResult:
    """Race two workers on ``ids`` ids for ``seconds``, and on until they have done ``min_operations``
    operations (one per id an ingest or delete names) but for at most ``max_seconds`` in all (None: no
    limit); judge every id (see the module docstring). A slow machine races longer, not less."""
    store_dir, outbox_path, name = root / "store", root / "outbox.sqlite", "race"
    all_ids = [f"doc-{i}" for i in range(ids)]
    log: dict[str, list[_Op]] = {}
    lock = threading.Lock()
    stop = threading.Event()
    with GeminiEmulator(latency_ms=latency_ms) as emu:
        store = VectorStore.persistent(store_dir)
        engines = [_engine(store, outbox_path, emu, name) for _ in range(2)]
        workers = [
            threading.Thread(target=_worker, args=(e, all_ids, stop, seed * 10 + k, log, lock))
            for k, e in enumerate(engines)
        ]
        drainer_engine = _engine(store, outbox_path, emu, name)
        engines.append(drainer_engine)
        workers.append(threading.Thread(target=_drainer, args=(drainer_engine, stop)))
        started = time.monotonic()
        for w in workers:
            w.start()
        try:
            while True:
                elapsed = time.monotonic() - started
                if max_seconds is not None and elapsed >= max_seconds:
                    break
                if elapsed >= seconds and _operations(log, lock) >= min_operations:
                    break
                if not all(w.is_alive() for w in workers):
                    break  # a worker raised (threading prints it): stop the others
                time.sleep(0.05)
        finally:
            stop.set()
        for w in workers:
            w.join()
        engines[0].sync()  # what the background drain would do next
        for e in engines:
            e.close()
        del store
        fresh_store = VectorStore.persistent(store_dir)
        fresh = _engine(fresh_store, outbox_path, emu, name)
        try:
            return _judge(fresh, log)
        finally:
            fresh.close()


def _judge(engine: HybridEngine, log: dict[str, list[_Op]]) -> RaceResult:
    edge_col = engine.open_index("edge")
    cloud_col = engine.open_index("cloud")
    ids = sorted(log)
    edge = {r.id: r.content_hash for r in (edge_col.get(ids) if edge_col else [])}
    cloud = {r.id: r.content_hash for r in (cloud_col.get(ids) if cloud_col else [])}
    queued = set(engine.outbox.queued(engine.name))
    result = RaceResult(ids=len(ids), operations=sum(len(v) for v in log.values()))
    for i in ids:
        ops = log[i]
        last_end = max(o.end for o in ops)
        # Operations that overlap the last one to finish may have been ordered either way.
        latest_start = max(o.start for o in ops if o.end == last_end)
        candidates = [o for o in ops if o.end >= latest_start]
        outcomes = {
            None if o.kind == "delete" else Document(i, o.text or "").content_hash() for o in candidates
        }
        state = edge.get(i)
        if state not in outcomes or cloud.get(i) != state or i in queued:
            result.stale.append(i)
        if i in edge and i in cloud and edge[i] != cloud[i]:
            result.mismatched_text.append(i)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--ids", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--dir", type=Path, required=True, help="an empty scratch directory")
    args = parser.parse_args()
    for run in range(args.runs):
        root = args.dir / f"run-{run}"
        root.mkdir(parents=True)
        r = run_race(root, ids=args.ids, seconds=args.seconds, latency_ms=args.latency_ms, seed=run)
        print(
            f"run {run}: {r.operations} operations on {r.ids} ids, {len(r.stale)} stale ids "
            f"({len(r.mismatched_text)} with different text in the two indexes) {r.stale[:5]}",
            flush=True,
        )


if __name__ == "__main__":
    main()
