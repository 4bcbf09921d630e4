"""Ingest: every document into the edge index, the cloud-eligible ones through the outbox.

Lengths and placement are checked for all documents before anything is written: a document longer
than the edge model's token limit, or a cloud-bound one over the cloud's, is refused with an error that
names it, never embedded from its first tokens. Documents the policy keeps
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
from .placement import (
    check_cloud_lengths,
    check_documents,
    check_edge_lengths,
    cloud_allowed,
    index_metadata,
    pii_text,
    write_index,
)
from .reports import IngestReport, ProgressFn, SyncReport

if TYPE_CHECKING:
    from .engine import HybridEngine

BATCH = 64
EMBED_BATCH = 16
"""Documents embedded, then stored, at a time: the edge embedder's own batch size, so storing as
batches finish costs no throughput and a killed run loses at most one batch of work."""


async def ingest(
    engine: HybridEngine, documents: Sequence[Document], *, progress: ProgressFn | None = None
) -> IngestReport:
    docs = check_documents(documents)
    # Before any model pass or write: a document longer than a model reads is refused, never cut.
    await to_thread(check_edge_lengths, docs, engine.edge)
    found = await engine.pii.adetect_many([pii_text(d) for d in docs])
    to_cloud = cloud_allowed(docs, engine.policy, found)
    if engine.cloud is not None:
        check_cloud_lengths([d for d, ok in zip(docs, to_cloud, strict=True) if ok])
    for doc, ok in zip(docs, to_cloud, strict=True):
        if not ok:
            # A confidential document's title is private too; a chunk kept back only for PII in its
            # body shares its title with its siblings, which may still go to the cloud.
            private_title = above_ceiling(doc.sensitivity, engine.policy.cloud_ceiling)
            engine.guard.add_text(doc.text, doc.title if private_title else None)
            for part in doc.parts:
                engine.guard.add_part(part)
    edge_docs = [d for d in docs if d.text.strip()]
    private_ids = [d.id for d, ok in zip(docs, to_cloud, strict=True) if not ok]
    cloud_docs = [d for d, ok in zip(docs, to_cloud, strict=True) if ok]
    # From the first write to the last, no delete of this collection runs in between (write_order):
    # the edge index and the outbox end up saying the same thing, whichever ran last.
    async with engine.write_order.hold():
        edge_written, edge_updated = await _write_edge(engine, edge_docs, progress) if edge_docs else (0, 0)
        if private_ids:
            # A document that became private must leave the cloud index and never be sent later.
            await to_thread(engine.outbox.discard, engine.name, private_ids)
            cloud_col = await engine.aopen_index("cloud", create=False)
            if cloud_col is not None:
                await to_thread(cloud_col.delete, private_ids)
        await to_thread(engine.outbox.enqueue, engine.name, cloud_docs)
        await _update_cloud_metadata(engine, cloud_docs)
    state = engine.cloud_state()
    depth = await to_thread(engine.outbox.depth, engine.name)
    if state in ("closed", "half_open") and depth:
        sync = await drain(engine, None, progress=progress)
    else:
        sync = SyncReport(remaining=depth, error=None if state == "closed" else f"cloud is {state}")
    return IngestReport(
        documents=len(docs),
        edge_written=edge_written,
        edge_unchanged=len(edge_docs) - edge_written,
        edge_updated=edge_updated,
        private=len(private_ids),
        cloud=sync,
        queued=sync.remaining,
    )


async def _write_edge(
    engine: HybridEngine, docs: list[Document], progress: ProgressFn | None
) -> tuple[int, int]:
    """Embed and store the documents whose content changed, and update the stored metadata of those
    whose content did not but whose metadata did (a re-marked sensitivity). Returns (written, updated).

    Vectors are stored every ``EMBED_BATCH`` documents, as they are finished: a run killed midway
    (kill -9) keeps all but the batch in flight, and the next run embeds only what is missing.
    """
    col = await engine.aopen_index("edge", create=True)
    assert col is not None
    written = updated = done = 0
    for start in range(0, len(docs), BATCH):
        batch = docs[start : start + BATCH]
        stored = {r.id: r for r in await to_thread(col.get, [d.id for d in batch])}
        fresh, relabel = [], []
        for d in batch:
            record = stored.get(d.id)
            if record is None or record.content_hash != d.content_hash():
                fresh.append(d)
            elif record.metadata != index_metadata(d):
                relabel.append(d)
        if relabel:
            await to_thread(
                col.update_metadata, [d.id for d in relabel], [index_metadata(d) for d in relabel]
            )
            updated += len(relabel)
        done += len(batch) - len(fresh)
        # Longest first, as the embedder batches anyway: similar lengths share a batch (less padding).
        fresh.sort(key=lambda d: len(d.text), reverse=True)
        for sub in range(0, len(fresh), EMBED_BATCH):
            part = fresh[sub : sub + EMBED_BATCH]
            vecs = await engine.edge_embedder.aembed_documents(
                [d.text for d in part], titles=[d.title for d in part], dims=engine.edge_dims
            )
            await write_index(col, part, vecs, engine.edge_space)
            written += len(part)
            done += len(part)
            if progress is not None:
                progress("edge", done, len(docs))
        if progress is not None:
            progress("edge", done, len(docs))
    return written, updated


async def _update_cloud_metadata(engine: HybridEngine, docs: list[Document]) -> None:
    """Cloud records whose document is unchanged but relabelled (a new sensitivity) get the new metadata."""
    if not docs:
        return
    col = await engine.aopen_index("cloud", create=False)
    if col is None:
        return
    for start in range(0, len(docs), BATCH):
        batch = docs[start : start + BATCH]
        stored = {r.id: r for r in await to_thread(col.get, [d.id for d in batch])}
        relabel = [
            d
            for d in batch
            if (r := stored.get(d.id)) is not None
            and r.content_hash == d.content_hash()
            and r.metadata != index_metadata(d)
        ]
        if relabel:
            await to_thread(
                col.update_metadata, [d.id for d in relabel], [index_metadata(d) for d in relabel]
            )


__all__ = ["ingest"]
