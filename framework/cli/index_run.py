"""The body of ``edgeroute index``, shared by the command and by
:func:`edgeroute.framework.distributed.index_with_ray`.

Load the paths, claim their ids (the collision and duplicate checks), ingest, take media that may go
nowhere out of the cloud index, and prune what each PATH no longer holds: the same steps, in the same
engine session, whoever runs the model passes (this process, or a Ray actor pool through ``passes``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..documents import Document
from ..errors import InputError, RoutingError
from ..settings import RouterSettings, build_engine, load_policy
from . import index_record
from .progress import ProgressFn
from .sources import Loaded

if TYPE_CHECKING:
    from ..router.engine import HybridEngine
    from ..router.passes import PassRunner
    from ..router.reports import IngestReport
    from ..store.lock import WriterLock

PassesFactory = Callable[["HybridEngine"], "PassRunner"]
"""Builds the runner of the model passes for the engine of the run (None: this process runs them)."""


@dataclass
class IndexOutcome:
    """What one index run did: the loaded sources, the ingest report, the media placed nowhere, how many
    records pruning removed, inputs the model truncated, seconds waited for the store's writer lock."""

    loaded: Loaded
    report: IngestReport | None
    not_indexable: list[Document] = field(default_factory=list)
    pruned: int = 0
    truncated: int = 0
    waited_s: float = 0.0

    @property
    def queued(self) -> int:
        return self.report.queued - self.report.cloud.in_flight if self.report is not None else 0

    @property
    def failed(self) -> int:
        return self.report.cloud.failed if self.report is not None else 0

    def to_dict(self, settings: RouterSettings) -> dict[str, Any]:
        return {
            "collection": settings.collection,
            "store": str(settings.store),
            **(self.report.to_dict() if self.report is not None else {}),
            "pruned": self.pruned,
            "skipped": [p.to_dict() for p in self.loaded.bad],
            "empty": [p.path for p in self.loaded.empty],
            "not_indexable": [d.id for d in self.not_indexable],
            "truncated_inputs": self.truncated,
            "lock_wait_s": round(self.waited_s, 3),
        }


def run_index(
    settings: RouterSettings,
    paths: Sequence[Path],
    sensitivity: str,
    *,
    prune: bool = True,
    skip_bad: bool = False,
    id_prefix: str | None = None,
    progress: ProgressFn,
    passes: PassesFactory | None = None,
) -> IndexOutcome:
    """Index ``paths`` as ``edgeroute index`` does (``sensitivity`` and ``id_prefix`` checked already)."""
    from ...policies.pii import detect_pii
    from ..router.placement import cloud_allowed, pii_text
    from .sources import load_sources

    loaded = load_sources(paths, sensitivity, progress)
    if loaded.bad and not skip_bad:
        listing = "\n".join(f"  {p.path}: {p.reason}" for p in loaded.bad)
        raise InputError(
            f"{len(loaded.bad)} file(s) cannot be indexed, so nothing was written:\n{listing}\n"
            "fix or remove them, or pass --skip-bad to index the rest and list these"
        )
    docs: list[Document] = []
    not_indexable: list[Document] = []
    policy_config = load_policy(settings)
    for doc in loaded.docs:
        if doc.text.strip():
            docs.append(doc)
            continue
        # Media only: the edge model reads text, so the cloud index is its one place.
        try:
            # Media only: its title is its one text, checked by the pattern layer (no model here).
            found = [detect_pii(pii_text(doc), policy_config)]
            allowed = cloud_allowed([doc], policy_config, found)[0]
        except RoutingError:
            allowed = False
        (docs if allowed else not_indexable).append(doc)
    if not docs and not not_indexable:
        raise InputError(
            f"no documents found in {', '.join(map(str, paths))}: give .txt, .md, .png, .jpg, .pdf "
            "or corpus.jsonl files"
        )
    held = _hold_store(settings)
    try:
        key = None
        if held is not None:
            key = index_record.run_key(
                settings, paths, sensitivity=sensitivity, prune=prune, skip_bad=skip_bad, id_prefix=id_prefix
            )
        # A run that skips unreadable files is never answered from a record, nor recorded.
        digest = index_record.docs_digest(loaded) if key is not None and not loaded.bad else None
        last = index_record.recorded(settings, key) if key is not None else None
        if digest is not None and last is not None and last.docs == digest:
            fast = _unchanged(settings, last, loaded, not_indexable)
            if fast is not None:
                fast.waited_s = held.waited_s if held is not None else 0.0
                return fast
        if key is not None:
            index_record.forget(settings, key)  # before anything is written
        # The model loads beside the store's opening when some text is new to the collection and this
        # process runs the passes; a run with nothing to embed (a relabelled folder, or one another
        # writer touched) loads none, nor does the driver of a Ray pool.
        known = index_record.known_hashes(settings) if passes is None else set()
        prefetch = passes is None and any(d.text.strip() and d.content_hash() not in known for d in docs)
        out = _run(
            settings, loaded, docs, not_indexable, id_prefix, prune, progress, passes, prefetch=prefetch
        )
        if held is not None:
            out.waited_s = held.waited_s
        if key is not None and digest is not None and out.report is not None:
            # The store is closed, the lock still ours: what it holds now is what this run left.
            state = index_record.store_state(settings)
            if state is not None:
                edge = sum(1 for d in docs if d.text.strip())
                index_record.remember(
                    settings,
                    key,
                    index_record.RunRecord(
                        digest,
                        state[0],
                        out.report.documents,
                        edge,
                        out.report.private,
                        [d.id for d in out.not_indexable],
                    ),
                )
        return out
    finally:
        if held is not None:
            held.release()


