"""Ingest: every document into the edge index, the cloud-eligible ones through the outbox.

Lengths and placement are checked for all documents before anything is written: a document longer
than the edge model's token limit, or a cloud-bound one over the cloud's, is refused with an error that
names it, never embedded from its first tokens. Documents the policy keeps
private are registered with the privacy guard, removed from the outbox and the cloud index, and
never sent. With the cloud reachable the outbox is drained at once (:mod:`.drain`); otherwise the
documents wait there for ``edgeroute sync``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...policies.sensitivity import above_ceiling
from ..aio import to_thread
from ..documents import Document
from ..pii.patterns import Span
from ..pii.stored import findings_from_json, findings_to_json
from .drain import drain
from .passes import LocalPasses, PassJob, PassRunner
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
    from ...policies.signals import PiiFinding
    from ..pii import PiiDetector
    from ..store.chroma import Collection
    from .engine import HybridEngine

BATCH = 64
EMBED_BATCH = 16
"""Documents embedded, then stored, at a time by an embedder that does not say how it batches (the
:class:`~edgeroute.framework.edge.embedder.EdgeEmbedder` does: then a group is whole model calls)."""


async def ingest(
    engine: HybridEngine,
    documents: Sequence[Document],
    *,
    progress: ProgressFn | None = None,
    passes: PassRunner | None = None,
) -> IngestReport:
    docs = check_documents(documents)
    if engine.cloud is not None and engine.cloud_state() in ("closed", "half_open"):
        engine.cloud.prefetch()  # its client library loads beside the edge passes, not after them
    pii = engine.pii
    run = _Findings(pii.version)
    # Findings stored by an earlier run for the same content and detector version: no model pass.
    stored = await to_thread(
        engine.outbox.stored_findings, engine.name, [(d.id, d.content_hash()) for d in docs], run.version
    )
    # Before any model pass or write: a document longer than a model reads is refused, never cut. A
    # document with stored findings under a version that pins the edge model's files (tokenizer
    # included) passed this check when it was indexed, so only the others are counted: re-indexing an
    # unchanged folder then loads no tokenizer either.
    pinned = getattr(pii, "head", None) is not None and getattr(pii, "embedder", None) is not None
    await to_thread(check_edge_lengths, [d for d in docs if not (pinned and d.id in stored)], engine.edge)
    run.found.update({i: findings_from_json(j) for i, j in stored.items()})
    need = [d for d in docs if d.id not in run.found]
    # The head's findings of a document come with its embedding pass (one pass, under the document
    # prompt). The rest are detected now: documents with no text (their title alone), and every
    # document when the head cannot read document-prompt states (patterns or presidio only, or an
    # older head: then its own query-prompt pass, as before).
    run.later = {d.id for d in need if pii.one_pass and d.text.strip()}
    now = [d for d in need if d.id not in run.later]
    for d, f in zip(now, await pii.adetect_many([pii_text(d) for d in now]) if now else [], strict=True):
        run.add(d.id, f)
    if run.later:
        run.spans = await to_thread(
            lambda: {d.id: pii.patterns(pii_text(d)) for d in need if d.id in run.later}
        )
    # Placed now, before anything is written, with what is known (the patterns' findings for documents
    # whose entities come with their pass): refusals by sensitivity or modality, and the cloud's length
    # limit, raise here. Entities can only add findings, which only keep more documents back, so the
    # length check covers every document that may still go to the cloud.
    early = cloud_allowed(docs, engine.policy, [run.early(pii, d) for d in docs])
    if engine.cloud is not None:
        check_cloud_lengths([d for d, ok in zip(docs, early, strict=True) if ok])
    edge_docs = [d for d in docs if d.text.strip()]
    # From the first write to the last, no delete of this collection runs in between (write_order):
    # the edge index and the outbox end up saying the same thing, whichever ran last.
    async with engine.write_order.hold():
        edge_written, edge_updated, edge_redetected = (
            await _write_edge(engine, edge_docs, run, progress, passes) if edge_docs else (0, 0, 0)
        )
        # Every document's findings exist now: only now is anything queued for the cloud.
        await _store_findings(engine, run, [d for d in docs if d.id in run.unstored])
        found = [run.found[d.id] for d in docs]
        to_cloud = cloud_allowed(docs, engine.policy, found)
        for doc, ok in zip(docs, to_cloud, strict=True):
            if not ok:
                # A confidential document's title is private too; a chunk kept back only for PII in its
                # body shares its title with its siblings, which may still go to the cloud.
                private_title = above_ceiling(doc.sensitivity, engine.policy.cloud_ceiling)
                engine.guard.add_text(doc.text, doc.title if private_title else None)
                for part in doc.parts:
                    engine.guard.add_part(part)
        private_ids = [d.id for d, ok in zip(docs, to_cloud, strict=True) if not ok]
        cloud_docs = [d for d, ok in zip(docs, to_cloud, strict=True) if ok]
        if private_ids:
            # A document that became private must leave the cloud index and never be sent later.
            await to_thread(engine.outbox.discard, engine.name, private_ids)
            cloud_col = await engine.aopen_index("cloud", create=False)
            if cloud_col is not None:
                await to_thread(cloud_col.delete, private_ids)
        rows = {d.id: (run.version, findings_to_json(run.found[d.id])) for d in cloud_docs}
        await to_thread(engine.outbox.enqueue, engine.name, cloud_docs, rows)
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
        edge_redetected=edge_redetected,
        private=len(private_ids),
        cloud=sync,
        queued=sync.remaining,
    )


@dataclass(slots=True)
class _Findings:
    """One ingest's PII findings by id: stored by an earlier run or computed by this one (``unstored``
    until kept), and the ids whose findings come with their embedding pass (``later``)."""

    version: str
    found: dict[str, tuple[PiiFinding, ...]] = field(default_factory=dict)
    unstored: set[str] = field(default_factory=set)
    later: set[str] = field(default_factory=set)
    spans: dict[str, list[Span]] = field(default_factory=dict)

    def add(self, doc_id: str, found: tuple[PiiFinding, ...]) -> None:
        self.found[doc_id] = found
        self.unstored.add(doc_id)
        self.later.discard(doc_id)

    def early(self, pii: PiiDetector, doc: Document) -> tuple[PiiFinding, ...]:
        if doc.id in self.found:
            return self.found[doc.id]
        return pii.pattern_findings(pii_text(doc), self.spans.get(doc.id))


async def _store_findings(engine: HybridEngine, run: _Findings, todo: Sequence[Document]) -> None:
    """Keep this run's findings (content hash and detector version with them) for re-indexing."""
    rows = [(d.id, d.content_hash(), run.version, findings_to_json(run.found[d.id])) for d in todo]
    await to_thread(engine.outbox.store_findings, engine.name, rows)
    run.unstored.difference_update(d.id for d in todo)


