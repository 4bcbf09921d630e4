"""The hybrid engine: one logical collection, two indexes, a router in front.

Every document goes to the edge index (``NAME.edge``); documents the policy allows to the cloud
also go to the cloud index (``NAME.cloud``) through a durable outbox, so an offline spell only
delays them. A query is embedded on-device first, routed by :func:`edgeroute.policies.rules.decide`,
and answered from the edge index, the cloud index, or both fused with Reciprocal Rank Fusion.
With a deadline, the edge answer is ready at once and the cloud is raced against the clock; a
late or failed cloud call leaves the edge answer, flagged degraded, and a late call is cancelled.

This module is the facade: construction, the two indexes, the state the policy reads, status and
lifecycle. Each flow lives in its own module (:mod:`.ingest`, :mod:`.drain`, :mod:`.retrieve`) and
is written once, as a coroutine; the sync methods run it through the portal of
:mod:`edgeroute.framework.aio`, so both modes share one body, one set of errors and one way of
cancelling a late cloud call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Container, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from ...policies.config import PolicyConfig
from ...policies.semantic import SemanticRoutes
from ...policies.signals import CloudState
from ..aio import syncify, to_thread
from ..cloud.embedder import CloudEmbedder
from ..documents import Document, RetrievalResult
from ..edge.embedder import EdgeEmbedder
from ..embedder import Embedder
from ..errors import CollectionNotFoundError, ConfigurationError
from ..parts import Part
from ..pii import PiiDetector
from ..spaces import EmbeddingSpace
from ..store.cache import CachedEmbedder, EmbeddingCache
from ..store.chroma import Collection, VectorStore, index_collection_name, validate_logical_name
from . import lifecycle
from .audit import AuditLog
from .batch_drain import DEFAULT_JOB_SIZE, DEFAULT_MAX_JOBS, DEFAULT_POLL_S
from .batch_drain import batch_drain as batch_drain_flow
from .cloud_calls import CloudCalls
from .drain import drain as drain_flow
from .fusion import DEFAULT_RRF_K, rrf_fuse
from .guard import PrivacyGuard
from .ingest import ingest as ingest_flow
from .lifecycle import DeleteReport
from .outbox import Outbox
from .outbox_jobs import BatchJobs
from .passes import PassRunner
from .reports import BatchSyncReport, IngestReport, ProgressFn, SyncReport
from .retrieve import retrieve as retrieve_flow
from .write_order import WriteOrder

logger = logging.getLogger(__name__)

IndexName = Literal["edge", "cloud"]


class HybridEngine:
    """Routes queries and documents between an on-device embedder and Gemini, over one store.

    ``edge`` embeds every document and every text query on the device; ``cloud`` (optional) serves
    the cloud index. ``outbox_path`` (or an open ``outbox``) makes the queue of documents due for the
    cloud durable (in memory when None). ``budget_usd`` caps the estimated cloud spend of this engine; beyond it
    queries stay at the edge (flagged degraded). ``rrf_k``/``rrf_weights`` tune hybrid fusion.
    ``pii_detector`` replaces the default :class:`~edgeroute.framework.pii.PiiDetector` (the policy's
    detectors; named entities when ``edge`` is an :class:`EdgeEmbedder` with token-state outputs).
    The engine installs a :class:`~edgeroute.framework.router.guard.PrivacyGuard` on ``cloud``.
    """

    def __init__(
        self,
        store: VectorStore,
        collection: str,
        *,
        edge: Embedder,
        cloud: CloudEmbedder | None = None,
        policy: PolicyConfig | None = None,
        outbox_path: Path | None = None,
        outbox: Outbox | None = None,
        audit: AuditLog | None = None,
        cache: EmbeddingCache | None = None,
        edge_dims: int | None = None,
        cloud_dims: int | None = None,
        semantic_routes: SemanticRoutes | None = None,
        budget_usd: float | None = None,
        rrf_k: int = DEFAULT_RRF_K,
        rrf_weights: Mapping[str, float] | None = None,
        pii_detector: PiiDetector | None = None,
    ) -> None:
        self.store = store
        self.name = validate_logical_name(collection)
        self.policy = policy or PolicyConfig()
        if budget_usd is not None and budget_usd < 0:
            raise ConfigurationError(f"budget_usd must be >= 0 or None, got {budget_usd}")
        rrf_fuse({"edge": [], "cloud": []}, k=rrf_k, weights=rrf_weights)  # validates both now
        self.rrf_k = rrf_k
        self.rrf_weights = dict(rrf_weights) if rrf_weights else None
        self.budget_usd = budget_usd
        self.edge = edge
        self.cloud = cloud
        self.cache = cache
        self.edge_embedder: Embedder = CachedEmbedder(edge, cache) if cache is not None else edge
        """The edge embedder as the flows use it: the cache in front, when there is one."""
        self.edge_space: EmbeddingSpace = edge.space_for(edge_dims)
        self.edge_dims = edge_dims
        self.cloud_dims = cloud_dims
        self.cloud_space: EmbeddingSpace | None = None
        self.semantic_routes = semantic_routes
        self.guard = PrivacyGuard(self.policy)
        self.pii: PiiDetector = pii_detector or PiiDetector(
            self.policy, embedder=edge if isinstance(edge, EdgeEmbedder) else None
        )
        """On-device PII detection (patterns, secrets, and named entities from the edge model's token states)."""
        self.audit = audit if audit is not None else AuditLog(None)
        self.cloud_calls: CloudCalls | None = None
        if cloud is not None:
            self.cloud_space = cloud.space_for(cloud_dims)
            text = CachedEmbedder(cloud, cache) if cache is not None else cloud
            self.cloud_calls = CloudCalls(cloud, text, self.cloud_space, cloud_dims, self.audit, self.name)
            self._install_guard(cloud)
        self.outbox = outbox if outbox is not None else Outbox(outbox_path)
        self.write_order = WriteOrder(self.outbox.path, self.name, scope=self.outbox)
        """Orders this collection's ingests and deletes, across engines and processes sharing the outbox."""
        self._indexes: dict[str, Collection] = {}
        self._lock = threading.Lock()

    def _install_guard(self, cloud: CloudEmbedder) -> None:
        existing = cloud.guard
        if isinstance(existing, PrivacyGuard):
            self.guard = existing  # engines over one cloud embedder share what they learned is private
            return
        mine = self.guard
        if existing is None:
            cloud.guard = mine
            return

        def both(contents: Sequence[Sequence[Part]]) -> None:
            mine(contents)
            existing(contents)

        cloud.guard = both

    # -- state the policy reads -------------------------------------------------------------------

    def cloud_state(self) -> CloudState:
        """``absent``, ``offline``, or the circuit breaker's ``closed``/``open``/``half_open``."""
        if self.cloud is None:
            return "absent"
        if self.cloud.offline:
            return "offline"
        return self.cloud.breaker.state

    def budget_left(self) -> float | None:
        """USD left of ``budget_usd`` (None when unlimited)."""
        if self.budget_usd is None or self.cloud is None:
            return None
        return max(0.0, self.budget_usd - self.cloud.usage.spent_usd())

    # -- the two indexes ----------------------------------------------------------------------------

    def open_index(self, index: IndexName, *, create: bool = False) -> Collection | None:
        """The edge or cloud index, checked against this engine's space (blocking: flows call it in a
        thread). A missing cloud index is None; a missing edge index is
        :class:`CollectionNotFoundError` unless ``create``."""
        with self._lock:
            col = self._indexes.get(index)
        if col is not None:
            return col
        name = index_collection_name(self.name, index)
        space = self.edge_space if index == "edge" else self.cloud_space
        if create:
            if space is None:
                return None
            col = self.store.create_collection(name, space)
        else:
            try:
                col = self.store.get_collection(name)
            except CollectionNotFoundError:
                if index == "cloud":
                    return None
                raise CollectionNotFoundError(
                    f"no collection {self.name!r} in {self.store.location}: index documents into it first "
                    f"(`edgeroute index PATH --collection {self.name}`), or check --store and --collection"
                ) from None
            if space is not None:
                col.space.require_same(space, f"the {index} index of collection {self.name!r}")
        with self._lock:
            self._indexes[index] = col
        return col

    async def aopen_index(self, index: IndexName, *, create: bool = False) -> Collection | None:
        """:meth:`open_index` for the flows: at once when already open, else in a worker thread."""
        with self._lock:
            col = self._indexes.get(index)
        return col if col is not None else await to_thread(self.open_index, index, create=create)

    # -- the flows: async core, sync wrappers ---------------------------------------------------------

    async def aingest(
        self,
        documents: Sequence[Document],
        *,
        progress: ProgressFn | None = None,
        passes: PassRunner | None = None,
    ) -> IngestReport:
        """Index documents: every text into the edge index, the cloud-eligible ones into the cloud index.

        Unchanged documents (same content hash) are skipped; a document whose metadata changed
        (sensitivity, say) but not its content gets its stored records updated, not re-embedded.
        Placement is checked for all documents before anything is written (a document the policy can
        place nowhere raises :class:`RoutingError`). Cloud-bound documents pass through the outbox, so
        with the cloud offline they wait there for :meth:`sync`. Edge embeddings are stored batch by
        batch as they finish, so an interrupted run keeps what it did. ``progress(stage, done, total)``
        is called as ``"edge"`` and ``"cloud"`` work completes. ``passes`` runs the model passes
        elsewhere (:mod:`.passes`; a Ray actor pool, :mod:`edgeroute.framework.distributed`); every
        check, write and placement stays here.
        """
        return await ingest_flow(self, documents, progress=progress, passes=passes)

    ingest = syncify(aingest)

    async def adrain(
        self,
        limit: int | None = None,
        *,
        batch_size: int = 32,
        progress: ProgressFn | None = None,
        batch_api: bool = False,
    ) -> SyncReport:
        """Drain this collection's outbox into the cloud index (at most ``limit`` documents).

        Safe to interrupt at any point (kill -9 included) and to run again: nothing is lost or duplicated.
        Safe to run in several processes at once: each queued document is sent by one of them (leases).
        ``batch_api=True`` goes through Gemini's Batch API instead (:meth:`abatch_drain` with its
        defaults: it waits for the jobs, which can take hours).
        """
        if batch_api:
            return await self.abatch_drain(limit, progress=progress)
        return await drain_flow(self, limit, batch_size, progress=progress)

    drain = syncify(adrain)
    sync = drain  # named after ``edgeroute sync``

    async def abatch_drain(
        self,
        limit: int | None = None,
        *,
        job_size: int = DEFAULT_JOB_SIZE,
        max_jobs: int = DEFAULT_MAX_JOBS,
        poll_interval_s: float = DEFAULT_POLL_S,
        wait: bool = True,
        timeout_s: float | None = None,
        owner: str | None = None,
        tried: set[str] | None = None,
        progress: ProgressFn | None = None,
    ) -> BatchSyncReport:
        """Drain the outbox through Gemini's Batch API (half price, its own limits; ``edgeroute sync
        --batch-api``): submit jobs of ``job_size`` documents (at most ``max_jobs`` open), poll every
        ``poll_interval_s``, and write the cloud index as each job ends. Jobs are recorded in the
        outbox, so a restart polls them instead of submitting their rows again; a job that fails or
        expires returns its rows to the queue. Every row is placed again and checked by the privacy
        guard before it goes into a job. ``wait=False`` runs one round (submit, poll once) and returns;
        a model without a Batch API falls back to :meth:`adrain` (``report.fallback`` says so). ``owner``
        and ``tried`` let a caller run rounds itself (see :func:`~.batch_drain.batch_drain`).
        """
        return await batch_drain_flow(
            self,
            limit,
            job_size=job_size,
            max_jobs=max_jobs,
            poll_interval_s=poll_interval_s,
            wait=wait,
            timeout_s=timeout_s,
            owner=owner,
            tried=tried,
            progress=progress,
        )

    batch_drain = syncify(abatch_drain)

    async def adelete(
        self, ids: Sequence[str] | None = None, *, source: str | Path | None = None
    ) -> DeleteReport:
        """Remove documents, by id and/or by source path (a file, or a folder and all under it), from
        the edge index, the cloud index and the outbox (so a queued document is never sent). Audited.
        """
        return await lifecycle.delete(self, ids, source=source)

    delete = syncify(adelete)

    async def aprune(
        self, origin: str | Path, keep: Container[str], *, protect: Container[str] = ()
    ) -> DeleteReport:
        """After re-indexing ``origin`` (the path given to ``edgeroute index``): remove its records whose
        ids are not in ``keep``; other origins are never touched, paths in ``protect`` are kept."""
        return await lifecycle.prune(self, origin, keep, protect=protect)

    prune = syncify(aprune)

    async def aretrieve(
        self,
        query: str | Sequence[Part],
        k: int = 10,
        *,
        sensitivity: str = "internal",
        stakes: str = "normal",
        deadline_ms: float | None = None,
        where: Mapping[str, Any] | None = None,
        route: str | None = None,
    ) -> RetrievalResult:
        """Answer a query (text, or Parts for one interleaved multimodal input) from the routed index(es).

        The result carries the hits (best first; ``index`` says which index served each), the
        :class:`~edgeroute.policies.decision.RouteDecision` actually served (degraded when the cloud
        was wanted but did not answer) and the audit record. A cloud call that misses
        ``deadline_ms`` is cancelled. Raises :class:`InputError` for bad input,
        :class:`CollectionNotFoundError` for an unknown collection, :class:`RoutingError` when the
        policy cannot serve the query (for example an image query the cloud may not see).
        ``route`` (``edge``/``cloud``/``hybrid``) overrides rules 2-5 for evaluation; privacy still wins.
        The sync twin :meth:`retrieve` also works inside a running event loop (Jupyter).
        """
        return await retrieve_flow(
            self,
            query,
            k,
            sensitivity=sensitivity,
            stakes=stakes,
            deadline_ms=deadline_ms,
            where=where,
            route=route,
        )

    retrieve = syncify(aretrieve)

    # -- status and lifecycle ---------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Queue depth, circuit state, budget left, cache hit rate, index sizes: what ``edgeroute status`` shows."""
        counts: dict[str, int | None] = {}
        for index in ("edge", "cloud"):
            try:
                col = self.open_index(index)
                counts[index] = col.count() if col is not None else 0
            except CollectionNotFoundError:
                counts[index] = None
        cloud: dict[str, Any] = self.cloud.health() if self.cloud is not None else {"configured": False}
        return {
            "collection": self.name,
            "store": self.store.location,
            "edge_space": self.edge_space.fingerprint,
            "cloud_space": self.cloud_space.fingerprint if self.cloud_space else None,
            "edge_count": counts["edge"],
            "cloud_count": counts["cloud"],
            "outbox_depth": self.outbox.depth(self.name),
            "outbox_dead": self.outbox.dead_count(self.name),
            "outbox_dead_error": next((i.last_error for i in self.outbox.dead(self.name, limit=1)), None),
            "outbox": self.outbox.stats(),
            "batch_jobs_open": BatchJobs(self.outbox).open_count(self.name),
            "circuit": self.cloud_state(),
            "cloud": cloud,
            "budget_usd": self.budget_usd,
            "budget_left_usd": self.budget_left(),
            "cache_hit_rate": self.cache.hit_rate if self.cache is not None else None,
            "cache": self.cache.stats().to_dict() if self.cache is not None else None,
            "guard": {"private_items": len(self.guard), "refusals": self.guard.refusals},
        }

    def close(self) -> None:
        """Close the outbox (the store, cache and audit log belong to the caller: close an embedded
        store opened writable to let go of its writer lock, or use ``build_engine``, which does)."""
        self.outbox.close()

    def __enter__(self) -> HybridEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["HybridEngine", "IndexName", "IngestReport", "SyncReport"]
