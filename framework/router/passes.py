"""The model passes of one ingest: what the edge index needs embedded, and who runs it.

Ingest decides every group of documents that needs a model pass (:class:`PassJob`: one model call,
the groups :meth:`EdgeEmbedder.document_batches` makes) and writes each result as it arrives. Who runs
the passes is a :class:`PassRunner`: :class:`LocalPasses` runs them one at a time in this process
(the default, what ``edgeroute index`` does); :mod:`edgeroute.framework.distributed` runs them on a Ray
actor pool. A runner only computes: the stored-record checks, the writes, the findings store, the
placement and the outbox stay with the ingest that asked, in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..documents import Document
from ..embedder import Vectors
from ..pii.patterns import Span
from .placement import pii_text

if TYPE_CHECKING:
    from ...policies.signals import PiiFinding
    from .engine import HybridEngine


@dataclass(frozen=True, slots=True)
class PassJob:
    """One group of documents for one model call.

    ``store``: its vectors go into the edge index (False: the vectors are stored already and only the
    findings are wanted). ``findings``: the one-pass detector's findings are wanted with the vectors
    (some document's findings come with its pass); ``spans[i]`` are the pattern spans already found in
    ``docs[i]``'s PII text (None: not run yet).
    """

    docs: list[Document]
    store: bool
    findings: bool
    spans: list[list[Span] | None]


@dataclass(frozen=True, slots=True)
class PassResult:
    """A job's vectors ``(len(job.docs), dims)`` and, when it asked for them, each document's findings."""

    job: PassJob
    vectors: Vectors
    findings: list[tuple[PiiFinding, ...]] | None


class PassRunner(Protocol):
    """Runs the jobs of one ingest; yields each result once, in any order, as it is done."""

    def run(self, jobs: AsyncIterator[PassJob]) -> AsyncIterator[PassResult]: ...


class LocalPasses:
    """The passes in this process, one model call at a time: the engine's edge embedder (its cache in
    front) for vectors alone, the engine's PII detector for vectors with findings (one forward pass).

    One job runs ahead: the next model call is already on the inference thread while the caller stores
    the last result (a Chroma write and the findings, which wait on the disk and Chroma's own threads),
    so the model is never idle between calls. Results come in the jobs' order; at most two jobs are in
    flight, so a killed run loses at most two calls' work.
    """

    def __init__(self, engine: HybridEngine) -> None:
        self._engine = engine

    async def run(self, jobs: AsyncIterator[PassJob]) -> AsyncIterator[PassResult]:
        ahead: asyncio.Task[PassResult] | None = None
        try:
            async for job in jobs:
                done, ahead = ahead, asyncio.ensure_future(self.one(job))
                if done is not None:
                    yield await done
            if ahead is not None:
                task, ahead = ahead, None
                yield await task
        finally:
            if ahead is not None:  # the caller stopped early (an error): the call ahead is not wanted
                ahead.cancel()
                with contextlib.suppress(BaseException):
                    await ahead

    async def one(self, job: PassJob) -> PassResult:
        engine, part = self._engine, job.docs
        if not job.findings:
            vecs = await engine.edge_embedder.aembed_documents(
                [d.text for d in part], titles=[d.title for d in part], dims=engine.edge_dims
            )
            return PassResult(job, vecs, None)
        # The token states are not cached, so the embedding cache is not consulted: the pass is needed anyway.
        vecs, found = await engine.pii.aembed_documents_with_findings(
            [d.text for d in part],
            [d.title for d in part],
            engine.edge_dims,
            # [] is "run, nothing found": only None (not run yet) runs the patterns again.
            [
                s if s is not None else engine.pii.patterns(pii_text(d))
                for d, s in zip(part, job.spans, strict=True)
            ],
        )
        return PassResult(job, vecs, found)


__all__ = ["LocalPasses", "PassJob", "PassResult", "PassRunner"]