def _groups(engine: HybridEngine, docs: list[Document]) -> list[list[Document]]:
    """``docs`` in the groups embedded and stored together: whole model calls where the edge model says
    how it batches (:meth:`EdgeEmbedder.document_batches`), else ``EMBED_BATCH`` at a time."""
    planner = getattr(engine.edge, "document_batches", None)
    if callable(planner) and docs:
        # Whole model calls, merged in order up to EMBED_BATCH documents: the model's batches are small
        # (a token budget of a few hundred; one SciFact abstract each), a store write per call is not.
        # The embedder re-sorts a group by length, so it runs the same calls as it would on its own.
        groups: list[list[Document]] = []
        for idx in planner([d.text for d in docs], [d.title for d in docs]):
            if groups and len(groups[-1]) + len(idx) <= EMBED_BATCH:
                groups[-1].extend(docs[i] for i in idx)
            else:
                groups.append([docs[i] for i in idx])
        return groups
    # Longest first, as the embedder batches anyway: similar lengths share a batch (less padding).
    docs = sorted(docs, key=lambda d: len(d.text), reverse=True)
    return [docs[i : i + EMBED_BATCH] for i in range(0, len(docs), EMBED_BATCH)]


async def _write_edge(
    engine: HybridEngine,
    docs: list[Document],
    run: _Findings,
    progress: ProgressFn | None,
    passes: PassRunner | None,
) -> tuple[int, int, int]:
    """Embed and store the documents whose content changed, and update the stored metadata of those
    whose content did not but whose metadata did (a re-marked sensitivity). Returns (written, updated,
    redetected: unchanged documents given a model pass for their findings alone).

    Vectors are stored group by group (:func:`_groups`), as they are finished, with their findings: a
    run killed midway (kill -9) keeps all but the batches in flight, and the next run embeds and detects
    only what is missing. An unchanged document whose findings are missing (stored by an older release,
    or the detector version changed) gets its pass for the findings; its stored vector is kept. The
    passes run on ``passes`` (:mod:`.passes`; in this process when None), which only computes.
    """
    col = await engine.aopen_index("edge", create=True)
    assert col is not None
    tally = _Tally(total=len(docs), progress=progress)
    runner = passes if passes is not None else LocalPasses(engine)
    async for result in runner.run(_plan(engine, col, docs, run, tally)):
        part = result.job.docs
        if result.findings is not None:
            for d, f in zip(part, result.findings, strict=True):
                if d.id in run.later:
                    run.add(d.id, f)
        if result.job.store:
            await write_index(col, part, result.vectors, engine.edge_space)
            tally.written += len(part)
            tally.advance(len(part))
        await _store_findings(engine, run, [d for d in part if d.id in run.unstored])
    tally.advance(0)
    return tally.written, tally.updated, tally.redetected


