"""Drain a large outbox backlog through Gemini's Batch API: submit jobs, poll them, write results as they end.

Half the interactive price and the Batch API's own, higher limits (:mod:`edgeroute.framework.cloud.batch`),
for a backlog that can wait (Gemini's target turnaround is 24 h). One *round*:

1. **Resume.** (Each round also takes a first look at the jobs it submitted, after step 3.) Take the poll lease of every recorded job of the collection that no live drainer polls
   (:mod:`.outbox_jobs`), and poll each once. A job recorded without a name (its drainer died while
   the create was in flight) is looked up by its display name; found, it is polled; not found, its
   rows go back to the queue (nothing was embedded, no attempt is charged).
2. **Results.** A job that succeeded has its vectors written to the cloud index in chunks, each chunk
   stored before its rows leave the outbox (as the interactive drain does), so a drainer killed
   halfway re-writes nothing it completed and loses nothing; rows changed or deleted since the
   submit are released or taken back out. An input the service refused (a per-item 400) is charged a
   permanent attempt (a dead letter after ``max_attempts``); another per-item error, a transient one.
   Then the job is deleted at the service and its record dropped. A job that failed, expired or was
   cancelled returns its rows to the queue with a transient attempt (backoff, never a dead letter),
   and this drain does not resubmit them.
3. **Submit.** While fewer than ``max_jobs`` jobs are open: claim up to ``job_size`` rows, run the
   same screen as the interactive drain (**P**: placed again from stored findings and checked
   against the guard; a private row is discarded, never put in a job), record the job and hand the
   rows' leases to it (one transaction), then create it. The guard runs again inside the client on
   the final parts. A create refused as unsupported (404, or a 400 for the request) falls back to the
   interactive drain for the rest of this run; a rate limit or server error returns the rows with a
   transient attempt; a create whose answer was lost stays recorded, to be found by name next round.

:func:`batch_drain` runs rounds on one engine until no job is open (``wait``) or runs one round.
The CLI runs rounds itself, reopening the store between them, so an embedded store's writer lock is
held only while a round writes.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..aio import to_thread
from ..cloud.batch import BATCH_PRICES, BatchEmbedder, BatchStatus, supports_batch
from ..cloud.media import estimate_part_tokens
from ..documents import Document
from ..errors import (
    CloudAuthError,
    CloudError,
    CloudRejectedError,
    InputError,
    PrivacyViolationError,
    StoreError,
)
from ..parts import Part
from ..store.chroma import Collection
from .audit import CloudCallRecord
from .cloud_calls import elapsed_ms
from .drain import _settle, check_drain, drain, screen
from .outbox import DEFAULT_LEASE_S, Claim, OutboxItem, new_owner_id
from .outbox_jobs import BatchJobs, JobRecord
from .placement import cloud_parts, write_index
from .reports import BatchSyncReport, ProgressFn, SyncReport

if TYPE_CHECKING:
    from .engine import HybridEngine

DEFAULT_JOB_SIZE = 1000
"""Documents per job: about 1.5 MB inline for 300-token texts, far under the 20 MB inline limit, and
small enough that a failed or expired job costs little to redo."""
DEFAULT_MAX_JOBS = 4
"""Jobs one drainer keeps open (Gemini allows 100 concurrent batch jobs per project)."""
DEFAULT_POLL_S = 30.0
_NOT_SENT = frozenset({"OFFLINE", "CIRCUIT_OPEN"})  # refused by the client itself: no job can exist
FIND_GRACE_S = 120.0
"""How long a create whose answer was lost may still turn into a job (the service may finish it late):
only past this age does a lookup that finds nothing return the rows, so a late job is not doubled."""
WRITE_CHUNK = 256
"""Results stored per write, each chunk completed in the outbox before the next (a kill loses at most one)."""


@dataclass
class _Tally:
    written: int = 0
    unchanged: int = 0
    refused: int = 0
    failed: int = 0
    submitted_docs: int = 0
    jobs_submitted: int = 0
    jobs_resumed: int = 0
    jobs_done: int = 0
    jobs_failed: int = 0
    polls: int = 0
    error: str | None = None
    fallback: str | None = None
    again: bool = False  # rows came back this round (a create that made no job): run another round


def check_batch(job_size: int, max_jobs: int, poll_interval_s: float) -> None:
    if isinstance(job_size, bool) or not isinstance(job_size, int) or job_size < 1:
        raise InputError(f"job_size must be a positive integer, got {job_size!r}")
    if isinstance(max_jobs, bool) or not isinstance(max_jobs, int) or not 1 <= max_jobs <= 100:
        raise InputError(
            f"max_jobs must be 1-100 (Gemini allows 100 concurrent batch jobs), got {max_jobs!r}"
        )
    if not poll_interval_s >= 0:
        raise InputError(f"poll_interval_s must be >= 0 seconds, got {poll_interval_s!r}")


async def batch_drain(
    engine: HybridEngine,
    limit: int | None = None,
    *,
    job_size: int = DEFAULT_JOB_SIZE,
    max_jobs: int = DEFAULT_MAX_JOBS,
    poll_interval_s: float = DEFAULT_POLL_S,
    wait: bool = True,
    timeout_s: float | None = None,
    owner: str | None = None,
    tried: set[str] | None = None,
    progress: ProgressFn | None = None,
) -> BatchSyncReport:
    """Drain the collection's outbox through the Batch API (see the module docstring); at most ``limit``
    documents submitted (0: only poll the recorded jobs). ``wait``: poll until no job is open (or ``timeout_s`` passed); else one round.
    ``owner`` names this drainer across rounds (default: a new id); a caller that passes one keeps the
    poll leases between calls and gives them back itself (``BatchJobs(outbox).release_polls(owner)``),
    and may pass ``tried``, the ids this drain already failed (updated in place), so that rows of a job
    that failed are not resubmitted by a later round of the same run."""
    # limit=0 polls the recorded jobs and submits nothing (a caller's last rounds after its limit).
    check_drain(engine, None if limit == 0 and not isinstance(limit, bool) else limit, 1)
    check_batch(job_size, max_jobs, poll_interval_s)
    assert engine.cloud is not None
    cloud = engine.cloud
    if not supports_batch(cloud.model):
        note = f"{cloud.model} has no Batch API on the Gemini API; the documents were sent interactively"
        return _fallen_back(await drain(engine, limit, progress=progress), _Tally(fallback=note))
    batch = BatchEmbedder(cloud)
    jobs = BatchJobs(engine.outbox)
    poller = owner or new_owner_id()
    tally = _Tally()
    tried = tried if tried is not None else set()
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    total = await to_thread(engine.outbox.depth, engine.name)
    try:
        while True:
            await _round(engine, batch, jobs, poller, tally, tried, limit, job_size, max_jobs)
            if progress is not None:
                progress("batch", tally.written + tally.unchanged, total or None)
            open_jobs = await to_thread(jobs.open_count, engine.name)
            again, tally.again = tally.again, False
            if not wait or tally.fallback is not None or (open_jobs == 0 and not again):
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            await asyncio.sleep(poll_interval_s)
    finally:
        if owner is None:
            await to_thread(jobs.release_polls, poller)
        await to_thread(engine.outbox.release, poller)  # short leases of a submit cut short
    if tally.fallback is not None:
        left = None if limit is None else max(0, limit - tally.submitted_docs)
        if left != 0:
            return _fallen_back(await drain(engine, left, progress=progress), tally)
    return await _report(engine, jobs, tally)


async def _round(
    engine: HybridEngine,
    batch: BatchEmbedder,
    jobs: BatchJobs,
    poller: str,
    tally: _Tally,
    tried: set[str],
    limit: int | None,
    job_size: int,
    max_jobs: int,
) -> None:
    held = await to_thread(jobs.claim_jobs, engine.name, poller)
    for job, adopted in held:
        tally.jobs_resumed += adopted
        if not await _poll_safely(engine, batch, jobs, job, tally, tried):
            return
    submitted: list[str] = []
    while tally.fallback is None and (limit is None or tally.submitted_docs < limit):
        if await to_thread(jobs.open_count, engine.name) >= max_jobs:
            break
        take = job_size if limit is None else min(job_size, limit - tally.submitted_docs)
        if not await _submit(engine, batch, jobs, poller, tally, tried, take, submitted):
            break
    if submitted:  # a first look at the new jobs (and a lost create answer is looked up at once)
        for job, _adopted in await to_thread(jobs.claim_jobs, engine.name, poller):
            if job.token in submitted and not await _poll_safely(engine, batch, jobs, job, tally, tried):
                return


async def _poll_safely(
    engine: HybridEngine,
    batch: BatchEmbedder,
    jobs: BatchJobs,
    job: JobRecord,
    tally: _Tally,
    tried: set[str],
) -> bool:
    """Poll one job; False when the service is failing (the job is kept, polled next round)."""
    try:
        await _poll(engine, batch, jobs, job, tally, tried)
    except CloudError as exc:
        tally.error = f"{type(exc).__name__}: {exc}"
        return False
    return True


async def _submit(
    engine: HybridEngine,
    batch: BatchEmbedder,
    jobs: BatchJobs,
    poller: str,
    tally: _Tally,
    tried: set[str],
    take: int,
    submitted: list[str],
) -> bool:
    """Claim, screen and submit one job (its token added to ``submitted``); False when there is nothing
    (more) to submit this round."""
    outbox, name = engine.outbox, engine.name
    # Held while the rows are screened (a re-detection of a long row can take seconds): longer for more rows.
    lease_s = DEFAULT_LEASE_S + 0.5 * take
    claim = await to_thread(outbox.claim, name, take, owner=poller, lease_s=lease_s, skip=tried)
    if not claim:
        return False
    tally.submitted_docs += len(claim.items)
    col = await engine.aopen_index("cloud", create=False)
    checked = await screen(engine, claim, col)
    tally.failed += len(checked.invalid)
    tally.refused += checked.refused
    tried |= checked.invalid
    if checked.error is not None:
        tally.error = checked.error
    fresh_ids = {it.document.id for it in checked.fresh}
    unchanged = [it for it in checked.keep if it.document.id not in fresh_ids]
    if unchanged:  # already stored in this version: done without a call
        done = await to_thread(outbox.complete, claim, [(i.document.id, i.content_hash) for i in unchanged])
        await _settle(outbox, claim, col, done.vanished)
        tally.unchanged += len(unchanged)
    items = checked.fresh
    if not items:
        await to_thread(outbox.release, poller)
        return True
    docs = [it.document for it in items]
    try:
        contents, dims = batch.prepare(
            [_inputs(d) for d in docs], [_title(d) for d in docs], engine.cloud_dims
        )
    except (InputError, PrivacyViolationError) as exc:  # the screen should have caught it: send nothing
        tally.error = f"{type(exc).__name__}: {exc}"
        await to_thread(outbox.release, poller)
        tried |= {d.id for d in docs}
        return False
    token = f"edgeroute-{name}-{os.urandom(6).hex()}"
    try:
        job_claim = await to_thread(jobs.record, claim, token, items, dims, poller)
    except StoreError as exc:  # a row's lease ran out and another drainer took it: nothing is submitted
        tally.error = str(exc)
        await to_thread(outbox.release, poller)
        return False
    submitted.append(token)
    await to_thread(outbox.release, poller)  # anything of the claim not in the job
    t0 = time.perf_counter()
    try:
        job_name = await batch.asubmit(contents, dims, token)
    except CloudError as exc:
        _audit(engine, docs, t0, exc)
        tally.error = f"{type(exc).__name__}: {exc}"
        if exc.status_code is None and exc.status not in _NOT_SENT:
            # No answer (timeout, dropped connection): a job may exist; the next round looks it up.
            return False
        await to_thread(jobs.forget, token)  # the service answered: no job was made
        ids = [d.id for d in docs]
        if isinstance(exc, CloudRejectedError) and not isinstance(exc, CloudAuthError):
            tally.fallback = (
                f"the Batch API refused the job for {batch.cloud.model} ({exc.status_code} {exc.status}); "
                "the documents were sent interactively"
            )
        elif exc.status_code is not None:
            await to_thread(outbox.fail, job_claim, ids, tally.error, "transient")
            tried |= set(ids)
        return False
    _audit(engine, docs, t0, None)
    await to_thread(jobs.submitted, token, job_name)
    tally.jobs_submitted += 1
    return True


async def _poll(
    engine: HybridEngine,
    batch: BatchEmbedder,
    jobs: BatchJobs,
    job: JobRecord,
    tally: _Tally,
    tried: set[str],
) -> None:
    """Poll one job once and act on what it says."""
    name = job.job_name
    if name is None:
        name = await batch.afind(job.token)
        if name is None:
            if time.time() - job.created_at >= FIND_GRACE_S:
                # The create never made a job: the rows go back as they were, for the next round.
                await to_thread(jobs.forget, job.token)
                tally.again = True
            return
        await to_thread(jobs.submitted, job.token, name)
    status = await batch.apoll(name, job.dims)
    tally.polls += 1
    await to_thread(jobs.polled, job.token, status.state)
    if not status.ended:
        return
    claim, by_pos, changed = await to_thread(jobs.claim_of, job)
    if not claim.items:  # every row already settled (a drainer died after its last write): clean up only
        await batch.adelete(name)
        await to_thread(jobs.forget, job.token)
        return
    if changed:  # re-queued with another text since the submit: its result is stale, the next job sends it
        await to_thread(engine.outbox.release, claim.owner, sorted(changed))
        by_pos = {pos: it for pos, it in by_pos.items() if it.document.id not in changed}
        claim = Claim(claim.owner, list(by_pos.values()), claim.claimed_at, claim.expires_at)
    if status.state == "succeeded":
        await _write_results(engine, batch, claim, by_pos, status, tally)
        tally.jobs_done += 1
    else:
        ids = [it.document.id for it in claim.items if not it.deleted]
        error = f"Batch API job {name} ended {status.state}"
        tally.error = error
        await to_thread(engine.outbox.fail, claim, ids, error, "transient")
        await _settle(engine.outbox, claim, None, [it.document.id for it in claim.items if it.deleted])
        tally.failed += len(ids)
        tally.jobs_failed += 1
        tried |= set(ids)
    await batch.adelete(name)  # its results (or its failure) are handled: nothing to keep at the service
    await to_thread(jobs.forget, job.token)


async def _write_results(
    engine: HybridEngine,
    batch: BatchEmbedder,
    claim: Claim,
    by_pos: dict[int, OutboxItem],
    status: BatchStatus,
    tally: _Tally,
) -> None:
    outbox = engine.outbox
    col: Collection | None = await engine.aopen_index("cloud", create=False)
    row_of = {pos: i for i, pos in enumerate(status.ok)}
    ready: list[tuple[OutboxItem, int]] = []
    for pos, item in sorted(by_pos.items()):
        if item.deleted:
            continue
        if pos in row_of:
            ready.append((item, row_of[pos]))
            continue
        code, message = status.item_errors.get(pos, (0, "no result for this input"))
        error = f"Batch API refused the input ({code}): {message}"
        tally.error = error
        await to_thread(
            outbox.fail, claim, [item.document.id], error, "permanent" if code == 400 else "transient"
        )
        tally.failed += 1
    deleted = [it.document.id for it in by_pos.values() if it.deleted]
    await _settle(outbox, claim, col, deleted)
    for start in range(0, len(ready), WRITE_CHUNK):
        chunk = ready[start : start + WRITE_CHUNK]
        docs = [it.document for it, _ in chunk]
        if col is None:
            col = await engine.aopen_index("cloud", create=True)
            assert col is not None
        await write_index(col, docs, status.vectors[[row for _, row in chunk]], col.space)
        batch.record_usage([_inputs(d) for d in docs], [_title(d) for d in docs])
        # Stored first, then the rows go: a kill between the two re-writes the same vectors, no more.
        done = await to_thread(outbox.complete, claim, [(it.document.id, it.content_hash) for it, _ in chunk])
        await _settle(outbox, claim, col, done.vanished)
        tally.written += done.done


def _inputs(doc: Document) -> list[Part]:
    """The document's one cloud input, as the interactive path sends it (its text alone for a text
    document; the title goes in the task prefix)."""
    return [Part.text(doc.text)] if not doc.is_multimodal else cloud_parts(doc)


def _title(doc: Document) -> str | None:
    """The title the interactive path puts in a document's task prefix (none for a multimodal one)."""
    return doc.title if not doc.is_multimodal else None


