"""The hybrid engine: one logical collection, two indexes, a router in front.

Every document goes to the edge index (``NAME.edge``); documents the policy allows to the cloud
also go to the cloud index (``NAME.cloud``) through a durable outbox, so an offline spell only
delays them. A query is embedded on-device first, routed by :func:`edgeroute.policies.rules.decide`,
and answered from the edge index, the cloud index, or both fused with Reciprocal Rank Fusion.
With a deadline, the edge answer is ready at once and the cloud is raced against the clock; a
late or failed cloud call leaves the edge answer, flagged degraded, and the late call is dropped.

Sync and async share one body per operation: each operation is a generator that yields I/O
*effects* (a blocking call, starting or awaiting a cloud call) and a driver runs them, with plain
calls and threads (:meth:`HybridEngine.retrieve`) or with the event loop (:meth:`HybridEngine.aretrieve`).
"""

# ruff: noqa: B023  (flows hand lambdas over loop variables to a driver that calls them at once)
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np

from ...policies.config import PolicyConfig
from ...policies.decision import Reason, Route, RouteDecision, Sensitivity, Stakes
from ...policies.pii import redact
from ...policies.rules import RoutingRefused, decide, needs_confidence, place_document
from ...policies.semantic import SemanticRoutes
from ...policies.signals import (
    CloudState,
    DocumentSignals,
    PiiFinding,
    QuerySignals,
    SignalError,
    sensitivity_rank,
)
from ..cloud.embedder import CloudEmbedder
from ..cloud.media import estimate_tokens, validate_content
from ..documents import Document, Hit, RetrievalResult
from ..embedder import Embedder
from ..errors import (
    CloudError,
    CloudUnavailableError,
    CollectionNotFoundError,
    ConfigurationError,
    EdgeRouteError,
    InputError,
    PrivacyViolationError,
    RoutingError,
)
from ..parts import Part
from ..pii import PiiDetector
from ..spaces import EmbeddingSpace
from ..store.cache import CachedEmbedder, EmbeddingCache
from ..store.chroma import Collection, VectorStore, side_collection_name, validate_logical_name
from .audit import AuditLog, Record
from .effects import AwaitCloud, Blocking, Flow, Outcome, StartCloud, run_async, run_sync
from .fusion import DEFAULT_RRF_K, rrf_fuse
from .guard import PrivacyGuard, sha256_text
from .outbox import Outbox

logger = logging.getLogger("edgeroute.engine")

EDGE_MODALITIES = frozenset({"text"})
_BATCH = 64
_LOCAL_REFUSALS = frozenset({"OFFLINE", "CIRCUIT_OPEN"})
_MEDIA_TOKENS = 258  # per image/page, the public rule of thumb; the cloud reports real figures

# -- reports ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one drain of the outbox did. ``remaining`` is the queue depth for the collection after it."""

    written: int = 0
    unchanged: int = 0
    refused: int = 0
    failed: int = 0
    remaining: int = 0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What :meth:`HybridEngine.ingest` did with each side of the collection.

    ``private`` documents were kept out of the cloud index; ``queued`` are due for the cloud index
    but still in the outbox (cloud offline, absent or failing) until ``edgeroute sync``.
    """

    documents: int
    edge_written: int
    edge_unchanged: int
    private: int
    cloud: SyncReport
    queued: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- pure helpers shared by both drivers ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Query:
    text: str  # the text parts joined: what the edge embeds ("" for a media-only query)
    parts: tuple[Part, ...]  # what the cloud embeds, as one interleaved input

    @property
    def modalities(self) -> frozenset[str]:
        return frozenset(p.modality for p in self.parts)


def parse_query(query: str | Sequence[Part]) -> _Query:
    """Validate a query (text, or parts for one interleaved input) before anything is computed."""
    if isinstance(query, str):
        if not query.strip():
            raise InputError("the query is empty; pass some text or a list of Parts")
        return _Query(query, (Part.text(query),))
    items: Sequence[object] = [query] if isinstance(query, Part) else query
    if not isinstance(items, Sequence):
        raise InputError(f"a query is a str or a list of Parts, got {type(query).__name__}")
    bad = next((i for i, p in enumerate(items) if not isinstance(p, Part)), None)
    if bad is not None:
        raise InputError(
            f"query part {bad} is a {type(items[bad]).__name__}; use Part.text(...), Part.image(...)"
        )
    parts = tuple(p for p in items if isinstance(p, Part))
    validate_content(parts)  # 7 images, a fake PNG, a long video: refused before any I/O
    text = " ".join(p.text_value for p in parts if p.text_value is not None)
    return _Query(text, parts)


def _check_call(k: int, sensitivity: str, stakes: str, deadline_ms: float | None) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}")
    try:
        QuerySignals(
            frozenset({"text"}),
            sensitivity=cast(Sensitivity, sensitivity),
            stakes=cast(Stakes, stakes),
            deadline_ms=deadline_ms,
        )
    except SignalError as exc:
        raise InputError(str(exc)) from None


def edge_confidence(hits: Sequence[Hit]) -> tuple[float, float | None]:
    """Top-1 score and margin to the second; an empty index counts as no confidence at all."""
    if not hits:
        return -1.0, None
    top1 = hits[0].score
    if len(hits) < 2:
        return top1, None
    return top1, max(0.0, top1 - hits[1].score)


def force_route(decision: RouteDecision, route: str) -> RouteDecision:
    """Replace the policy's choice by ``route`` (for evaluation), never against privacy."""
    try:
        forced = Route(route)
    except ValueError:
        raise InputError(
            f"route {route!r} is unknown; use edge, cloud or hybrid (or None for the policy)"
        ) from None
    private = {"privacy.sensitivity", "privacy.pii"} & set(decision.codes)
    if forced is not Route.EDGE and private and not decision.redact:
        raise RoutingError(
            f"route {forced.value!r} was forced, but privacy keeps this query on the device "
            f"({', '.join(sorted(private))}); force 'edge' or lower the sensitivity"
        )
    why = Reason("route.forced", f"route {forced.value!r} was forced by the caller (evaluation)")
    return RouteDecision(forced, (why,), redact=decision.redact)


