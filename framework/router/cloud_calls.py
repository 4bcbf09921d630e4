"""The engine's calls to the cloud embedder: query and document vectors, each with its audit record.

Every call writes one ``cloud_call`` record when it ends: ``ok`` with its estimated tokens, bytes
and cost; ``error``; or ``cancelled`` (dropped at a deadline) with nothing billed. A call that is
cancelled writes its record as the cancellation lands, so nothing is written after the engine has
answered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..cloud.embedder import CloudEmbedder
from ..cloud.media import estimate_part_tokens
from ..documents import Document
from ..embedder import Embedder, Vectors
from ..errors import CloudError, InputError, PrivacyViolationError
from ..parts import Part
from ..spaces import EmbeddingSpace
from .audit import AuditLog, CloudCallRecord, CloudOutcome
from .placement import cloud_parts
from .query import ParsedQuery

# Refused by the client itself before anything was sent.
_LOCAL_REFUSALS = frozenset({"OFFLINE", "CIRCUIT_OPEN"})


def cloud_cost(parts: Sequence[Part], cloud: CloudEmbedder) -> tuple[int, int, float]:
    """Estimated tokens, bytes and USD of sending ``parts`` (audit figures; the bill is Google's)."""
    tokens: dict[str, int] = {}
    nbytes = 0
    for p in parts:
        tokens[p.modality] = tokens.get(p.modality, 0) + estimate_part_tokens(p)
        if p.text_value is not None:
            nbytes += len(p.text_value.encode("utf-8"))
        else:
            nbytes += len(p.data or b"") + len((p.uri or "").encode())
    return sum(tokens.values()), nbytes, cloud.usage.prices.cost(tokens)


def _sent(exc: BaseException | None) -> bool:
    """Did the call's bytes leave the device? Not when a local check refused it or it was cancelled."""
    return not (
        isinstance(exc, PrivacyViolationError | InputError | asyncio.CancelledError)
        or (isinstance(exc, CloudError) and exc.status in _LOCAL_REFUSALS)
    )


@dataclass(frozen=True, slots=True)
class CloudCalls:
    """Embeds queries and documents for one engine's cloud index and audits every call.

    ``text`` is the cloud embedder as the engine uses it for text (the cache in front, if any);
    media goes to ``cloud`` directly.
    """

    cloud: CloudEmbedder
    text: Embedder
    space: EmbeddingSpace
    dims: int | None
    audit: AuditLog
    collection: str

    def cost(self, parts: Sequence[Part]) -> tuple[int, int, float]:
        return cloud_cost(parts, self.cloud)

    async def query_vector(self, q: ParsedQuery) -> Vectors:
        """The query's one vector (a ``(1, dims)`` array)."""
        t0 = time.perf_counter()
        try:
            if q.modalities == {"text"}:
                vec = await self.text.aembed_queries([q.text], dims=self.dims)
            else:
                vec = await self.cloud.aembed([list(q.parts)], task="query", dims=self.dims)
        except BaseException as exc:
            self._record("query", q.parts, t0, exc)
            raise
        self._record("query", q.parts, t0, None)
        return vec

    async def document_vectors(self, docs: Sequence[Document]) -> Vectors:
        """One vector per document: text-only ones through ``text`` (cached), the others as media."""
        parts = [p for d in docs for p in cloud_parts(d)]
        t0 = time.perf_counter()
        try:
            out = await self._document_vectors(docs)
        except BaseException as exc:
            self._record("index", parts, t0, exc)
            raise
        self._record("index", parts, t0, None)
        return out

    async def _document_vectors(self, docs: Sequence[Document]) -> Vectors:
        text_only = [i for i, d in enumerate(docs) if not d.is_multimodal]
        media = [i for i, d in enumerate(docs) if d.is_multimodal]
        out = np.empty((len(docs), self.space.dims), dtype=np.float32)
        if text_only:
            out[text_only] = await self.text.aembed_documents(
                [docs[i].text for i in text_only], titles=[docs[i].title for i in text_only], dims=self.dims
            )
        if media:
            out[media] = await self.cloud.aembed(
                [cloud_parts(docs[i]) for i in media], task="document", dims=self.dims
            )
        return out

    def _record(self, purpose: str, parts: Sequence[Part], t0: float, exc: BaseException | None) -> None:
        tokens, nbytes, cost = self.cost(parts)
        outcome: CloudOutcome = (
            "ok" if exc is None else "cancelled" if isinstance(exc, asyncio.CancelledError) else "error"
        )
        sent = _sent(exc)
        record: CloudCallRecord = {
            "type": "cloud_call",
            "collection": self.collection,
            "purpose": purpose,
            "outcome": outcome,
            "error": None if exc is None else type(exc).__name__,
            "latency_ms": elapsed_ms(t0),
            "items": len(parts),
            "tokens": tokens if sent else 0,
            "bytes": nbytes if sent else 0,
            "cost_usd": round(cost, 10) if exc is None else 0.0,
            "space": self.space.fingerprint,
        }
        self.audit.write(record)


def elapsed_ms(t0: float) -> float:
    """Milliseconds since ``t0`` (a ``time.perf_counter()``), rounded for the audit log."""
    return round((time.perf_counter() - t0) * 1000.0, 3)


__all__ = ["CloudCalls", "cloud_cost", "elapsed_ms"]