@dataclass(slots=True)
class _Tally:
    """Counts of one ingest's edge writes, and the ``"edge"`` progress they make."""

    total: int
    progress: ProgressFn | None
    written: int = 0
    updated: int = 0
    redetected: int = 0
    done: int = 0

    def advance(self, n: int) -> None:
        self.done += n
        if self.progress is not None:
            self.progress("edge", self.done, self.total)


async def _plan(
    engine: HybridEngine, col: Collection, docs: list[Document], run: _Findings, tally: _Tally
) -> AsyncIterator[PassJob]:
    """The model passes ``docs`` need, ``BATCH`` stored records read at a time (relabelling the
    unchanged documents whose metadata changed on the way): the groups of changed documents, then those
    of unchanged documents whose findings are missing."""
    for start in range(0, len(docs), BATCH):
        batch = docs[start : start + BATCH]
        stored = {r.id: r for r in await to_thread(col.get, [d.id for d in batch])}
        fresh, relabel, detect = [], [], []
        for d in batch:
            record = stored.get(d.id)
            if record is None or record.content_hash != d.content_hash():
                fresh.append(d)
            else:
                if record.metadata != index_metadata(d):
                    relabel.append(d)
                if d.id in run.later:
                    detect.append(d)
        if relabel:
            await to_thread(
                col.update_metadata, [d.id for d in relabel], [index_metadata(d) for d in relabel]
            )
            tally.updated += len(relabel)
        tally.advance(len(batch) - len(fresh))
        tally.redetected += len(detect)
        for part in _groups(engine, fresh):
            yield _job(part, True, run)
        for part in _groups(engine, detect):
            yield _job(part, False, run)  # the vector is already stored: only the findings are new


def _job(part: list[Document], store: bool, run: _Findings) -> PassJob:
    wants = any(d.id in run.later for d in part)
    return PassJob(part, store, wants, [run.spans.get(d.id) for d in part] if wants else [None] * len(part))


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
