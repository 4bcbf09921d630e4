"""Removing documents: by id, by source path, and pruning what a re-indexed source no longer holds.

A document lives in up to three places: the edge index, the cloud index (vectors Gemini computed,
stored locally) and the outbox (queued for the cloud index). Deleting takes it out of all three,
in an order that cannot leave it half-alive: the outbox first (with a tombstone, so a drainer that
is sending it right now takes its vector back out of the cloud index when it finishes, see
:meth:`~edgeroute.framework.router.outbox.Outbox.complete`), then the cloud index, then the edge
index, all under the collection's write order (:mod:`.write_order`), so an ingest of the same ids
runs wholly before or wholly after. Every deletion is written to the audit log (``"type": "delete"``, ids and counts).

Which records came from where: the CLI stores ``path`` (the file's absolute path) and ``origin``
(the absolute path given to ``edgeroute index``) in each document's metadata. ``delete --source P``
removes the records whose ``path`` is P or lies under it; pruning after ``edgeroute index P``
considers only records whose ``origin`` is P, so re-indexing one folder never touches another's.
"""

from __future__ import annotations

import os
from collections.abc import Container, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..aio import to_thread
from ..errors import CollectionNotFoundError, InputError
from ..store.chroma import Collection

if TYPE_CHECKING:
    from .engine import HybridEngine, IndexName

_AUDIT_IDS = 200  # ids listed in one audit record; the count is always exact


@dataclass(frozen=True, slots=True)
class DeleteReport:
    """What one deletion removed: ``ids`` matched, and how many records left each place."""

    ids: list[str] = field(default_factory=list)
    edge: int = 0
    cloud: int = 0
    queued: int = 0

    @property
    def matched(self) -> int:
        return len(self.ids)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "matched": self.matched}


def source_key(path: str | Path) -> str:
    """The absolute, normalised form of a path as stored in ``path``/``origin`` metadata."""
    return os.path.normpath(os.path.abspath(os.path.expanduser(str(path))))


def _from_source(meta: dict[str, Any], key: str, raw: str) -> bool:
    path = meta.get("path")
    if isinstance(path, str) and (path == key or path.startswith(key.rstrip(os.sep) + os.sep)):
        return True
    # Records indexed before paths were stored carry only their relative ``source``.
    return "path" not in meta and meta.get("source") == raw


async def _index(engine: HybridEngine, index: IndexName) -> Collection | None:
    try:
        return await engine.aopen_index(index, create=False)
    except CollectionNotFoundError:  # no edge index: a collection of media documents only
        return None


async def _records(engine: HybridEngine) -> dict[str, dict[str, Any]]:
    """``{id: metadata}`` over the edge index, the cloud index and the outbox of the collection."""
    out: dict[str, dict[str, Any]] = {}
    for index in ("edge", "cloud"):
        col = await _index(engine, index)
        if col is not None:
            out.update(await to_thread(col.metadata))
    queued = await to_thread(engine.outbox.queued, engine.name)
    for doc_id, meta in queued.items():
        out.setdefault(doc_id, meta)
    return out


async def matching_ids(engine: HybridEngine, *, source: str | Path) -> list[str]:
    """Ids of the collection's records that came from ``source`` (a file, or a folder and everything under it)."""
    key, raw = source_key(source), str(source)
    records = await _records(engine)
    return sorted(i for i, meta in records.items() if _from_source(meta, key, raw))


async def delete(
    engine: HybridEngine,
    ids: Sequence[str] | None = None,
    *,
    source: str | Path | None = None,
    reason: str = "delete",
) -> DeleteReport:
    """Remove documents by id and/or by source path from the outbox, the cloud index and the edge index."""
    if ids is None and source is None:
        raise InputError("say what to delete: document ids, or a source path")
    if isinstance(ids, str):
        raise InputError("ids must be a list of document ids, not one string; wrap it in a list")
    wanted = list(dict.fromkeys(ids or []))
    if any(not isinstance(i, str) or not i for i in wanted):
        raise InputError("every id must be a non-empty string")
    if source is not None:
        wanted += [i for i in await matching_ids(engine, source=source) if i not in set(wanted)]
    return await remove(engine, wanted, reason=reason, source=None if source is None else str(source))


async def remove(
    engine: HybridEngine, ids: Sequence[str], *, reason: str, source: str | None = None
) -> DeleteReport:
    """Take ``ids`` out of every place (outbox first, see the module docstring) and audit it."""
    ids = list(dict.fromkeys(ids))
    if not ids:
        return DeleteReport()
    counts: dict[str, int] = {}
    async with engine.write_order.hold():  # no ingest of this collection in between (see write_order)
        found = set(await to_thread(engine.outbox.queued, engine.name)) & set(ids)
        queued = await to_thread(engine.outbox.discard, engine.name, ids)
        for index in ("cloud", "edge"):
            col = await _index(engine, index)
            if col is None:
                counts[index] = 0
                continue
            present = await to_thread(col.get, ids)
            if present:
                await to_thread(col.delete, [r.id for r in present])
            counts[index] = len(present)
            found.update(r.id for r in present)
    ids = [i for i in ids if i in found]  # what was there to delete
    if not ids:
        return DeleteReport()
    report = DeleteReport(ids=ids, edge=counts["edge"], cloud=counts["cloud"], queued=queued)
    await to_thread(
        engine.audit.write,
        {
            "type": "delete",
            "collection": engine.name,
            "reason": reason,
            "source": source,
            "matched": len(ids),
            "edge": report.edge,
            "cloud": report.cloud,
            "queued": report.queued,
            "ids": ids[:_AUDIT_IDS],
            "ids_truncated": len(ids) > _AUDIT_IDS,
        },
    )
    return report


async def prune(
    engine: HybridEngine, origin: str | Path, keep: Container[str], *, protect: Container[str] = ()
) -> DeleteReport:
    """After re-indexing ``origin``: remove its records that are not in ``keep`` (files or chunks that
    are gone). Records from other origins are never touched; records whose ``path`` is in ``protect``
    (files that could not be read this time) are kept, so a bad read never deletes the good copy."""
    key = source_key(origin)
    records = await _records(engine)
    stale = sorted(
        i
        for i, meta in records.items()
        if meta.get("origin") == key and i not in keep and meta.get("path") not in protect
    )
    return await remove(engine, stale, reason="prune", source=key)


__all__ = ["DeleteReport", "delete", "matching_ids", "prune", "remove", "source_key"]