def _degrade(decision: RouteDecision, code: str, message: str) -> RouteDecision:
    return RouteDecision(Route.EDGE, (*decision.reasons, Reason(code, message)), degraded=True)


def _cloud_fallback(decision: RouteDecision, outcome: Outcome, deadline_ms: float | None) -> RouteDecision:
    """The decision actually served when the cloud did not answer."""
    if outcome.late:
        return _degrade(
            decision,
            "deadline.missed",
            f"the cloud did not answer within the {deadline_ms:g} ms deadline; the edge answer is "
            "returned and the late cloud call was dropped",
        )
    err = outcome.error
    if isinstance(err, PrivacyViolationError):
        return _degrade(decision, "privacy.guard", f"the privacy guard refused the cloud call: {err}")
    return _degrade(
        decision, "cloud.failed", f"the cloud call failed ({type(err).__name__}: {err}); answered at the edge"
    )


def assemble(
    decision: RouteDecision,
    edge_hits: list[Hit] | None,
    outcome: Outcome | None,
    k: int,
    *,
    deadline_ms: float | None,
    rrf_k: int,
    rrf_weights: Mapping[str, float] | None,
) -> tuple[list[Hit], RouteDecision]:
    """Pick or fuse the hits for the served route; degrade to the edge when the cloud did not answer."""
    if decision.route is Route.EDGE or outcome is None:
        return list(edge_hits or [])[:k], decision
    if not outcome.ok:
        if edge_hits is None:  # media-only: nothing at the edge to fall back on
            err = outcome.error
            if isinstance(err, EdgeRouteError):
                raise err
            raise CloudUnavailableError(
                "the cloud did not answer in time and a media-only query cannot be answered at the edge; "
                "retry, raise --deadline-ms, or add a text part"
            )
        return edge_hits[:k], _cloud_fallback(decision, outcome, deadline_ms)
    cloud_hits: list[Hit] = outcome.value
    if decision.route is Route.CLOUD:
        return cloud_hits[:k], decision
    fused = rrf_fuse({"edge": edge_hits or [], "cloud": cloud_hits}, k=rrf_k, weights=rrf_weights, limit=k)
    return fused, decision


def cloud_cost(parts: Sequence[Part], cloud: CloudEmbedder) -> tuple[int, int, float]:
    """Estimated tokens, bytes and USD of sending ``parts`` (audit figures; the bill is Google's)."""
    tokens: dict[str, int] = {}
    nbytes = 0
    for p in parts:
        if p.text_value is not None:
            tokens["text"] = tokens.get("text", 0) + estimate_tokens(p.text_value)
            nbytes += len(p.text_value.encode("utf-8"))
        else:
            tokens[p.modality] = tokens.get(p.modality, 0) + _MEDIA_TOKENS
            nbytes += len(p.data or b"") + len((p.uri or "").encode())
    return sum(tokens.values()), nbytes, cloud.usage.prices.cost(tokens)