def _audit(engine: HybridEngine, docs: Sequence[Document], t0: float, exc: CloudError | None) -> None:
    """One ``cloud_call`` record per job submitted (purpose ``index_batch``): what left the device and its
    estimated cost at batch prices (the results arrive later, for no further bytes sent)."""
    parts = [p for d in docs for p in _inputs(d)]
    by_modality: dict[str, int] = {}
    nbytes = 0
    for p in parts:
        by_modality[p.modality] = by_modality.get(p.modality, 0) + estimate_part_tokens(p)
        nbytes += len((p.text_value or "").encode()) + len(p.data or b"") + len((p.uri or "").encode())
    tokens = sum(by_modality.values())
    sent = exc is None or exc.status_code is not None
    record: CloudCallRecord = {
        "type": "cloud_call",
        "collection": engine.name,
        "purpose": "index_batch",
        "outcome": "ok" if exc is None else "error",
        "error": None if exc is None else type(exc).__name__,
        "latency_ms": elapsed_ms(t0),
        "items": len(parts),
        "tokens": tokens if sent else 0,
        "bytes": nbytes if sent else 0,
        "cost_usd": round(BATCH_PRICES.cost(by_modality), 10) if exc is None else 0.0,
        "space": engine.cloud_space.fingerprint if engine.cloud_space is not None else "",
    }
    engine.audit.write(record)


