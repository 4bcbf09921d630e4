"""The outbox's record of Batch API jobs: which rows each job holds, so a restart resumes, never resubmits.

A batch drainer claims rows as any drainer does (:meth:`Outbox.claim`), screens them, then, in ONE
transaction before the create call, writes the job (``batch_jobs``: a token that is also the job's
display name, the dims) and its rows by position with the generation each had (``batch_rows``), and
hands the rows' leases from itself to the job: owner ``batch:TOKEN``, for :data:`BATCH_LEASE_S`. Such
a lease outlives the drainer (its owner is no process, so it is never reclaimed as a dead one's), and
other drainers skip the rows while the job lives. The job's name is stored when the create answers.

A drainer polls a job while it holds its *poll lease* (``poll_owner``/``poll_until``, renewed each
round, reclaimed at once when the holder was a process on this host that is gone). From the job's
rows it builds a :class:`Claim` owned by ``batch:TOKEN`` with the generations stored at submit, so
:meth:`Outbox.complete`, :meth:`Outbox.fail` and :meth:`Outbox.settle` apply exactly as for an
interactive batch: a row changed meanwhile is released, a row deleted meanwhile is taken back out.
Rows already completed (a drainer killed halfway through writing results) are no longer the job's and
are skipped. The record goes only after the job's rows are all settled.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import StoreError
from .outbox import Claim, Outbox, OutboxItem
from .outbox_schema import document_from_json, owner_is_dead

BATCH_LEASE_S = 72 * 3600.0
"""How long a submitted job holds its rows: past the 48 h after which Gemini expires a pending or running
job (UNCONFIRMED), so the rows come back to any drainer only when nobody polled the job to its end."""
POLL_LEASE_S = 600.0
"""How long a drainer holds the polling of a job between rounds (renewed each round)."""
JOB_OWNER_PREFIX = "batch:"


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A submitted (or being submitted) job: ``job_name`` is None until the create answered."""

    token: str
    collection: str
    job_name: str | None
    dims: int
    created_at: float
    polls: int
    last_state: str | None

    @property
    def owner(self) -> str:
        """The lease owner of the job's rows."""
        return JOB_OWNER_PREFIX + self.token


