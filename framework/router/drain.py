"""Drain: send queued documents to the cloud index, in batches, safe to interrupt at any point.

Each batch is placed again and checked against the privacy guard before sending (a document may
have become private since it was queued: it is dropped from the queue, never sent). Rows leave the
outbox only after their vectors are stored, so a crash (kill -9 included) loses nothing and the
next drain re-sends nothing (``stale_ids`` sees what is stored).

Several drainers (``edgeroute index``, ``sync``, ``sync --watch``, in as many processes) share one
outbox safely: each batch is *claimed* with a lease (:meth:`Outbox.claim`), so a row is sent by one
drainer only, and each report counts what that drainer itself delivered. A document deleted while
it was being sent is taken back out of the cloud index when the send completes. The cloud index
is created only when there is something to write into it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..aio import to_thread
from ..errors import ConfigurationError, InputError
from ..parts import Part
from ..store.chroma import Collection
from .outbox import DEFAULT_LEASE_S, new_owner_id
from .placement import cloud_allowed, cloud_parts, pii_text, write_index
from .reports import ProgressFn, SyncReport

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


async def drain(
    engine: HybridEngine,
    limit: int | None,
    batch_size: int = 32,
    *,
    progress: ProgressFn | None = None,
) -> SyncReport:
    check_drain(engine, limit, batch_size)
    calls = engine.cloud_calls
    assert calls is not None
    outbox, name = engine.outbox, engine.name
    owner = new_owner_id()
    written = unchanged = refused = failed = 0
    error: str | None = None
    col: Collection | None = None  # the cloud index, opened (and created) only when needed
    done = 0
    total = await to_thread(outbox.depth, name)
    try:
        while limit is None or done < limit:
            take = batch_size if limit is None else min(batch_size, limit - done)
            claim = await to_thread(outbox.claim, name, take, owner=owner, lease_s=DEFAULT_LEASE_S)
            if not claim:
                break  # nothing left that another drainer is not already sending
            items = claim.items
            docs = [it.document for it in items]
            found = await engine.pii.adetect_many([pii_text(d) for d in docs])
            allowed = cloud_allowed(docs, engine.policy, found)
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
            if col is None:
                col = await engine.aopen_index("cloud", create=False)
            fresh = [it.document for it in keep]
            if col is not None and keep:
                stale = set(
                    await to_thread(
                        col.stale_ids, [i.document.id for i in keep], [i.content_hash for i in keep]
                    )
                )
                fresh = [it.document for it in keep if it.document.id in stale]
            if fresh:
                try:
                    vectors = await calls.document_vectors(fresh)
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    await to_thread(outbox.fail, claim, [d.id for d in fresh], error)
                    failed += len(fresh)
                    break  # the cloud is failing or refusing: leave the rest queued for the next sync
                if col is None:  # created only now, with vectors to put in it
                    col = await engine.aopen_index("cloud", create=True)
                    assert col is not None
                await write_index(col, fresh, vectors, col.space)
            written += len(fresh)
            unchanged += len(keep) - len(fresh)
            # Only now, with the vectors stored, may the rows go: a crash before this line re-sends
            # nothing (stale_ids sees them stored) and loses nothing (the rows are still queued).
            completion = await to_thread(
                outbox.complete, claim, [(i.document.id, i.content_hash) for i in keep]
            )
            if completion.vanished and col is not None:
                # Deleted while we were sending: what we just wrote must not outlive the deletion.
                await to_thread(col.delete, completion.vanished)
            done += len(items)
            if progress is not None:
                progress("cloud", done, total if limit is None else min(total, limit))
    finally:
        await to_thread(outbox.release, owner)  # rows of a batch cut short go back to the queue
    remaining = await to_thread(outbox.depth, name)
    in_flight = await to_thread(outbox.leased, name)
    return SyncReport(written, unchanged, refused, failed, remaining, error, in_flight=in_flight)


__all__ = ["check_drain", "drain"]
