"""The model passes of one ingest on a Ray Data actor pool (:class:`RayPasses`).

The driver's ingest plans every job (the same groups, so the same model calls, as in one process:
vectors match the single-process run's) and writes each result as it comes back; the jobs go through
``ray.data.from_items(...).map_batches(PassWorker, compute=ActorPoolStrategy(size=N))``, one job per
batch, and come back as they finish. Ray Data restarts an actor that dies and retries its job there
(``max_restarts``/``max_task_retries``): a job's result is written once, by the driver, whichever
attempt computed it.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..aio import to_thread
from ..edge.embedder import EdgeEmbedder
from ..errors import StoreError
from ..router.passes import PassJob, PassResult
from ..router.reports import ProgressFn
from .wire import decode_result, encode_job
from .worker import CRASH_ENV, PassWorker, WorkerSpec

if TYPE_CHECKING:
    from ..router.engine import HybridEngine


def worker_spec(engine: HybridEngine, cpus_per_worker: int) -> WorkerSpec:
    """What the actors need to build the engine's edge embedder and PII detector."""
    edge = engine.edge
    model = isinstance(edge, EdgeEmbedder)
    return WorkerSpec(
        edge="model" if model else "hashing",
        model_dir=str(edge.model_dir) if isinstance(edge, EdgeEmbedder) else None,
        dims=engine.edge_dims,
        hashing_dims=engine.edge_space.dims,
        policy_json=engine.policy.model_dump_json(),
        threads=cpus_per_worker,
        space=engine.edge_space.fingerprint,
        detector_version=engine.pii.version,
        crash_at=os.environ.get(CRASH_ENV) or None,
        # build_engine loads the driver's model with verify=True (EdgeEmbedder.load's default).
        verified_on=socket.gethostname() if model else None,
    )


@dataclass
class RayStats:
    """What the pool did in one ingest: jobs and documents passed, how long the pool ran (from the start
    of the execution to the last result, the actors' start and model load included), and the seconds the
    actors spent in the jobs themselves (all actors together)."""

    jobs: int = 0
    documents: int = 0
    pool_s: float = 0.0
    worker_s: float = 0.0

    def to_dict(self) -> dict[str, float | int]:
        return {
            "jobs": self.jobs,
            "documents": self.documents,
            "pool_s": round(self.pool_s, 3),
            "worker_s": round(self.worker_s, 3),
        }


class RayPasses:
    """A :class:`~edgeroute.framework.router.passes.PassRunner` on ``workers`` Ray actors of
    ``cpus_per_worker`` CPUs each (None: one per ``cpus_per_worker`` CPUs of the cluster).

    ``connect()`` gives the ``ray`` module joined to the cluster (:func:`.cluster.ray_cluster`); it is
    called at the first job. Each job's result is yielded once: a second copy (a retried job whose first
    attempt did finish) is dropped, and a job that never came back is an error, not a silent gap."""

    def __init__(
        self,
        connect: Callable[[], ModuleType],
        spec: WorkerSpec,
        *,
        workers: int | None,
        cpus_per_worker: int,
        progress: ProgressFn | None = None,
    ) -> None:
        self._connect = connect
        self._spec = spec
        self._workers = workers
        self._cpus = cpus_per_worker
        self._progress = progress
        self.stats = RayStats()
        self.started = False
        """True once the pool ran a job (the cluster was joined)."""

    async def run(self, jobs: AsyncIterator[PassJob]) -> AsyncIterator[PassResult]:
        planned = [job async for job in jobs]
        if not planned:
            return  # nothing changed: no actor is started
        self.stats.jobs += len(planned)
        total = sum(len(j.docs) for j in planned)
        t0 = time.perf_counter()
        self.started = True
        rows = await to_thread(self._start, planned)
        done = 0
        seen: set[int] = set()
        try:
            while (row := await to_thread(next, rows, None)) is not None:
                seq, vecs, found, seconds = decode_result(row)
                self.stats.worker_s += seconds
                if seq in seen:
                    continue
                seen.add(seq)
                job = planned[seq]
                done += len(job.docs)
                self.stats.documents += len(job.docs)
                if self._progress is not None:
                    self._progress("embedded", done, total)
                yield PassResult(job, vecs, found)
        finally:
            self.stats.pool_s += time.perf_counter() - t0
        if len(seen) != len(planned):
            missing = [planned[i].docs[0].id for i in range(len(planned)) if i not in seen]
            raise StoreError(
                f"the Ray pool returned {len(seen)} of {len(planned)} jobs (first missing: {missing[:3]}); "
                "what came back is written: run the same index again to embed the rest"
            )

    def workers(self) -> int:
        """Actors in the pool: as asked, else one per ``cpus_per_worker`` CPUs of the cluster."""
        if self._workers is None:
            cpus = int(self._connect().cluster_resources().get("CPU", 1))
            self._workers = max(1, cpus // self._cpus)
        return self._workers

    def _start(self, planned: list[PassJob]) -> Iterator[dict[str, Any]]:
        data = self._connect().data
        ctx = data.DataContext.get_current()
        ctx.enable_progress_bars = False  # the command draws its own
        # One block per job: an actor takes a job as soon as it is free (one block of all jobs would
        # keep every job on one actor).
        rows = [{"seq": i, "job": encode_job(j)} for i, j in enumerate(planned)]
        ds = data.from_items(rows, override_num_blocks=len(rows))
        # Ray Data's actors restart when they die and their jobs are retried there (max_restarts and
        # max_task_retries are -1 for an actor pool). The spec travels in the class, not as constructor
        # arguments in the object store, which Ray warns a restart may not find again.
        spec = self._spec
        bound = type("PassWorker", (PassWorker,), {"__init__": lambda w: PassWorker.__init__(w, spec)})
        ds = ds.map_batches(
            bound,
            batch_size=1,  # one job: one model call, grouped by the driver as in one process
            batch_format="numpy",
            compute=data.ActorPoolStrategy(size=min(self.workers(), len(rows))),
            num_cpus=self._cpus,
        )
        out: Iterator[dict[str, Any]] = iter(ds.iter_rows())
        return out


__all__ = ["RayPasses", "RayStats", "worker_spec"]