class BatchJobs:
    """Batch job records in an outbox's file (its lock and transactions)."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def record(self, claim: Claim, token: str, items: Sequence[OutboxItem], dims: int, poller: str) -> Claim:
        """Before the create: store the job and its ``items`` by position, move their leases from
        ``claim.owner`` to the job, and give ``poller`` the job's poll lease. Returns the job's claim."""
        ob = self.outbox
        now = time.time()
        owner = JOB_OWNER_PREFIX + token
        collection = items[0].collection
        with ob._transaction():
            ob._exec(
                "INSERT INTO batch_jobs (token, collection, dims, created_at, poll_owner, poll_until) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (token, collection, dims, now, poller, now + POLL_LEASE_S),
            )
            for pos, it in enumerate(items):
                ob._exec(
                    "INSERT INTO batch_rows (token, position, doc_id, content_hash, generation) VALUES (?, ?, ?, ?, ?)",
                    (token, pos, it.document.id, it.content_hash, it.generation),
                )
                moved = ob._exec(
                    "UPDATE outbox SET lease_owner = ?, lease_until = ? "
                    "WHERE collection = ? AND doc_id = ? AND lease_owner = ?",
                    (owner, now + BATCH_LEASE_S, collection, it.document.id, claim.owner),
                ).rowcount
                if moved != 1:  # our short lease ran out and another drainer took the row: do not submit
                    raise StoreError(f"outbox row {it.document.id!r} is no longer held by this drainer")
        return Claim(owner, list(items), now, now + BATCH_LEASE_S)

    def submitted(self, token: str, job_name: str) -> None:
        with self.outbox._lock:
            self.outbox._exec("UPDATE batch_jobs SET job_name = ? WHERE token = ?", (job_name, token))

    def polled(self, token: str, state: str) -> None:
        with self.outbox._lock:
            self.outbox._exec(
                "UPDATE batch_jobs SET polls = polls + 1, last_state = ? WHERE token = ?", (state, token)
            )

    def forget(self, token: str) -> None:
        """Drop the job's record and release whatever rows it still holds (no attempt charged)."""
        ob = self.outbox
        with ob._transaction():
            ob._exec(
                "UPDATE outbox SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = ?",
                (JOB_OWNER_PREFIX + token,),
            )
            ob._exec("DELETE FROM batch_rows WHERE token = ?", (token,))
            ob._exec("DELETE FROM batch_jobs WHERE token = ?", (token,))

    def claim_jobs(self, collection: str, poller: str) -> list[tuple[JobRecord, bool]]:
        """Take the poll lease of every job of ``collection`` that nobody alive is polling; returns the
        jobs ``poller`` holds now, oldest first, each with whether it was just taken over (``adopted``:
        submitted or polled by another drainer, one that died or let go)."""
        ob = self.outbox
        now = time.time()
        adopted: set[str] = set()
        with ob._transaction():
            rows = ob._exec(
                "SELECT token, poll_owner, poll_until FROM batch_jobs WHERE collection = ?", (collection,)
            ).fetchall()
            for token, holder, until in rows:
                if holder == poller or holder is None or until < now or owner_is_dead(str(holder)):
                    if holder != poller:
                        adopted.add(str(token))
                    ob._exec(
                        "UPDATE batch_jobs SET poll_owner = ?, poll_until = ? WHERE token = ?",
                        (poller, now + POLL_LEASE_S, token),
                    )
            held = ob._exec(
                "SELECT token, collection, job_name, dims, created_at, polls, last_state FROM batch_jobs "
                "WHERE collection = ? AND poll_owner = ? ORDER BY created_at, token",
                (collection, poller),
            ).fetchall()
        return [(JobRecord(*row), str(row[0]) in adopted) for row in held]

    def release_polls(self, poller: str) -> None:
        with self.outbox._lock:
            self.outbox._exec(
                "UPDATE batch_jobs SET poll_owner = NULL, poll_until = 0 WHERE poll_owner = ?", (poller,)
            )

    def claim_of(self, job: JobRecord) -> tuple[Claim, dict[int, OutboxItem], set[str]]:
        """The job's claim over the rows it still holds, those rows by position (each with the
        generation it had at submit), and the ids among them whose document changed since (a new
        text, or a delete then a new ingest): their results are stale."""
        ob = self.outbox
        with ob._lock:
            rows = ob._exec(
                "SELECT b.position, b.generation, o.generation, o.collection, o.payload, o.content_hash, o.attempts, "
                "o.last_error, o.state, o.error_kind, o.findings, o.detector_version "
                "FROM batch_rows b JOIN outbox o ON o.collection = ? AND o.doc_id = b.doc_id "
                "WHERE b.token = ? AND o.lease_owner = ? ORDER BY b.position",
                (job.collection, job.token, job.owner),
            ).fetchall()
        by_pos = {
            int(pos): OutboxItem(c, document_from_json(p), h, a, e, int(g), s == "deleted", k, f, v)
            for pos, g, _now, c, p, h, a, e, s, k, f, v in rows
        }
        changed = {
            by_pos[int(pos)].document.id
            for pos, g, now, _c, _p, _h, _a, _e, s, *_ in rows
            if now != g and s != "deleted"
        }
        claim = Claim(job.owner, list(by_pos.values()), job.created_at, job.created_at + BATCH_LEASE_S)
        return claim, by_pos, changed

    def open_count(self, collection: str | None = None) -> int:
        """Jobs recorded (submitted or being submitted) and not yet settled; 0 for a file without the table."""
        sql = "SELECT COUNT(*) FROM batch_jobs"
        args: tuple[str, ...] = ()
        if collection is not None:
            sql += " WHERE collection = ?"
            args = (collection,)
        try:
            with self.outbox._lock:
                return int(self.outbox._exec(sql, args).fetchone()[0])
        except (StoreError, sqlite3.Error):
            return 0


__all__ = ["BATCH_LEASE_S", "JOB_OWNER_PREFIX", "POLL_LEASE_S", "BatchJobs", "JobRecord"]