async def _report(engine: HybridEngine, jobs: BatchJobs, t: _Tally) -> BatchSyncReport:
    outbox, name = engine.outbox, engine.name
    remaining = await to_thread(outbox.depth, name)
    in_flight = await to_thread(outbox.leased, name)
    dead = await to_thread(outbox.dead_count, name)
    open_jobs = await to_thread(jobs.open_count, name)
    return BatchSyncReport(
        t.written,
        t.unchanged,
        t.refused,
        t.failed,
        remaining,
        t.error,
        in_flight=in_flight,
        dead=dead,
        jobs_submitted=t.jobs_submitted,
        jobs_resumed=t.jobs_resumed,
        jobs_done=t.jobs_done,
        jobs_failed=t.jobs_failed,
        jobs_open=open_jobs,
        polls=t.polls,
        fallback=t.fallback,
        claimed=t.submitted_docs,
    )


def _fallen_back(report: SyncReport, t: _Tally) -> BatchSyncReport:
    """The interactive drain's report, with what the batch rounds did before it added in."""
    return BatchSyncReport(
        report.written + t.written,
        report.unchanged + t.unchanged,
        report.refused + t.refused,
        report.failed + t.failed,
        report.remaining,
        report.error or t.error,
        in_flight=report.in_flight,
        dead=report.dead,
        jobs_submitted=t.jobs_submitted,
        jobs_resumed=t.jobs_resumed,
        jobs_done=t.jobs_done,
        jobs_failed=t.jobs_failed,
        polls=t.polls,
        fallback=t.fallback,
        claimed=t.submitted_docs,
    )


__all__ = [
    "DEFAULT_JOB_SIZE",
    "DEFAULT_MAX_JOBS",
    "DEFAULT_POLL_S",
    "WRITE_CHUNK",
    "batch_drain",
    "check_batch",
]
