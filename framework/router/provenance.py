"""Where a stored document came from, checked before ``edgeroute index`` writes anything.

A document id is the file's path relative to the folder given (``faq.md#0``), so two folders that
hold files of the same names give the same ids, and the same file indexed from two roots gets two
ids. Ids stay as they are (so every store written before keeps working, unmigrated); instead the
``path`` (the file) and ``origin`` (the path given) that the CLI stores next to every record are
checked against what is about to be written, in the edge index, the cloud index and the outbox:

- a **collision**: an id about to be written is stored for another file (another ``path``, or no
  ``path`` at all: a record ingested through the library or the service). Writing it would replace
  that document silently.
- a **duplicate**: a file about to be written is stored under another id (indexed before from an
  overlapping root, or under another id prefix). Writing it would store it twice. Older chunks of
  the same file under the same naming are not duplicates: pruning removes them after the write.

The same id for the same file from another origin (a folder re-indexed one file at a time) is
neither: the record is rewritten and belongs to the new origin from then on.

``--id-prefix NAME`` makes ids ``NAME/faq.md#0`` and is recorded in each record's metadata
(``id_prefix``), so re-indexing the same PATH without the option keeps its prefix. The checks read
metadata only (a batched ``get`` by id and a ``path`` filter); nothing is embedded. They run in
the engine session that writes, so with the store's writer lock held the check and the write are
one step.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..documents import Document
from ..errors import CollectionNotFoundError, InputError

if TYPE_CHECKING:
    from ..store.chroma import Collection
    from .engine import HybridEngine

PREFIX_KEY = "id_prefix"
"""The metadata key that records a document's ``--id-prefix``."""

_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*)*")
_SHOWN = 5  # conflicts listed in the message; the count is always exact
_PATHS_PER_QUERY = 200  # values in one ``$in`` filter


def check_prefix(prefix: str | None) -> str | None:
    """``prefix`` if it is a valid id prefix (letters, digits, ``._-``, parts joined by ``/``), else :class:`InputError`."""
    if prefix is None:
        return None
    if len(prefix) > 64 or not _PREFIX.fullmatch(prefix):
        raise InputError(
            f"--id-prefix {prefix!r} is not a valid id prefix: use letters, digits, '.', '_' and '-' "
            "(parts may be joined by '/'), at most 64 characters, such as 'hr' or 'support/it'"
        )
    return prefix


def with_prefix(doc: Document, prefix: str | None) -> Document:
    """``doc`` with its id under ``prefix`` (``NAME/<id>``) and the prefix recorded in its metadata."""
    if prefix is None:
        return doc
    return dataclasses.replace(doc, id=f"{prefix}/{doc.id}", metadata={**doc.metadata, PREFIX_KEY: prefix})


@dataclass(frozen=True, slots=True)
class Conflict:
    """A document about to be written (``id``, ``path``, ``origin``) and the stored record in its way."""

    id: str
    path: str
    origin: str
    stored_id: str
    stored_path: str | None
    stored_origin: str | None
    stored_prefix: str | None = None


def _indexes(engine: HybridEngine) -> Iterator[Collection]:
    for index in ("edge", "cloud"):
        try:
            col = engine.open_index(index)
        except CollectionNotFoundError:  # nothing indexed yet (or media only: no edge index)
            continue
        if col is not None:
            yield col


def _text(meta: Mapping[str, Any], key: str) -> str | None:
    value = meta.get(key)
    return value if isinstance(value, str) else None


def recorded_prefix(engine: HybridEngine, origin: str, queued: Mapping[str, dict[str, Any]]) -> str | None:
    """The id prefix (``""`` for none) recorded for ``origin``, or None when nothing was indexed from it.
    One record tells: a PATH's records share one prefix (another is refused by :func:`resolve_prefix`)."""
    for col in _indexes(engine):
        meta = col.first_metadata({"origin": origin})
        if meta is not None:
            return _text(meta, PREFIX_KEY) or ""
    for meta in queued.values():
        if meta.get("origin") == origin:
            return _text(meta, PREFIX_KEY) or ""
    return None


def resolve_prefix(
    engine: HybridEngine, origin: str, given: str | None, queued: Mapping[str, dict[str, Any]]
) -> str | None:
    """The id prefix to index ``origin`` with: ``given``, or the one recorded for it. A prefix other
    than the recorded one is :class:`InputError` (it would store every file of ``origin`` twice)."""
    recorded = recorded_prefix(engine, origin, queued)
    if recorded is None:
        return given
    if given is None:
        return recorded or None
    if recorded != given:
        was = f"--id-prefix {recorded}" if recorded else "no --id-prefix"
        raise InputError(
            f"{origin} was indexed into collection {engine.name!r} with {was}; indexing it with "
            f"--id-prefix {given} would store each of its files twice, so nothing was written. "
            f"Re-index it as before, or remove it first (`edgeroute delete --source {origin}`) to change its ids"
        )
    return given


