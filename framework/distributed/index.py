"""``index_with_ray``: ``edgeroute index`` with the model passes on a Ray cluster.

The driver (this process) does everything ``edgeroute index`` does, in the same order and with the
same functions (:func:`edgeroute.framework.cli.index_run.run_index`): loading and chunking, the id
collision and duplicate checks, content-hash skipping and relabelling, every write to the Chroma
server, the placement, the outbox, pruning and the audit. Only the model passes (one per changed
document: its vector and its PII findings) run on the actor pool. Documents the policy lets go to the
cloud are queued in this process's outbox; no worker calls the cloud.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from ..cli.index_run import IndexOutcome, run_index
from ..cli.progress import ProgressFn, quiet
from ..errors import ConfigurationError
from ..settings import RouterSettings, resolve_settings
from .cluster import LOCAL, default_workers, import_ray, ray_cluster

if TYPE_CHECKING:
    from ..router.engine import HybridEngine
    from .runner import RayPasses, RayStats


@dataclass
class RayIndexOutcome(IndexOutcome):
    """:class:`IndexOutcome` and what the actor pool did."""

    workers: int = 0
    cpus_per_worker: int = 1
    address: str = LOCAL
    pool: RayStats | None = None


def require_chroma_server(settings: RouterSettings) -> None:
    """An embedded store has one writer; a job on a cluster writes through a ``chroma run`` server."""
    if not settings.chroma_url:
        raise ConfigurationError(
            "indexing on Ray needs a Chroma server (an embedded store takes one writer, on one machine): "
            "start one (`chroma run --path DIR --host 127.0.0.1 --port 8000`) and pass "
            "--chroma-url http://127.0.0.1:8000 (or set $EDGEROUTE_CHROMA_URL)"
        )


def index_with_ray(
    paths: Sequence[str | Path],
    *,
    address: str = LOCAL,
    settings: RouterSettings | None = None,
    workers: int | None = None,
    cpus_per_worker: int = 1,
    sensitivity: str = "internal",
    prune: bool = True,
    skip_bad: bool = False,
    id_prefix: str | None = None,
    progress: ProgressFn = quiet,
) -> RayIndexOutcome:
    """Index ``paths`` as ``edgeroute index`` does, the model passes on ``workers`` Ray actors of
    ``cpus_per_worker`` CPUs each (default: one per ``cpus_per_worker`` CPUs of the cluster).

    ``address``: ``"local"`` starts a cluster on this machine for the job; anything else is given to
    ``ray.init(address=...)`` (``"auto"``, ``"ray://HOST:10001"``). ``settings`` (default: from the
    environment, :func:`~edgeroute.framework.settings.resolve_settings`) must name a Chroma server
    (``chroma_url``). Raises before any work when it does not, or when Ray is not installed.
    """
    from ..cli.options import check_sensitivity_option
    from ..router.provenance import check_prefix

    settings = settings if settings is not None else resolve_settings()
    require_chroma_server(settings)
    if cpus_per_worker < 1:
        raise ConfigurationError(f"cpus_per_worker must be >= 1, got {cpus_per_worker}")
    if workers is not None and workers < 1:
        raise ConfigurationError(f"workers must be >= 1, got {workers}")
    level = check_sensitivity_option(sensitivity)
    prefix = check_prefix(id_prefix)
    import_ray()  # before any work: the install hint, not a traceback after the files were read
    # A local cluster is sized for the pool; an existing one sizes the pool (one actor per CPUs given).
    n = workers if workers is not None or address != LOCAL else default_workers(cpus_per_worker)
    local_cpus = (n or 1) * cpus_per_worker
    runners: list[RayPasses] = []

    def shown(stage: str, done: int, total: int | None) -> None:
        progress("written" if stage == "edge" else stage, done, total)  # the workers embed; this writes

    joined: list[ModuleType] = []
    with ExitStack() as cluster:

        def connect() -> ModuleType:
            # Joined at the first job: a run refused by the id checks, or with nothing changed, starts no Ray.
            if not joined:
                joined.append(cluster.enter_context(ray_cluster(address, cpus=local_cpus)))
            return joined[0]

        def passes(engine: HybridEngine) -> RayPasses:
            from .runner import RayPasses, worker_spec

            spec = worker_spec(engine, cpus_per_worker)
            runner = RayPasses(connect, spec, workers=n, cpus_per_worker=cpus_per_worker, progress=shown)
            runners.append(runner)
            return runner

        done = run_index(
            settings,
            [Path(p) for p in paths],
            level,
            prune=prune,
            skip_bad=skip_bad,
            id_prefix=prefix,
            progress=shown,
            passes=passes,
        )
    if done.report is not None:
        progress("queued", done.report.queued, done.report.queued)
    return RayIndexOutcome(
        **{
            f: getattr(done, f)
            for f in ("loaded", "report", "not_indexable", "pruned", "truncated", "waited_s")
        },
        workers=runners[0].workers() if runners and runners[0].started else (n or 0),
        cpus_per_worker=cpus_per_worker,
        address=address,
        pool=runners[0].stats if runners else None,
    )


__all__ = ["RayIndexOutcome", "index_with_ray", "require_chroma_server"]
