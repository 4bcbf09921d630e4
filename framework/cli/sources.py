"""What the CLI hands the engine: documents loaded from paths, tagged with where they came from,
and the collections a store holds.

Each document gets two metadata keys: ``path`` (the absolute path of its file) and ``origin`` (the
absolute path given on the command line), and ``id_prefix`` with ``--id-prefix``. ``edgeroute delete
--source P`` matches ``path``; pruning after ``edgeroute index P`` matches ``origin``, so re-indexing
one folder never touches another's documents (see :mod:`edgeroute.framework.router.lifecycle`).
Before anything is written, :func:`claim_ids` refuses ids stored for other files and files stored
under other ids (see :mod:`edgeroute.framework.router.provenance`).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..documents import Document
from ..errors import CollectionNotFoundError
from ..router.lifecycle import source_key
from ..settings import RouterSettings
from ..store.loaders import LoadProblem, load_paths
from .progress import ProgressFn

if TYPE_CHECKING:
    from ..router.engine import HybridEngine


@dataclass
class Loaded:
    """Documents from the paths given, by origin, and the files that could not be loaded."""

    docs: list[Document] = field(default_factory=list)
    origins: dict[str, set[str]] = field(default_factory=dict)  # origin -> ids loaded from it
    problems: list[LoadProblem] = field(default_factory=list)

    @property
    def bad(self) -> list[LoadProblem]:
        return [p for p in self.problems if p.kind == "error"]

    @property
    def empty(self) -> list[LoadProblem]:
        return [p for p in self.problems if p.kind == "empty"]

    def protected_paths(self) -> set[str]:
        """Files that could not be read this time: their documents from an earlier run are kept."""
        return {source_key(p.path.rsplit(":", 1)[0] if _has_line(p.path) else p.path) for p in self.bad}


def _has_line(path: str) -> bool:
    head, sep, tail = path.rpartition(":")
    return bool(sep) and tail.isdigit() and bool(head)


def load_sources(paths: Sequence[Path], sensitivity: str, progress: ProgressFn) -> Loaded:
    """Load every path (collecting every bad file instead of stopping at the first), tag each document
    with its ``path``, ``origin`` and ``sensitivity``."""
    out = Loaded()
    for n, raw in enumerate(paths, start=1):
        origin = source_key(raw)
        ids = out.origins.setdefault(origin, set())
        is_dir = Path(origin).is_dir()
        for doc in load_paths([raw], problems=out.problems):
            source = str(doc.metadata.get("source", ""))
            path = os.path.join(origin, source) if is_dir and source else origin
            meta = {**doc.metadata, "path": os.path.normpath(path), "origin": origin}
            out.docs.append(dataclasses.replace(doc, metadata=meta, sensitivity=sensitivity))  # type: ignore[arg-type]
            ids.add(doc.id)
        progress("files", n, len(paths))
    return out


def claim_ids(
    engine: HybridEngine, loaded: Loaded, groups: Sequence[list[Document]], id_prefix: str | None
) -> list[list[Document]]:
    """Give each group of documents its ids for this run (the ``--id-prefix`` given, or the one recorded
    for its PATH), then refuse the run (:class:`InputError`, nothing written) if an id is stored for
    another file or a file is stored under another id (:mod:`edgeroute.framework.router.provenance`).
    ``loaded.origins`` is updated to the final ids, for pruning."""
    from ..router.provenance import check_conflicts, resolve_prefix, with_prefix

    queued = engine.outbox.queued(engine.name)  # read once: a long offline spell makes it long
    prefixes = {origin: resolve_prefix(engine, origin, id_prefix, queued) for origin in loaded.origins}
    for origin, prefix in prefixes.items():
        if prefix is not None:
            loaded.origins[origin] = {f"{prefix}/{i}" for i in loaded.origins[origin]}
    out = [[with_prefix(d, prefixes.get(str(d.metadata.get("origin")))) for d in g] for g in groups]
    check_conflicts(engine, [d for g in out for d in g], _prefix_hint(loaded.origins), queued)
    return out


def _prefix_hint(origins: Iterable[str]) -> str:
    """A prefix to suggest: the name of the (first) PATH given, in the characters a prefix allows."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(next(iter(origins), "NAME")).stem).strip("-._")
    return name[:64] or "NAME"


def collections_in(settings: RouterSettings) -> list[str]:
    """Logical collections in the store or with documents queued in its outbox (nothing is created)."""
    from ..router.outbox import Outbox
    from ..settings import open_store

    names: set[str] = set()
    if settings.chroma_url or settings.store.is_dir():
        # A reader: never takes the writer lock, and closed at once so no Chroma state outlives it.
        with open_store(settings, read_only=True) as store:
            names.update(store.logical_collections())
    with Outbox(settings.outbox_path, read_only=True) as outbox:
        names.update(outbox.collections())
    return sorted(names)


def require_collection(settings: RouterSettings, existing: Sequence[str]) -> None:
    """An unknown collection is an error that lists the existing ones (never created by reading it)."""
    if settings.collection not in existing:
        listed = ", ".join(repr(n) for n in existing) if existing else "none yet"
        raise CollectionNotFoundError(
            f"no collection {settings.collection!r} in {settings.store} (existing: {listed}): "
            "check --collection and --store, or index documents into it first"
        )


def collection_given(option: str | None) -> bool:
    """Did the user name a collection (option or $EDGEROUTE_COLLECTION), or is it the default?"""
    return option is not None or bool(os.environ.get("EDGEROUTE_COLLECTION"))


__all__ = ["Loaded", "claim_ids", "collection_given", "collections_in", "load_sources", "require_collection"]