def _stored_by_id(
    engine: HybridEngine, ids: Sequence[str], queued: Mapping[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for col in _indexes(engine):
        for rid, meta in col.metadata_of(ids).items():
            out.setdefault(rid, meta)
    wanted = set(ids)
    for doc_id, meta in queued.items():
        if doc_id in wanted:
            out.setdefault(doc_id, meta)
    return out


def _stored_by_path(
    engine: HybridEngine, paths: Sequence[str], queued: Mapping[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for col in _indexes(engine):
        for start in range(0, len(paths), _PATHS_PER_QUERY):
            part = list(paths[start : start + _PATHS_PER_QUERY])
            out.update(col.metadata({"path": {"$in": part}}))
    wanted = set(paths)
    for doc_id, meta in queued.items():
        if meta.get("path") in wanted:
            out.setdefault(doc_id, meta)
    return out


def _base(doc_id: str) -> str:
    """A chunked document's id without its chunk number: ``hr/faq.md`` for ``hr/faq.md#3``."""
    return doc_id.rpartition("#")[0] or doc_id


def _renamed(stored_id: str, meta: Mapping[str, Any], ours: Document) -> bool:
    """Is a stored record of the file ``ours`` came from named otherwise than this run names it?"""
    if isinstance(meta.get("chunk"), int) and isinstance(ours.metadata.get("chunk"), int):
        return _base(stored_id) != _base(ours.id)  # a chunk of the same naming is a stale one
    # A corpus record: its id is the corpus's own, so only a prefix renames it.
    return (_text(meta, PREFIX_KEY) or "") != (_text(ours.metadata, PREFIX_KEY) or "")


def find_conflicts(
    engine: HybridEngine, docs: Sequence[Document], queued: Mapping[str, dict[str, Any]] | None = None
) -> tuple[list[Conflict], list[Conflict]]:
    """``(collisions, duplicates)`` between ``docs`` (tagged with ``path``/``origin``) and the
    collection's stored records (``queued``: the outbox's rows, read here when not given). Reads
    metadata only."""
    ids = [d.id for d in docs]
    if not ids:
        return [], []
    if queued is None:
        queued = engine.outbox.queued(engine.name)
    collisions: list[Conflict] = []
    stored = _stored_by_id(engine, ids, queued)
    for d in docs:
        meta = stored.get(d.id)
        path, origin = str(d.metadata.get("path", "")), str(d.metadata.get("origin", ""))
        if meta is not None and _text(meta, "path") != path:
            collisions.append(Conflict(d.id, path, origin, d.id, _text(meta, "path"), _text(meta, "origin")))
    by_path: dict[str, Document] = {}
    for d in docs:
        by_path.setdefault(str(d.metadata.get("path", "")), d)
    # A file already stored under this run's naming is stored under no other: every write since this
    # check came in ran it. So only files new to the collection (or to this naming) are looked up, and
    # re-indexing an unchanged folder costs one read by id.
    for d in docs:
        meta = stored.get(d.id)
        if meta is not None and _text(meta, "path") == d.metadata.get("path"):
            by_path.pop(str(d.metadata.get("path", "")), None)
    wanted = set(ids)
    duplicates: list[Conflict] = []
    for sid, meta in sorted(_stored_by_path(engine, sorted(by_path), queued).items()):
        ours = by_path.get(_text(meta, "path") or "")
        if ours is not None and sid not in wanted and _renamed(sid, meta, ours):
            path, origin = str(ours.metadata["path"]), str(ours.metadata.get("origin", ""))
            duplicates.append(
                Conflict(ours.id, path, origin, sid, path, _text(meta, "origin"), _text(meta, PREFIX_KEY))
            )
    return collisions, duplicates


def _listing(rows: Sequence[str]) -> str:
    more = f"\n  ... and {len(rows) - _SHOWN} more" if len(rows) > _SHOWN else ""
    return "\n".join(f"  {r}" for r in rows[:_SHOWN]) + more


def _origins(values: Iterable[str | None]) -> list[str]:
    return sorted({v or "(no source path)" for v in values})


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def collision_message(collection: str, found: Sequence[Conflict], prefix_hint: str) -> str:
    rows = [
        f"{c.id}: stored from {c.stored_path or '(no source path: ingested through the library or the service)'}"
        + (f" (indexed from {c.stored_origin})" if c.stored_origin else "")
        + f"; now from {c.path}"
        for c in found
    ]
    theirs, ours = _origins(c.stored_origin for c in found), _origins(c.origin for c in found)
    stored = [c.stored_origin for c in found if c.stored_origin]
    both = os.path.commonpath([*ours, *stored]) if stored and all(o.startswith(os.sep) for o in ours) else ""
    parent = (
        f" (`edgeroute delete --source {stored[0]}`, then `edgeroute index {both}`)"
        if both and both not in ours and both != os.sep
        else ""
    )
    return (
        f"{len(found)} document id(s) in collection {collection!r} are already taken by other files; "
        f"indexing {', '.join(ours)} would replace the documents indexed from {', '.join(theirs)}, so "
        f"nothing was written:\n{_listing(rows)}\n"
        f"To keep both, give this PATH's ids a prefix (`--id-prefix {prefix_hint}`: ids become "
        f"{prefix_hint}/<id>), index the folder that holds both instead{parent}, or use another "
        f"--collection. To replace them, delete them first (`edgeroute delete {found[0].id} ...`"
        + (f", or `edgeroute delete --source {stored[0]}` for all of that folder" if stored else "")
        + ")."
    )


def duplicate_message(collection: str, found: Sequence[Conflict]) -> str:
    rows = [
        f"{c.path}: stored as {c.stored_id}"
        + (f" (indexed from {c.stored_origin})" if c.stored_origin else "")
        + f"; now as {c.id}"
        for c in found
    ]
    ours = _origins(c.origin for c in found)
    theirs = _origins(c.stored_origin for c in found)
    covering = [t for t in theirs if any(_inside(o, t) for o in ours)]  # stored from a folder above
    again = (
        f"Re-index {', '.join(covering)} instead, which holds them already, or remove"
        if covering
        else "Remove"
    )
    # The earlier copies only: from a folder inside this PATH, that folder; else this PATH's files.
    target = sorted(
        {
            c.stored_origin if c.stored_origin and _inside(c.stored_origin, c.origin) else c.origin
            for c in found
        }
    )
    # Stored as <prefix>/<our id>: the same naming under a prefix, which this run can take too.
    prefixes = sorted({p for c in found if (p := c.stored_prefix) and c.stored_id == f"{p}/{c.id}"})
    if prefixes:
        again = f"Index them with `--id-prefix {prefixes[0]}` as before, or remove"
    files = len({c.path for c in found})
    return (
        f"{files} file(s) that indexing {', '.join(ours)} would write are already stored in collection "
        f"{collection!r} under other ids ({len(found)} stored document(s), indexed from "
        f"{', '.join(theirs)}), so nothing was written:\n{_listing(rows)}\n"
        f"{again} the earlier copies first (`edgeroute delete --source {target[0]}`"
        + (", and so on for each PATH" if len(target) > 1 else "")
        + ") to index them from here."
    )


def within_run_message(clashes: Mapping[str, Sequence[str]]) -> str:
    rows = [f"{doc_id}: from {' and '.join(paths)}" for doc_id, paths in sorted(clashes.items())]
    return (
        f"{len(rows)} document id(s) would come from two files in this one run, so nothing was written:\n"
        f"{_listing(rows)}\n"
        "Index the folder that holds them both instead, or index each PATH in its own run with its own "
        "--id-prefix."
    )


def check_run(docs: Sequence[Document]) -> None:
    """:class:`InputError` when one run would give two files one id (two PATHs with files of the same names)."""
    seen: dict[str, str] = {}
    clashes: dict[str, list[str]] = {}
    for d in docs:
        path = str(d.metadata.get("path", ""))
        first = seen.setdefault(d.id, path)
        if first != path:
            clashes.setdefault(d.id, [first]).append(path)
    if clashes:
        raise InputError(within_run_message(clashes))
    # Overlapping PATHs in one run (`index docs docs/hr`): one file under two namings.
    names: dict[str, set[str]] = {}
    for d in docs:
        if isinstance(d.metadata.get("chunk"), int):
            names.setdefault(str(d.metadata.get("path", "")), set()).add(_base(d.id))
    twice = {path: sorted(bases) for path, bases in sorted(names.items()) if len(bases) > 1}
    if twice:
        rows = [f"{path}: as {' and '.join(f'{b}#...' for b in bases)}" for path, bases in twice.items()]
        raise InputError(
            f"{len(rows)} file(s) would be stored twice, under two ids each, by overlapping PATHs in this "
            f"one run, so nothing was written:\n{_listing(rows)}\nGive only the outer folder."
        )


def check_conflicts(
    engine: HybridEngine,
    docs: Sequence[Document],
    prefix_hint: str,
    queued: Mapping[str, dict[str, Any]] | None = None,
) -> None:
    """:class:`InputError` (exit 2) naming the collisions, else the duplicates, before anything is written."""
    check_run(docs)
    collisions, duplicates = find_conflicts(engine, docs, queued)
    if collisions:
        raise InputError(collision_message(engine.name, collisions, prefix_hint))
    if duplicates:
        raise InputError(duplicate_message(engine.name, duplicates))


__all__ = [
    "PREFIX_KEY",
    "Conflict",
    "check_conflicts",
    "check_prefix",
    "check_run",
    "find_conflicts",
    "recorded_prefix",
    "resolve_prefix",
    "with_prefix",
]
