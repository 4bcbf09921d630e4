"""The body of ``edgeroute index``, shared by the command and by
:func:`edgeroute.framework.distributed.index_with_ray`.

Load the paths, claim their ids (the collision and duplicate checks), ingest, take media that may go
nowhere out of the cloud index, and prune what each PATH no longer holds: the same steps, in the same
engine session, whoever runs the model passes (this process, or a Ray actor pool through ``passes``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..documents import Document
from ..errors import InputError, RoutingError
from ..settings import RouterSettings, build_engine, load_policy
from .progress import ProgressFn
from .sources import Loaded

if TYPE_CHECKING:
    from ..router.engine import HybridEngine
    from ..router.passes import PassRunner
    from ..router.reports import IngestReport

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
    from .sources import claim_ids, load_sources

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
    out = IndexOutcome(loaded, None)
    with build_engine(settings) as engine:
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
