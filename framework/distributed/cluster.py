"""Reaching a Ray cluster: an existing one by address, or a local one started for one job.

Ray is an optional dependency (the ``ray`` extra); importing it is the first thing that fails, with
the command that installs it.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from ..errors import ConfigurationError

LOCAL = "local"
"""``--ray local``: start a Ray cluster on this machine for the job, and stop it afterwards."""

_INSTALL = "pip install 'edgeroute[ray]'"


def import_ray() -> ModuleType:
    """The ``ray`` module with Ray Data, or :class:`ConfigurationError` saying how to install it."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise ConfigurationError(
            f"indexing on Ray needs Ray Data, which is not installed ({exc.msg}): {_INSTALL}"
        ) from None
    return ray


@contextmanager
def ray_cluster(address: str, *, cpus: int) -> Iterator[ModuleType]:
    """``ray`` connected to ``address`` (``local``: a cluster of ``cpus`` CPUs on this machine, stopped
    on exit). A process that already called ``ray.init`` keeps its connection, and it stays open."""
    ray = import_ray()
    # Ray Data logs each execution plan, its progress and its tuning hints on stderr: the command
    # prints its own progress, and its errors reach the caller as exceptions.
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="The minimum number of concurrent actors", category=UserWarning)
    if ray.is_initialized():
        yield ray
        return
    if address == LOCAL:
        # No dashboard (its processes cost a core's worth of start-up on a small box); the workers' logs
        # stay in the session directory, off the command's output.
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    else:
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigurationError(
                f"cannot reach the Ray cluster at {address!r} ({exc}); start one (`ray start --head`) "
                "and give its address (`--ray auto` on one of its nodes, or `--ray ray://HOST:10001`), "
                "or use `--ray local`"
            ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def default_workers(cpus_per_worker: int) -> int:
    """Actors for a local cluster: one per ``cpus_per_worker`` cores of this machine."""
    return max(1, (os.cpu_count() or 1) // max(1, cpus_per_worker))


__all__ = ["LOCAL", "default_workers", "import_ray", "ray_cluster"]