def _pii_text(doc: Document) -> str:
    """What PII detection reads of a document: its title and its text."""
    return "\n".join(filter(None, [doc.title, doc.text]))


def _cloud_parts(doc: Document) -> list[Part]:
    """A document's one cloud input: its text, then its parts (a text part equal to it is not repeated)."""
    head = [Part.text(doc.text)] if doc.text.strip() else []
    return head + [p for p in doc.parts if not (p.is_text and p.text_value == doc.text)]


def _doc_metadata(doc: Document) -> dict[str, str | int | float | bool]:
    meta: dict[str, str | int | float | bool] = {**doc.metadata, "sensitivity": doc.sensitivity}
    if doc.title:
        meta["title"] = doc.title
    return meta


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000.0, 3)


# -- the engine ---------------------------------------------------------------------------------------


class HybridEngine:
    """Routes queries and documents between an on-device embedder and Gemini, over one store.

    ``edge`` embeds every document and every text query on the device; ``cloud`` (optional) serves
    the cloud index. ``outbox_path`` makes the queue of documents due for the cloud durable
    (in memory when None). ``budget_usd`` caps the estimated cloud spend of this engine; beyond it
    queries stay at the edge (flagged degraded). ``rrf_k``/``rrf_weights`` tune hybrid fusion.
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
        self._edge_e: Embedder = CachedEmbedder(edge, cache) if cache is not None else edge
        self._cloud_e: Embedder | None = None
        self.edge_space: EmbeddingSpace = edge.space_for(edge_dims)
        self.edge_dims = edge_dims
        self.cloud_dims = cloud_dims
        self.cloud_space: EmbeddingSpace | None = None
        self.semantic_routes = semantic_routes
        self.guard = PrivacyGuard(self.policy)
        # Named-entity PII needs the edge model's token states: the real EdgeEmbedder (graph version 3).
        from ..edge.embedder import EdgeEmbedder

        self.pii = pii_detector or PiiDetector(
            self.policy, embedder=edge if isinstance(edge, EdgeEmbedder) else None
        )
        if cloud is not None:
            self.cloud_space = cloud.space_for(cloud_dims)
            self._cloud_e = CachedEmbedder(cloud, cache) if cache is not None else cloud
            self._install_guard(cloud)
        self.audit = audit if audit is not None else AuditLog(None)
        self.outbox = Outbox(outbox_path)
        self._collections: dict[str, Collection] = {}
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
        return max(0.0, self.budget_usd - self.cloud.usage.cost_usd)

    # -- collections --------------------------------------------------------------------------------

    def _open(self, side: str, *, create: bool) -> Collection | None:
        """The edge or cloud side, checked against this engine's space; None if absent and not created."""
        with self._lock:
            col = self._collections.get(side)
        if col is not None:
            return col
        name = side_collection_name(self.name, side)
        space = self.edge_space if side == "edge" else self.cloud_space
        if create:
            if space is None:
                return None
            col = self.store.create_collection(name, space)
        else:
            try:
                col = self.store.get_collection(name)
            except CollectionNotFoundError:
                if side == "cloud":
                    return None
                raise CollectionNotFoundError(
                    f"no collection {self.name!r} in {self.store.location}: index documents into it first "
                    f"(`edgeroute index PATH --collection {self.name}`), or check --store and --collection"
                ) from None
            if space is not None:
                col.space.require_same(space, f"the {side} index of collection {self.name!r}")
        with self._lock:
            self._collections[side] = col
        return col

    # -- ingest -------------------------------------------------------------------------------------------

    def _place(self, docs: Sequence[Document], found: Sequence[tuple[PiiFinding, ...]]) -> list[bool]:
        """For each document and its PII findings: may it go to the cloud index? Raises before anything is
        written."""
        out = []
        for doc, pii in zip(docs, found, strict=True):
            modalities = frozenset(p.modality for p in _cloud_parts(doc)) or frozenset({"text"})
            try:
                signals = DocumentSignals(doc.sensitivity, pii, modalities, EDGE_MODALITIES)
                placement = place_document(signals, self.policy)
            except SignalError as exc:
                raise InputError(f"document {doc.id!r}: {exc}") from None
            except RoutingRefused as exc:
                raise RoutingError(f"document {doc.id!r}: {exc.message}") from None
            out.append(placement.cloud)
        return out

    def _ingest_flow(self, documents: Sequence[Document]) -> Flow[IngestReport]:
        docs = _check_documents(documents)
        found = yield Blocking(lambda: self.pii.detect_batch([_pii_text(d) for d in docs]))
        to_cloud = self._place(docs, found)
        ceiling = sensitivity_rank(self.policy.cloud_ceiling)
        for doc, ok in zip(docs, to_cloud, strict=True):
            if not ok:
                # A confidential document's title is private too; a chunk kept back only for PII in its
                # body shares its title with its siblings, which may still go to the cloud.
                private_title = sensitivity_rank(doc.sensitivity) > ceiling
                self.guard.add_text(doc.text, doc.title if private_title else None)
                for part in doc.parts:
                    self.guard.add_part(part)
        edge_docs = [d for d in docs if d.text.strip()]
        edge_written = 0
        if edge_docs:
            edge_col = yield Blocking(lambda: self._open("edge", create=True))
            for start in range(0, len(edge_docs), _BATCH):
                batch = edge_docs[start : start + _BATCH]
                stale = set(
                    (
                        yield Blocking(
                            lambda: edge_col.stale_ids(
                                [d.id for d in batch], [d.content_hash() for d in batch]
                            )
                        )
                    )
                )
                fresh = [d for d in batch if d.id in stale]
                if not fresh:
                    continue
                vecs = yield Blocking(
                    lambda: self._edge_e.embed_documents(
                        [d.text for d in fresh], titles=[d.title for d in fresh], dims=self.edge_dims
                    )
                )
                yield Blocking(
                    lambda: edge_col.upsert(
                        [d.id for d in fresh],
                        vecs,
                        space=self.edge_space,
                        texts=[d.text for d in fresh],
                        metadatas=[_doc_metadata(d) for d in fresh],
                        content_hashes=[d.content_hash() for d in fresh],
                    )
                )
                edge_written += len(fresh)
        private_ids = [d.id for d, ok in zip(docs, to_cloud, strict=True) if not ok]
        cloud_docs = [d for d, ok in zip(docs, to_cloud, strict=True) if ok]
        if private_ids:
            # A document that became private must leave the cloud index and never be sent later.
            yield Blocking(lambda: self.outbox.discard(self.name, private_ids))
            cloud_col = yield Blocking(lambda: self._open("cloud", create=False))
            if cloud_col is not None:
                yield Blocking(lambda: cloud_col.delete(private_ids))
        yield Blocking(lambda: self.outbox.enqueue(self.name, cloud_docs))
        if self.cloud_state() in ("closed", "half_open") and self.outbox.depth(self.name):
            sync = yield from self._sync_flow(None)
        else:
            state = self.cloud_state()
            depth = yield Blocking(lambda: self.outbox.depth(self.name))
            sync = SyncReport(remaining=depth, error=None if state == "closed" else f"cloud is {state}")
        return IngestReport(
            documents=len(docs),
            edge_written=edge_written,
            edge_unchanged=len(edge_docs) - edge_written,
            private=len(private_ids),
            cloud=sync,
            queued=sync.remaining,
        )

    def ingest(self, documents: Sequence[Document]) -> IngestReport:
        """Index documents: every text into the edge index, the cloud-eligible ones into the cloud index.

        Unchanged documents (same content hash) are skipped. Placement is checked for all documents
        before anything is written (a document the policy can place nowhere raises
        :class:`RoutingError`). Cloud-bound documents pass through the outbox, so with the cloud
        offline they wait there for :meth:`sync`.
        """
        return run_sync(self._ingest_flow(documents))

    async def aingest(self, documents: Sequence[Document]) -> IngestReport:
        """Async :meth:`ingest`: blocking work runs in threads, cloud calls on the event loop."""
        return await run_async(self._ingest_flow(documents))

    # -- sync (drain the outbox) ------------------------------------------------------------------------------

    def _embed_docs_sync(self, docs: list[Document]) -> Any:
        assert self.cloud is not None and self._cloud_e is not None
        t0 = time.perf_counter()
        try:
            vecs = self._cloud_doc_vectors(docs)
        except BaseException as exc:
            self._record_cloud("index", [p for d in docs for p in _cloud_parts(d)], t0, exc)
            raise
        self._record_cloud("index", [p for d in docs for p in _cloud_parts(d)], t0, None)
        return vecs

    async def _aembed_docs(self, docs: list[Document]) -> Any:
        assert self.cloud is not None and self._cloud_e is not None
        t0 = time.perf_counter()
        try:
            vecs = await self._acloud_doc_vectors(docs)
        except BaseException as exc:
            self._record_cloud("index", [p for d in docs for p in _cloud_parts(d)], t0, exc)
            raise
        self._record_cloud("index", [p for d in docs for p in _cloud_parts(d)], t0, None)
        return vecs

    def _split_docs(self, docs: list[Document]) -> tuple[list[int], list[int]]:
        text_only = [i for i, d in enumerate(docs) if not d.is_multimodal]
        media = [i for i, d in enumerate(docs) if d.is_multimodal]
        return text_only, media

    def _cloud_doc_vectors(self, docs: list[Document]) -> Any:
        assert self.cloud is not None and self._cloud_e is not None and self.cloud_space is not None
        text_only, media = self._split_docs(docs)
        out = np.empty((len(docs), self.cloud_space.dims), dtype=np.float32)
        if text_only:
            out[text_only] = self._cloud_e.embed_documents(
                [docs[i].text for i in text_only],
                titles=[docs[i].title for i in text_only],
                dims=self.cloud_dims,
            )
        if media:
            out[media] = self.cloud.embed(
                [_cloud_parts(docs[i]) for i in media], task="document", dims=self.cloud_dims
            )
        return out

    async def _acloud_doc_vectors(self, docs: list[Document]) -> Any:
        assert self.cloud is not None and self._cloud_e is not None and self.cloud_space is not None
        text_only, media = self._split_docs(docs)
        out = np.empty((len(docs), self.cloud_space.dims), dtype=np.float32)
        if text_only:
            out[text_only] = await self._cloud_e.aembed_documents(
                [docs[i].text for i in text_only],
                titles=[docs[i].title for i in text_only],
                dims=self.cloud_dims,
            )
        if media:
            out[media] = await self.cloud.aembed(
                [_cloud_parts(docs[i]) for i in media], task="document", dims=self.cloud_dims
            )
        return out

    def _sync_flow(self, limit: int | None, batch_size: int = 32) -> Flow[SyncReport]:
        if self.cloud is None:
            raise ConfigurationError(
                "no cloud embedder is configured, so the outbox cannot be drained: set GEMINI_API_KEY "
                "(and GOOGLE_GEMINI_BASE_URL for the emulator) or pass cloud=CloudEmbedder(...)"
            )
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise InputError(f"limit must be a positive integer or None, got {limit!r}")
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        written = unchanged = refused = failed = 0
        error: str | None = None
        cloud_col = yield Blocking(lambda: self._open("cloud", create=True))
        done = 0
        while limit is None or done < limit:
            take = batch_size if limit is None else min(batch_size, limit - done)
            items = yield Blocking(lambda: self.outbox.pending(self.name, limit=take))
            if not items:
                break
            docs = [it.document for it in items]
            found = yield Blocking(lambda: self.pii.detect_batch([_pii_text(d) for d in docs]))
            allowed = self._place(docs, found)
            blocked = [
                d.id
                for d, ok in zip(docs, allowed, strict=True)
                if not ok
                or any(self.guard.is_private(p) for p in _cloud_parts(d))
                or (d.title is not None and self.guard.is_private(Part.text(d.title)))
            ]
            if blocked:
                yield Blocking(lambda: self.outbox.discard(self.name, blocked))
                refused += len(blocked)
            keep = [it for it in items if it.document.id not in set(blocked)]
            stale = set(
                (
                    yield Blocking(
                        lambda: cloud_col.stale_ids(
                            [i.document.id for i in keep], [i.content_hash for i in keep]
                        )
                    )
                )
            )
            fresh = [it.document for it in keep if it.document.id in stale]
            if fresh:
                handle = yield StartCloud(
                    lambda: self._embed_docs_sync(fresh), lambda: self._aembed_docs(fresh)
                )
                outcome: Outcome = yield AwaitCloud(handle, None)
                if not outcome.ok:
                    msg = f"{type(outcome.error).__name__}: {outcome.error}"
                    yield Blocking(lambda: self.outbox.mark_failed(self.name, [d.id for d in fresh], msg))
                    failed += len(fresh)
                    error = msg
                    break  # the cloud is failing or refusing: leave the rest queued for the next sync
                yield Blocking(
                    lambda: cloud_col.upsert(
                        [d.id for d in fresh],
                        outcome.value,
                        space=cloud_col.space,
                        texts=[d.text for d in fresh],
                        metadatas=[_doc_metadata(d) for d in fresh],
                        content_hashes=[d.content_hash() for d in fresh],
                    )
                )
            written += len(fresh)
            unchanged += len(keep) - len(fresh)
            # Only now, with the vectors stored, may the rows go: a crash before this line re-sends
            # nothing (stale_ids sees them stored) and loses nothing (the rows are still queued).
            yield Blocking(
                lambda: self.outbox.mark_done(self.name, [(i.document.id, i.content_hash) for i in keep])
            )
            done += len(items)
        remaining = yield Blocking(lambda: self.outbox.depth(self.name))
        return SyncReport(written, unchanged, refused, failed, remaining, error)

    def drain(self, limit: int | None = None, *, batch_size: int = 32) -> SyncReport:
        """Drain this collection's outbox into the cloud index (at most ``limit`` documents).

        Safe to interrupt at any point (kill -9 included) and to run again: nothing is lost or duplicated.
        """
        return run_sync(self._sync_flow(limit, batch_size))

    async def adrain(self, limit: int | None = None, *, batch_size: int = 32) -> SyncReport:
        """Async :meth:`drain`."""
        return await run_async(self._sync_flow(limit, batch_size))

    def sync(self, limit: int | None = None, *, batch_size: int = 32) -> SyncReport:
        """The same as :meth:`drain` (named after ``edgeroute sync``)."""
        return self.drain(limit, batch_size=batch_size)

    # -- retrieve -----------------------------------------------------------------------------------------

    def _cloud_query_sync(
        self, col: Collection, q: _Query, k: int, where: Mapping[str, Any] | None
    ) -> list[Hit]:
        assert self.cloud is not None and self._cloud_e is not None
        t0 = time.perf_counter()
        try:
            if q.modalities == {"text"}:
                vec = self._cloud_e.embed_queries([q.text], dims=self.cloud_dims)
            else:
                vec = self.cloud.embed([list(q.parts)], task="query", dims=self.cloud_dims)
        except BaseException as exc:
            self._record_cloud("query", q.parts, t0, exc)
            raise
        self._record_cloud("query", q.parts, t0, None)
        return col.query(vec[0], k, space=col.space, where=where)

    async def _acloud_query(
        self, col: Collection, q: _Query, k: int, where: Mapping[str, Any] | None
    ) -> list[Hit]:
        assert self.cloud is not None and self._cloud_e is not None
        t0 = time.perf_counter()
        try:
            if q.modalities == {"text"}:
                vec = await self._cloud_e.aembed_queries([q.text], dims=self.cloud_dims)
            else:
                vec = await self.cloud.aembed([list(q.parts)], task="query", dims=self.cloud_dims)
        except BaseException as exc:
            self._record_cloud("query", q.parts, t0, exc)
            raise
        self._record_cloud("query", q.parts, t0, None)
        return await asyncio.to_thread(col.query, vec[0], k, space=col.space, where=where)

    def _record_cloud(
        self, purpose: str, parts: Sequence[Part], t0: float, exc: BaseException | None
    ) -> None:
        assert self.cloud is not None
        tokens, nbytes, cost = cloud_cost(parts, self.cloud)
        outcome = (
            "ok" if exc is None else ("cancelled" if isinstance(exc, asyncio.CancelledError) else "error")
        )
        # Estimates of what left the device: nothing when a local check refused the call first.
        sent = not (
            isinstance(exc, PrivacyViolationError | InputError | asyncio.CancelledError)
            or (isinstance(exc, CloudError) and exc.status in _LOCAL_REFUSALS)
        )
        self.audit.write(
            {
                "type": "cloud_call",
                "collection": self.name,
                "purpose": purpose,
                "outcome": outcome,
                "error": None if exc is None else type(exc).__name__,
                "latency_ms": _ms(t0),
                "items": len(parts),
                "tokens": tokens if sent else 0,
                "bytes": nbytes if sent else 0,
                "cost_usd": round(cost, 10) if exc is None else 0.0,
                "space": self.cloud_space.fingerprint if self.cloud_space else None,
            }
        )

    def _semantic_high_stakes(self, vec: Any) -> bool:
        if self.semantic_routes is None or vec is None:
            return False
        try:
            return self.semantic_routes.match(vec).name is not None
        except ValueError as exc:
            raise ConfigurationError(
                f"semantic routes do not fit the edge embedder ({exc}); fit them with the same model and dims"
            ) from None

    def _retrieve_flow(
        self,
        query: str | Sequence[Part],
        k: int,
        sensitivity: str,
        stakes: str,
        deadline_ms: float | None,
        where: Mapping[str, Any] | None,
        route: str | None = None,
    ) -> Flow[RetrievalResult]:
        t0 = time.perf_counter()
        q = parse_query(query)
        _check_call(k, sensitivity, stakes, deadline_ms)
        stages: dict[str, float] = {}
        edge_col = yield Blocking(lambda: self._open("edge", create=False))
        pii: tuple[PiiFinding, ...] = ()
        vec = None
        if q.text:
            text = q.text
            t = time.perf_counter()
            if self.pii.embedder is not None and self._edge_e is self.pii.embedder:
                # One forward pass: the query's vector and the token states the PII head reads.
                vecs, pii = yield Blocking(lambda: self.pii.embed_query_batch(text, self.edge_dims))
                vec = vecs[0]
            else:
                pii = (yield Blocking(lambda: self.pii.detect_batch([text])))[0]
                vec = (yield Blocking(lambda: self._edge_e.embed_queries([text], dims=self.edge_dims)))[0]
            stages["edge_embed"] = _ms(t)
        signals = QuerySignals(
            q.modalities,
            pii,
            cast(Sensitivity, sensitivity),
            cast(Stakes, stakes),
            cloud_state=self.cloud_state(),
            budget_left=self.budget_left(),
            deadline_ms=deadline_ms,
            semantic_high_stakes=self._semantic_high_stakes(vec),
            edge_modalities=EDGE_MODALITIES,
        )
        try:
            decision = decide(signals, self.policy)
        except RoutingRefused as exc:
            raise RoutingError(exc.message) from None
        if route is not None:
            decision = force_route(decision, route)
        if {"privacy.sensitivity", "privacy.pii"} & set(decision.codes) and not decision.uses_cloud:
            # Whatever happens next, the guard now refuses this exact text.
            self.guard.add_hashes([sha256_text(q.text)] if q.text else [])
        cloud_col: Collection | None = None
        handle = None
        cloud_q = q
        if decision.redact and q.text:
            cloud_q = _Query(
                redact(q.text, pii),
                tuple(
                    Part.text(
                        redact(p.text_value, pii if p.text_value == q.text else self.pii.detect_batch([p.text_value])[0])
                    )
                    if p.is_text and p.text_value
                    else p
                    for p in q.parts
                ),
            )

        def start_cloud() -> Flow[Any]:
            nonlocal cloud_col
            cloud_col = yield Blocking(lambda: self._open("cloud", create=False))
            if cloud_col is None:  # nothing indexed in the cloud yet
                return None
            col = cloud_col
            return (
                yield StartCloud(
                    lambda: self._cloud_query_sync(col, cloud_q, k, where),
                    lambda: self._acloud_query(col, cloud_q, k, where),
                )
            )

        if decision.uses_cloud:
            handle = yield from start_cloud()
        edge_hits: list[Hit] | None = None
        if vec is not None:
            t = time.perf_counter()
            edge_hits = yield Blocking(
                lambda: edge_col.query(vec, max(k, 2), space=self.edge_space, where=where)
            )
            stages["edge_search"] = _ms(t)
        if needs_confidence(decision):
            top1, margin = edge_confidence(edge_hits or [])
            decision = decide(replace(signals, edge_top1=top1, edge_margin=margin), self.policy)
            if decision.uses_cloud:
                handle = yield from start_cloud()
        outcome: Outcome | None = None
        if decision.uses_cloud:
            if handle is None:
                outcome = Outcome(value=[])
            else:
                timeout = None
                if deadline_ms is not None and self.policy.hedging.enabled:
                    timeout = max(0.0, deadline_ms / 1000.0 - (time.perf_counter() - t0))
                t = time.perf_counter()
                outcome = yield AwaitCloud(handle, timeout)
                stages["cloud_wait"] = _ms(t)
        t = time.perf_counter()
        hits, served = assemble(
            decision,
            edge_hits,
            outcome,
            k,
            deadline_ms=deadline_ms,
            rrf_k=self.rrf_k,
            rrf_weights=self.rrf_weights,
        )
        stages["fusion"] = _ms(t)
        stages["total"] = _ms(t0)
        record = self._query_record(
            q, sensitivity, stakes, decision, served, outcome, stages, hits, deadline_ms
        )
        written = yield Blocking(lambda: self.audit.write(record))
        return RetrievalResult(hits=hits, decision=served, audit=written)

    def _query_record(
        self,
        q: _Query,
        sensitivity: str,
        stakes: str,
        planned: RouteDecision,
        served: RouteDecision,
        outcome: Outcome | None,
        stages: dict[str, float],
        hits: list[Hit],
        deadline_ms: float | None,
    ) -> Record:
        cloud_sent = (
            outcome is not None
            and self.cloud is not None
            and not isinstance(outcome.error, PrivacyViolationError)
        )
        tokens, nbytes, cost = cloud_cost(q.parts, self.cloud) if cloud_sent and self.cloud else (0, 0, 0.0)
        status = (
            "not_used" if outcome is None else "ok" if outcome.ok else "late" if outcome.late else "error"
        )
        spaces = [self.edge_space.fingerprint] if q.text else []
        if outcome is not None and outcome.ok and self.cloud_space is not None:
            spaces.append(self.cloud_space.fingerprint)
        return {
            "type": "query",
            "collection": self.name,
            **self.audit.query_fields(q.text or " ".join(p.content_hash() for p in q.parts)),
            "modalities": sorted(q.modalities),
            "sensitivity": sensitivity,
            "stakes": stakes,
            "planned_route": planned.route.value,
            "route": served.route.value,
            "reasons": list(served.codes),
            "degraded": served.degraded,
            "redacted": planned.redact,
            "cloud": status,
            "spaces": spaces,
            "latency_ms": stages,
            "deadline_ms": deadline_ms,
            "hits": len(hits),
            "cloud_tokens": tokens,
            "cloud_bytes": nbytes,
            "cloud_cost_usd": round(cost, 10),
        }

    def retrieve(
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

        The result carries the hits (best first; ``index`` says which side served each), the
        :class:`~edgeroute.policies.decision.RouteDecision` actually served (degraded when the cloud
        was wanted but did not answer) and the audit record. Raises :class:`InputError` for bad input,
        :class:`CollectionNotFoundError` for an unknown collection, :class:`RoutingError` when the
        policy cannot serve the query (for example an image query the cloud may not see).
        ``route`` (``edge``/``cloud``/``hybrid``) overrides rules 2-5 for evaluation; privacy still wins.
        """
        return run_sync(self._retrieve_flow(query, k, sensitivity, stakes, deadline_ms, where, route))

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
        """Async :meth:`retrieve`; a cloud call that misses the deadline is cancelled."""
        return await run_async(self._retrieve_flow(query, k, sensitivity, stakes, deadline_ms, where, route))

    # -- status and lifecycle ---------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Queue depth, circuit state, budget left, cache hit rate, index sizes: what ``edgeroute status`` shows."""
        counts: dict[str, int | None] = {}
        for side in ("edge", "cloud"):
            try:
                col = self._open(side, create=False)
                counts[side] = col.count() if col is not None else 0
            except CollectionNotFoundError:
                counts[side] = None
        cloud: dict[str, Any] = self.cloud.health() if self.cloud is not None else {"configured": False}
        return {
            "collection": self.name,
            "store": self.store.location,
            "edge_space": self.edge_space.fingerprint,
            "cloud_space": self.cloud_space.fingerprint if self.cloud_space else None,
            "edge_count": counts["edge"],
            "cloud_count": counts["cloud"],
            "outbox_depth": self.outbox.depth(self.name),
            "outbox": self.outbox.stats(),
            "circuit": self.cloud_state(),
            "cloud": cloud,
            "budget_usd": self.budget_usd,
            "budget_left_usd": self.budget_left(),
            "cache_hit_rate": self.cache.hit_rate if self.cache is not None else None,
            "cache": self.cache.stats().to_dict() if self.cache is not None else None,
            "guard": {"private_items": len(self.guard), "refusals": self.guard.refusals},
        }

    def close(self) -> None:
        """Close the outbox (the store, cache and audit log belong to the caller)."""
        self.outbox.close()

    def __enter__(self) -> HybridEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_documents(documents: Sequence[Document]) -> list[Document]:
    if isinstance(documents, Document):
        raise InputError("ingest takes a list of Documents; wrap the one document in a list")
    docs = list(documents)
    seen: set[str] = set()
    for i, d in enumerate(docs):
        if not isinstance(d, Document):
            raise InputError(f"item {i} is a {type(d).__name__}, expected edgeroute Document")
        if not isinstance(d.id, str) or not d.id:
            raise InputError(f"document {i} has no id; give every document a unique, non-empty id")
        if d.id in seen:
            raise InputError(f"document id {d.id!r} appears twice in one ingest; ids must be unique")
        seen.add(d.id)
        if not d.text.strip() and not d.parts:
            raise InputError(f"document {d.id!r} is empty: give it text or media parts")
        if d.parts:
            validate_content(_cloud_parts(d), i)
    return docs


__all__ = [
    "HybridEngine",
    "IngestReport",
    "SyncReport",
    "assemble",
    "cloud_cost",
    "edge_confidence",
    "force_route",
    "parse_query",
]
