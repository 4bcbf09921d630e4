"""One actor of the pool: an edge model loaded once, the model passes of the jobs it is given.

Each actor builds the same edge embedder and PII detector the driver's engine has (same model
directory, dims and policy) and checks, before its first job, that its embedding space and detector
version are the driver's: a worker node with another model would otherwise return vectors and
findings the driver stores under the wrong space and version. ONNX Runtime does not read ``OMP_NUM_THREADS``, so the session's
intra-op threads are set to the actor's CPUs here.

A row in is one job (:func:`~edgeroute.framework.distributed.wire.encode_job`); a row out is its vectors
and findings (:func:`~edgeroute.framework.distributed.wire.result_row`). Nothing here writes anywhere
or calls the cloud: the driver does every write.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..embedder import Embedder
from ..errors import ConfigurationError
from ..pii import PiiDetector
from ..router.placement import pii_text
from .wire import decode_job, result_row

CRASH_ENV = "EDGEROUTE_RAY_CRASH_AT"
"""Test hook: ``N:FILE`` makes the actor that takes the job with sequence number N exit at once
(``os._exit``), once per FILE (created as it dies), so Ray restarts the actor and retries the job."""


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What every actor needs to build the driver's edge embedder and PII detector."""

    edge: str  # "model" (EmbeddingGemma or a model directory) or "hashing" (tests)
    model_dir: str | None
    dims: int | None
    hashing_dims: int
    policy_json: str
    threads: int
    space: str  # the driver's edge space fingerprint
    detector_version: str
    crash_at: str | None = None
    verified_on: str | None = None
    """The host whose driver verified ``model_dir`` (sha256 of every file) as it loaded it: an actor on
    that host loads the same files without hashing them again (about 1 s per 250 MB); elsewhere it
    verifies its own copy."""


class PassWorker:
    """The callable class Ray Data runs on each actor (``map_batches(PassWorker, ...)``)."""

    def __init__(self, spec: WorkerSpec) -> None:
        from ...policies.config import PolicyConfig

        self._spec = spec
        self._edge = _embedder(spec)
        policy = PolicyConfig.model_validate_json(spec.policy_json)
        self._pii = PiiDetector(policy, embedder=_as_edge_model(self._edge))
        space = self._edge.space_for(spec.dims).fingerprint
        if space != spec.space or self._pii.version != spec.detector_version:
            raise ConfigurationError(
                f"the Ray worker on {os.uname().nodename} has another edge model or PII detector than the "
                f"driver (space {space} against {spec.space}, detector {self._pii.version} against "
                f"{spec.detector_version}): give every node the same model directory and edgeroute version"
            )

    def __call__(self, batch: dict[str, np.ndarray[Any, Any]]) -> dict[str, np.ndarray[Any, Any]]:
        rows = [
            self._one(int(seq), str(payload)) for seq, payload in zip(batch["seq"], batch["job"], strict=True)
        ]
        keys = ("seq", "seconds", "vectors", "findings")
        return {key: np.array([r[key] for r in rows], dtype=object) for key in keys}

    def _one(self, seq: int, payload: str) -> dict[str, Any]:
        _maybe_crash(self._spec.crash_at, seq)
        t0 = time.perf_counter()
        docs, spans, findings = decode_job(payload)
        texts, titles = [d.text for d in docs], [d.title for d in docs]
        if not findings:
            vecs = self._edge.embed_documents(texts, titles=titles, dims=self._spec.dims)
            return result_row(seq, vecs, None, time.perf_counter() - t0)
        # As the local pass (LocalPasses.one): the driver's pattern spans, else the patterns run here.
        pattern = [
            s if s is not None else self._pii.patterns(pii_text(d)) for d, s in zip(docs, spans, strict=True)
        ]
        vecs, found = self._pii.embed_documents_with_findings(texts, titles, self._spec.dims, pattern)
        return result_row(seq, vecs, found, time.perf_counter() - t0)


def _embedder(spec: WorkerSpec) -> Embedder:
    if spec.edge == "hashing":
        from ..testing.hashing import HashingEmbedder

        return HashingEmbedder(dims=spec.hashing_dims)
    from ..edge.embedder import EdgeEmbedder

    verify = spec.verified_on != socket.gethostname()
    return EdgeEmbedder.load(spec.model_dir, threads=spec.threads, verify=verify)


def _as_edge_model(edge: Embedder) -> Any:
    from ..edge.embedder import EdgeEmbedder

    return edge if isinstance(edge, EdgeEmbedder) else None


def _maybe_crash(crash_at: str | None, seq: int) -> None:
    if not crash_at:
        return
    at, _, marker = crash_at.partition(":")
    if int(at) == seq and marker and not Path(marker).exists():
        Path(marker).write_text(str(os.getpid()))
        os._exit(1)


__all__ = ["CRASH_ENV", "PassWorker", "WorkerSpec"]
