"""Drain: send queued documents to the cloud index, in batches, safe to interrupt at any point.

Each batch is placed again and checked against the privacy guard before sending (a document may
have become private since it was queued: it is dropped from the queue, never sent). The placement
reads the findings ingest stored with each row (no model pass); only a row whose findings were
computed under another detector version (or none, from an older release) is detected again. Rows leave the
outbox only after their vectors are stored, so a crash (kill -9 included) loses nothing and the
next drain re-sends nothing (``stale_ids`` sees what is stored).

Several drainers (``edgeroute index``, ``sync``, ``sync --watch``, in as many processes) share one
outbox safely: each batch is *claimed* with a lease (:meth:`Outbox.claim`), so a row is sent by one
drainer only, and each report counts what that drainer itself delivered. A document deleted while
it was being sent is taken back out of the cloud index when the send completes, and a row whose
document changed meanwhile is left for the next drain (generations, see :mod:`.outbox`), so the last
ingest or delete of an id wins in the cloud index too. The cloud index is created only when there
is something to write into it.

A batch the cloud refuses permanently (:mod:`.failures`) is sent again one document at a time: the
good documents are stored, and only the refused ones are charged an attempt, which after
``Outbox.max_attempts`` makes them dead letters. A document the client's own input checks refuse
(over the token limit by far, too many images) is a dead letter at once: nothing was sent, and the
same check refuses it every time. A transient failure stops the drain and the rows
wait out a backoff.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..aio import to_thread
from ..cloud.media import validate_content
from ..documents import Document
from ..embedder import Vectors
from ..errors import ConfigurationError, InputError
from ..parts import Part
from ..pii.stored import findings_from_json
from ..store.chroma import Collection
from .cloud_calls import CloudCalls
from .failures import error_kind
from .outbox import DEFAULT_LEASE_S, Claim, Outbox, OutboxItem, new_owner_id
from .placement import cloud_allowed, cloud_parts, pii_text, write_index
from .reports import ProgressFn, SyncReport

if TYPE_CHECKING:
    from ...policies.signals import PiiFinding
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
    tried: set[str] = set()  # ids this drain failed: not claimed again by it
    total = await to_thread(outbox.depth, name)
    try:
        while limit is None or done < limit:
            take = batch_size if limit is None else min(batch_size, limit - done)
            claim = await to_thread(
                outbox.claim, name, take, owner=owner, lease_s=DEFAULT_LEASE_S, skip=tried
            )
            if not claim:
                break  # nothing left that another drainer is not already sending
            if col is None:
                col = await engine.aopen_index("cloud", create=False)
            checked = await screen(engine, claim, col)
            if checked.error is not None:
                error = checked.error
            failed += len(checked.invalid)
            tried |= checked.invalid
            refused += checked.refused
            keep = checked.keep
            fresh = [it.document for it in checked.fresh]
            sent = await _send(calls, fresh)
            if sent.docs:
                if col is None:  # created only now, with vectors to put in it
                    col = await engine.aopen_index("cloud", create=True)
                    assert col is not None
                await write_index(col, sent.docs, sent.vectors, col.space)
            for doc, refusal in sent.refused:  # the cloud can never take these: count toward dead-lettering
                error = f"{type(refusal).__name__}: {refusal}"
                await to_thread(outbox.fail, claim, [doc.id], error, "permanent")
            if sent.failed:
                error = f"{type(sent.error).__name__}: {sent.error}"
                await to_thread(outbox.fail, claim, [d.id for d in sent.failed], error, "transient")
            failed += len(sent.refused) + len(sent.failed)
            not_sent = {d.id for d, _ in sent.refused} | {d.id for d in sent.failed}
            tried |= not_sent
            written += len(sent.docs)
            unchanged += len(keep) - len(fresh)
            # Only now, with the vectors stored, may the rows go: a crash before this line re-sends
            # nothing (stale_ids sees them stored) and loses nothing (the rows are still queued).
            completion = await to_thread(
                outbox.complete,
                claim,
                [(i.document.id, i.content_hash) for i in keep if i.document.id not in not_sent],
            )
            # Deleted while we were sending: what we just wrote must not outlive the deletion. The rows
            # stay ours until it is gone, so no other drainer writes these ids in between.
            await _settle(outbox, claim, col, completion.vanished)
            done += len(claim.items)
            if progress is not None:
                progress("cloud", done, total if limit is None else min(total, limit))
            if sent.failed:
                break  # the cloud is failing: leave the rest queued for the next sync
    finally:
        await to_thread(outbox.release, owner)  # rows of a batch cut short go back to the queue
    remaining = await to_thread(outbox.depth, name)
    in_flight = await to_thread(outbox.leased, name)
    dead = await to_thread(outbox.dead_count, name)
    if dead and error is None:
        error = f"{dead} dead-lettered document(s) the cloud refused; see edgeroute status"
    return SyncReport(written, unchanged, refused, failed, remaining, error, in_flight=in_flight, dead=dead)


@dataclass(slots=True)
class Screened:
    """A claim after the checks every drain runs before sending: ``keep`` the rows still due for the
    cloud, of which ``fresh`` are not stored yet in their current version; ``invalid`` ids were made
    dead letters (the client's input checks refuse them), ``refused`` rows were dropped by privacy."""

    keep: list[OutboxItem]
    fresh: list[OutboxItem]
    invalid: set[str]
    refused: int
    error: str | None


async def screen(engine: HybridEngine, claim: Claim, col: Collection | None) -> Screened:
    """Settle tombstone rows, dead-letter what the input checks refuse, place every row again from its
    stored findings and check it against the guard (**P**: a private row is discarded, never sent),
    and skip what the cloud index already holds. Shared by the interactive and the Batch API drains."""
    outbox, name = engine.outbox, engine.name
    error: str | None = None
    # Tombstone rows whose drainer died before taking its write back out: finish its job.
    await _settle(outbox, claim, col, [it.document.id for it in claim.items if it.deleted])
    items = [it for it in claim.items if not it.deleted]
    # What the cloud client's own limit checks refuse would be refused on every attempt, with no
    # request sent: dead at once, before the costly privacy scan of (often very long) texts.
    invalid = _invalid(items)
    for doc_id, exc in invalid.items():
        await to_thread(outbox.fail, claim, [doc_id], f"{type(exc).__name__}: {exc}", "permanent", dead=True)
        error = f"{type(exc).__name__}: {exc}"
    items = [it for it in items if it.document.id not in invalid]
    docs = [it.document for it in items]
    found = await _findings(engine, items)
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
        gone = [d.id for d in docs if d.id in blocked]
        await to_thread(outbox.discard, name, gone)
        # Our rows are now tombstones: take any earlier version out of the cloud index, drop them.
        await _settle(outbox, claim, col, gone)
    keep = [it for it in items if it.document.id not in blocked]
    fresh = keep
    if col is not None and keep:
        stale = set(
            await to_thread(col.stale_ids, [i.document.id for i in keep], [i.content_hash for i in keep])
        )
        fresh = [it for it in keep if it.document.id in stale]
    return Screened(keep, fresh, set(invalid), len(blocked), error)


async def _findings(engine: HybridEngine, items: list[OutboxItem]) -> list[tuple[PiiFinding, ...]]:
    """Each queued document's findings: those ingest stored with its row when they were computed by the
    same detector version (no model pass), else detected again now (a row from an older release, or
    the head, the rules, the model or the policy's PII settings changed since it was queued)."""
    version = engine.pii.version
    out: list[tuple[PiiFinding, ...] | None] = [
        findings_from_json(it.findings)
        if it.findings is not None and it.detector_version == version
        else None
        for it in items
    ]
    again = [i for i, f in enumerate(out) if f is None]
    if again:
        redone = await engine.pii.adetect_many([pii_text(items[i].document) for i in again])
        for i, f in zip(again, redone, strict=True):
            stored = items[i].findings
            if stored is not None and not engine.pii.entities_available:
                # A drainer with no entity recogniser (`edgeroute sync` loads no model): the entities
                # ingest found still hold, and more findings can only keep more documents back.
                kept = [e for e in findings_from_json(stored) if e.detector.startswith("entities")]
                f = tuple(sorted((*f, *kept), key=lambda x: (x.start, x.end)))
            out[i] = f
    return [f or () for f in out]


def _invalid(items: list[OutboxItem]) -> dict[str, InputError]:
    """``{id: error}`` of the documents the cloud's input limits refuse (checked locally, nothing sent)."""
    out: dict[str, InputError] = {}
    for it in items:
        try:
            validate_content(cloud_parts(it.document))
        except InputError as exc:
            out[it.document.id] = exc
    return out


async def _settle(outbox: Outbox, claim: Claim, col: Collection | None, ids: list[str]) -> None:
    """Take ``ids`` (deleted since they were claimed) out of the cloud index, then drop their rows."""
    if not ids:
        return
    if col is not None:
        await to_thread(col.delete, ids)
    await to_thread(outbox.settle, claim, ids)


@dataclass(slots=True)
class _Sent:
    docs: list[Document] = field(default_factory=list)
    vectors: Vectors = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    refused: list[tuple[Document, Exception]] = field(default_factory=list)
    """Documents the cloud refused for good, each sent alone (so the refusal is its own)."""
    failed: list[Document] = field(default_factory=list)
    """Documents not sent because of a transient ``error`` (the drain stops)."""
    error: Exception | None = None


async def _send(calls: CloudCalls, docs: list[Document]) -> _Sent:
    """Embed ``docs`` in one call. When the call is refused permanently, one document is to blame or
    several are: send each alone, so the good ones are stored and only the bad ones are charged."""
    if not docs:
        return _Sent()
    try:
        return _Sent(docs, await calls.document_vectors(docs))
    except Exception as exc:
        if error_kind(exc) != "permanent":
            return _Sent(failed=docs, error=exc)
        if len(docs) == 1:
            return _Sent(refused=[(docs[0], exc)])
    out = _Sent()
    rows: list[Vectors] = []
    for i, doc in enumerate(docs):
        try:
            rows.append(await calls.document_vectors([doc]))
        except Exception as exc:
            if error_kind(exc) == "permanent":
                out.refused.append((doc, exc))
                continue
            out.failed, out.error = docs[i:], exc
            break
        out.docs.append(doc)
    if rows:
        out.vectors = np.concatenate(rows)
    return out


__all__ = ["Screened", "check_drain", "drain", "screen"]