def _hold_store(settings: RouterSettings) -> WriterLock | None:
    """The embedded store's writer lock for the whole run (None: a Chroma server, or a path that is
    not a directory, which opening the store reports)."""
    from ..store.chroma import hold_writer_lock

    if settings.chroma_url or (settings.store.exists() and not settings.store.is_dir()):
        return None
    return hold_writer_lock(settings.store, timeout_s=settings.lock_timeout_s)


def _unchanged(
    settings: RouterSettings,
    last: index_record.RunRecord,
    loaded: Loaded,
    not_indexable: list[Document],
) -> IndexOutcome | None:
    """The outcome of re-running on a store the last run of the same inputs left as it is, or None."""
    from ..router.reports import IngestReport, SyncReport

    state = index_record.store_state(settings)
    if state is None or state[0] != last.state or len(last.not_indexable) != len(not_indexable):
        return None
    depth = state[1]
    cloud = "absent" if not settings.cloud_configured else "offline"
    report = IngestReport(
        documents=last.documents,
        edge_written=0,
        edge_unchanged=last.edge_documents,
        private=last.private,
        cloud=SyncReport(remaining=depth, error=f"cloud is {cloud}"),
        queued=depth,
    )
    placed = [dataclasses.replace(d, id=i) for d, i in zip(not_indexable, last.not_indexable, strict=True)]
    return IndexOutcome(loaded, report, placed)


def _run(
    settings: RouterSettings,
    loaded: Loaded,
    docs: list[Document],
    not_indexable: list[Document],
    id_prefix: str | None,
    prune: bool,
    progress: ProgressFn,
    passes: PassesFactory | None,
    *,
    prefetch: bool,
) -> IndexOutcome:
    """The run in full: claim the ids, ingest, place the media, prune."""
    from .sources import claim_ids

    out = IndexOutcome(loaded, None)
    with build_engine(settings, prefetch=prefetch) as engine:
        lock = engine.store.writer_lock
        out.waited_s = lock.waited_s if lock is not None else 0.0
        # In the session that writes: checked and written under one hold of the store.
        docs, not_indexable = claim_ids(engine, loaded, [docs, not_indexable], id_prefix)
        out.not_indexable = not_indexable
        if docs:
            runner = passes(engine) if passes is not None else None
            out.report = engine.ingest(docs, progress=progress, passes=runner)
        if not_indexable:
            # Placed nowhere now (private media): an earlier copy in the cloud index must go too.
            engine.delete([d.id for d in not_indexable])
        if prune:
            protect = loaded.protected_paths()
            for origin, ids in loaded.origins.items():
                out.pruned += engine.prune(origin, ids, protect=protect).matched
        # Chunks are sized well under the model's limit, so this is rare; when it happens it is reported.
        out.truncated = int(getattr(engine.edge, "truncated_count", 0))
    return out


__all__ = ["IndexOutcome", "PassesFactory", "run_index"]
