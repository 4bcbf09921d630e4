"""Ingest: every document into the edge index, the cloud-eligible ones through the outbox.

Placement is checked for all documents before anything is written. Documents the policy keeps
private are registered with the privacy guard, removed from the outbox and the cloud index, and
never sent. With the cloud reachable the outbox is drained at once (:mod:`.drain`); otherwise the
documents wait there for ``edgeroute sync``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ...policies.sensitivity import above_ceiling
from ..aio import to_thread
from ..documents import Document
from .drain import drain
from .placement import check_documents, cloud_allowed, write_index
from .reports import IngestReport, SyncReport

if TYPE_CHECKING:
    from .engine import HybridEngine

BATCH = 64


async def ingest(engine: HybridEngine, documents: Sequence[Document]) -> IngestReport:
    docs = check_documents(documents)
    to_cloud = cloud_allowed(docs, engine.policy)
    for doc, ok in zip(docs, to_cloud, strict=True):
        if not ok:
            # A confidential document's title is private too; a chunk kept back only for PII in its
            # body shares its title with its siblings, which may still go to the cloud.
            private_title = above_ceiling(doc.sensitivity, engine.policy.cloud_ceiling)
            engine.guard.add_text(doc.text, doc.title if private_title else None)
            for part in doc.parts:
                engine.guard.add_part(part)
    edge_docs = [d for d in docs if d.text.strip()]
    edge_written = await _write_edge(engine, edge_docs) if edge_docs else 0
    private_ids = [d.id for d, ok in zip(docs, to_cloud, strict=True) if not ok]
    cloud_docs = [d for d, ok in zip(docs, to_cloud, strict=True) if ok]
    if private_ids:
        # A document that became private must leave the cloud index and never be sent later.
        await to_thread(engine.outbox.discard, engine.name, private_ids)
        cloud_col = await engine.aopen_index("cloud", create=False)
        if cloud_col is not None:
            await to_thread(cloud_col.delete, private_ids)
    await to_thread(engine.outbox.enqueue, engine.name, cloud_docs)
    state = engine.cloud_state()
    depth = await to_thread(engine.outbox.depth, engine.name)
    if state in ("closed", "half_open") and depth:
        sync = await drain(engine, None)
    else:
        sync = SyncReport(remaining=depth, error=None if state == "closed" else f"cloud is {state}")
    return IngestReport(
        documents=len(docs),
        edge_written=edge_written,
        edge_unchanged=len(edge_docs) - edge_written,
        private=len(private_ids),
        cloud=sync,
        queued=sync.remaining,
    )


async def _write_edge(engine: HybridEngine, docs: list[Document]) -> int:
    """Embed and store the documents whose content changed; returns how many were written."""
    col = await engine.aopen_index("edge", create=True)
    assert col is not None
    written = 0
    for start in range(0, len(docs), BATCH):
        batch = docs[start : start + BATCH]
        stale = set(await to_thread(col.stale_ids, [d.id for d in batch], [d.content_hash() for d in batch]))
        fresh = [d for d in batch if d.id in stale]
        if not fresh:
            continue
        vecs = await engine.edge_embedder.aembed_documents(
            [d.text for d in fresh], titles=[d.title for d in fresh], dims=engine.edge_dims
        )
        await write_index(col, fresh, vecs, engine.edge_space)
        written += len(fresh)
    return written


__all__ = ["ingest"]
