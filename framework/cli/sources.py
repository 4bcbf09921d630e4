"""What the CLI hands the engine: documents loaded from paths, tagged with where they came from,
and the collections a store holds.

Each document gets two metadata keys: ``path`` (the absolute path of its file) and ``origin`` (the
absolute path given on the command line). ``edgeroute delete --source P`` matches ``path``; pruning
after ``edgeroute index P`` matches ``origin``, so re-indexing one folder never touches another's
documents (see :mod:`edgeroute.framework.router.lifecycle`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..documents import Document
from ..errors import CollectionNotFoundError
from ..router.lifecycle import source_key
from ..settings import RouterSettings
from ..store.loaders import LoadProblem, load_paths
from .progress import ProgressFn


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


__all__ = ["Loaded", "collection_given", "collections_in", "load_sources", "require_collection"]
