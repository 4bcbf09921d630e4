"""Drain: send queued documents to the cloud index, in batches, safe to interrupt at any point.

Each batch is placed again and checked against the privacy guard before sending (a document may
have become private since it was queued: it is dropped from the queue, never sent). Rows leave the
outbox only after their vectors are stored, so a crash (kill -9 included) loses nothing and the
next drain re-sends nothing (``stale_ids`` sees what is stored).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..aio import to_thread
from ..errors import ConfigurationError, InputError
from ..parts import Part
from .placement import cloud_allowed, cloud_parts, write_index
from .reports import SyncReport

if TYPE_CHECKING:
    from .engine import HybridEngine


def check_drain(engine: HybridEngine, limit: int | None, batch_size: int) -> None:
    if engine.cloud is None:
        raise ConfigurationError(
            "no cloud embedder is configured, so the outbox cannot be drained: set GEMINI_API_KEY "
            "(and GOOGLE_GEMINI_BASE_URL for the emulator) or pass cloud=CloudEmbedder(...)"
        )
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InputError(f"limit must be a positive integer or None, got {limit!r}")
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")


async def drain(engine: HybridEngine, limit: int | None, batch_size: int = 32) -> SyncReport:
    check_drain(engine, limit, batch_size)
    calls = engine.cloud_calls
    assert calls is not None
    outbox, name = engine.outbox, engine.name
    written = unchanged = refused = failed = 0
    error: str | None = None
    col = await engine.aopen_index("cloud", create=True)
    assert col is not None
    done = 0
    while limit is None or done < limit:
        take = batch_size if limit is None else min(batch_size, limit - done)
        items = await to_thread(outbox.pending, name, limit=take)
        if not items:
            break
        docs = [it.document for it in items]
        allowed = cloud_allowed(docs, engine.policy)
        guard = engine.guard
        blocked = {
            d.id
            for d, ok in zip(docs, allowed, strict=True)
            if not ok
            or any(guard.is_private(p) for p in cloud_parts(d))
            or (d.title is not None and guard.is_private(Part.text(d.title)))
        }
        if blocked:
            await to_thread(outbox.discard, name, [d.id for d in docs if d.id in blocked])
            refused += len(blocked)
        keep = [it for it in items if it.document.id not in blocked]
        stale = set(
            await to_thread(col.stale_ids, [i.document.id for i in keep], [i.content_hash for i in keep])
        )
        fresh = [it.document for it in keep if it.document.id in stale]
        if fresh:
            try:
                vectors = await calls.document_vectors(fresh)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                await to_thread(outbox.mark_failed, name, [d.id for d in fresh], error)
                failed += len(fresh)
                break  # the cloud is failing or refusing: leave the rest queued for the next sync
            await write_index(col, fresh, vectors, col.space)
        written += len(fresh)
        unchanged += len(keep) - len(fresh)
        # Only now, with the vectors stored, may the rows go: a crash before this line re-sends
        # nothing (stale_ids sees them stored) and loses nothing (the rows are still queued).
        await to_thread(outbox.mark_done, name, [(i.document.id, i.content_hash) for i in keep])
        done += len(items)
    remaining = await to_thread(outbox.depth, name)
    return SyncReport(written, unchanged, refused, failed, remaining, error)


__all__ = ["check_drain", "drain"]
