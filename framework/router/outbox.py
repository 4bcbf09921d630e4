"""A durable outbox of documents due for the cloud index, drained when the cloud is reachable.

SQLite in WAL mode, one row per (collection, document id); the file's schema and its migration
live in :mod:`.outbox_schema`, the queries that only read in :mod:`.outbox_reads`. Enqueueing is
idempotent by content hash: the same document twice is one row, a changed document replaces its row.
Draining is at-least-once: the engine writes a batch to the cloud index (an upsert by id, so a repeat
is harmless) and only then deletes the rows it wrote. A crash at any point therefore loses nothing
(rows stay until written) and duplicates nothing (ids are unique in the index).

Several processes drain one outbox safely through *leases*: :meth:`Outbox.claim` atomically
(``BEGIN IMMEDIATE``) takes up to ``limit`` rows that nobody holds, stamping them with the
claimer's owner id and an expiry; other drainers skip leased rows, so no row is sent twice
while its lease lives. Only the owner may complete (:meth:`Outbox.complete`), fail
(:meth:`Outbox.fail`) or release its rows. A drainer that dies (kill -9) leaves its leases
behind; they are reclaimed when they expire, or at once when the owner was a process on this
host that no longer exists. A long batch keeps its rows with :meth:`Outbox.renew`.

**The last operation wins.** Every change of a row's document (a new text, a delete, an ingest
after a delete) bumps its *generation*, and a lease survives those changes. A drainer completes a
row only if it still holds the generation it claimed; otherwise it releases it (``changed``) for
the next drain, which sends the current text. Deleting a row that a drainer holds turns it into a
*tombstone row* (``state = 'deleted'``, still leased): its :meth:`Outbox.complete` reports it as
``vanished``, the drainer takes what it wrote back out of the cloud index, and only then
:meth:`Outbox.settle` removes the row, so no other drainer can write that id in between. A
tombstone row whose drainer died is claimed like any row and settled the same way.

**Dead letters.** A document the cloud refuses for good (a *permanent* error: over the token limit,
400 INVALID_ARGUMENT) when sent alone becomes a dead row after ``max_attempts`` such refusals
(:data:`DEFAULT_MAX_ATTEMPTS`, ``EDGEROUTE_OUTBOX_MAX_ATTEMPTS``), or at once when the client's own
input checks refused it (no request was sent; the same check refuses it every time). Dead rows are kept, never claimed,
counted by :meth:`Outbox.stats`, and put back in the queue by :meth:`Outbox.retry_dead`.
*Transient* failures (429, 5xx, timeouts, a rejected key) never make a row dead, since an outage
must not empty the queue; both kinds wait before the row's next attempt (exponential backoff).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..documents import Document
from ..errors import ConfigurationError, InputError, StoreError
from .outbox_reads import OutboxItem, OutboxReads
from .outbox_schema import (
    create_schema,
    document_from_json,
    document_to_json,
    new_owner_id,
    open_read_only,
    owner_is_dead,
)

logger = logging.getLogger(__name__)

DEFAULT_LEASE_S = 120.0
"""How long a claim holds its rows. Longer than one cloud call with its retries (20 s with the CLI's
10 s timeout), short enough that rows held by a drainer on another host that died come back soon;
drainers renew before each batch, and a dead drainer on this host is noticed at once."""
DEFAULT_MAX_ATTEMPTS = 3
"""Permanent refusals of a document sent alone before its row is dead. More than one, so a refusal
caused by a passing fault (a model briefly misconfigured upstream) does not bury a document; few,
since each costs a cloud call that cannot succeed."""
DEFAULT_RETRY_BASE_S = 2.0
DEFAULT_RETRY_CAP_S = 600.0
"""Backoff: after its first failure a row may be sent again at once (by the next drain: a blip should
not hold a document back); after its n-th failure (n >= 2) it waits ``base * 2**(n - 1)`` seconds, at
most the cap: 4 s after the second, 16 s after the fourth, then up to every 10 minutes."""
_TOMBSTONE_TTL_S = 7 * 24 * 3600.0
ErrorKind = Literal["permanent", "transient"]


def default_max_attempts() -> int:
    """``EDGEROUTE_OUTBOX_MAX_ATTEMPTS`` or :data:`DEFAULT_MAX_ATTEMPTS`."""
    raw = os.environ.get("EDGEROUTE_OUTBOX_MAX_ATTEMPTS", "").strip()
    if not raw:
        return DEFAULT_MAX_ATTEMPTS
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigurationError(f"EDGEROUTE_OUTBOX_MAX_ATTEMPTS must be a positive integer, got {raw!r}")
    return int(raw)


@dataclass(frozen=True, slots=True)
class Claim:
    """Rows leased to ``owner`` until ``expires_at`` (wall clock); ``items`` oldest first."""

    owner: str
    items: list[OutboxItem]
    claimed_at: float
    expires_at: float

    def __len__(self) -> int:
        return len(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)


@dataclass(frozen=True, slots=True)
class Completion:
    """What :meth:`Outbox.complete` did: rows removed, rows kept because their document changed while
    it was being sent (released for the next drain), and ids deleted since the claim (``vanished``:
    the caller must take what it wrote for them back out of the cloud index, then :meth:`Outbox.settle`)."""

    done: int = 0
    changed: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)


class Outbox(OutboxReads):
    """The durable queue. ``path=None`` keeps it in memory (nothing survives the process).

    Thread-safe within a process; several processes may share the file (SQLite WAL, writers wait
    up to ``busy_timeout_s``). ``max_attempts`` (default ``EDGEROUTE_OUTBOX_MAX_ATTEMPTS`` or 3),
    ``retry_base_s`` and ``retry_cap_s`` set dead-lettering and backoff (see the module docstring).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        busy_timeout_s: float = 30.0,
        read_only: bool = False,
        max_attempts: int | None = None,
        retry_base_s: float = DEFAULT_RETRY_BASE_S,
        retry_cap_s: float = DEFAULT_RETRY_CAP_S,
    ) -> None:
        self.path = Path(path).expanduser() if path is not None else None
        self.read_only = read_only
        self.max_attempts = default_max_attempts() if max_attempts is None else int(max_attempts)
        if self.max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be at least 1, got {max_attempts}")
        if retry_base_s < 0 or retry_cap_s < 0:
            raise ConfigurationError("retry_base_s and retry_cap_s must be >= 0 seconds")
        self.retry_base_s, self.retry_cap_s = float(retry_base_s), float(retry_cap_s)
        self._lock = threading.Lock()
        if read_only and self.path is not None:
            self._db = open_read_only(self.path, busy_timeout_s)
            return
        target = ":memory:"
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigurationError(
                    f"outbox directory {self.path.parent} cannot be created ({exc.strerror or exc}); "
                    "choose a writable --store or EDGEROUTE_OUTBOX"
                ) from exc
            target = str(self.path)
        try:
            self._db = sqlite3.connect(
                target, timeout=busy_timeout_s, check_same_thread=False, isolation_level=None
            )
            if self.path is not None:
                self._db.execute("PRAGMA journal_mode=WAL")
                # FULL: a row acknowledged by enqueue() survives power loss, not just a process crash.
                self._db.execute("PRAGMA synchronous=FULL")
            create_schema(self._db)
        except sqlite3.Error as exc:
            raise StoreError(
                f"outbox {target} cannot be opened ({exc}); delete it if it is not an edgeroute outbox"
            ) from exc

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """Hold the lock and one ``BEGIN IMMEDIATE`` transaction: committed when the block ends,
        rolled back when it raises."""
        with self._lock:
            self._exec("BEGIN IMMEDIATE")
            try:
                yield
                self._exec("COMMIT")
            except BaseException:
                self._exec("ROLLBACK")
                raise

    def enqueue(
        self,
        collection: str,
        documents: Sequence[Document],
        findings: Mapping[str, tuple[str, str]] | None = None,
    ) -> int:
        """Queue documents for ``collection``'s cloud index; returns how many rows were added or changed.

        A document already queued with the same content hash is left alone (its attempt count too, and
        a dead row stays dead: the same text would be refused again). A changed document, or one
        deleted since, gets a fresh row state and a new generation; a drainer's lease on it is kept, so
        the drainer learns of the change when it completes. ``findings``: ``{doc_id: (detector_version,
        findings_json)}`` stored with each row (also on an unchanged row), for the drain's policy re-check.
        """
        stored = findings or {}
        now = time.time()
        changed = 0
        with self._transaction():
            for doc in documents:
                cur = self._exec(
                    "INSERT INTO outbox (collection, doc_id, content_hash, payload, enqueued_at) "
                    "VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (collection, doc_id) DO UPDATE SET "
                    "content_hash = excluded.content_hash, payload = excluded.payload, "
                    "enqueued_at = excluded.enqueued_at, attempts = 0, last_error = NULL, "
                    "error_kind = NULL, next_attempt_at = 0, state = 'pending', "
                    "generation = outbox.generation + 1 "
                    "WHERE outbox.content_hash != excluded.content_hash OR outbox.state = 'deleted'",
                    (collection, doc.id, doc.content_hash(), document_to_json(doc), now),
                )
                changed += cur.rowcount
                if doc.id in stored:
                    version, payload = stored[doc.id]
                    self._exec(
                        "UPDATE outbox SET findings = ?, detector_version = ? "
                        "WHERE collection = ? AND doc_id = ? AND content_hash = ?",
                        (payload, version, collection, doc.id, doc.content_hash()),
                    )
                # Queued again: no longer removed, whatever a drainer learns later.
                self._exec("DELETE FROM tombstones WHERE collection = ? AND doc_id = ?", (collection, doc.id))
        return changed

    def store_findings(self, collection: str, rows: Sequence[tuple[str, str, str, str]]) -> None:
        """Keep ``(doc_id, content_hash, detector_version, findings_json)`` for later runs (one per id)."""
        if not rows:
            return
        with self._transaction():
            self._db.executemany(
                "INSERT INTO findings (collection, doc_id, content_hash, detector_version, findings) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (collection, doc_id) DO UPDATE SET "
                "content_hash = excluded.content_hash, detector_version = excluded.detector_version, "
                "findings = excluded.findings",
                [(collection, *row) for row in rows],
            )

    def stored_findings(
        self, collection: str, documents: Sequence[tuple[str, str]], detector_version: str
    ) -> dict[str, str]:
        """``{doc_id: findings_json}`` for the ``(doc_id, content_hash)`` pairs whose findings are stored
        for that same content hash and detector version (others must be detected again)."""
        out: dict[str, str] = {}
        with self._lock:
            for doc_id, content_hash in documents:
                row = self._exec(
                    "SELECT findings FROM findings WHERE collection = ? AND doc_id = ? AND content_hash = ? "
                    "AND detector_version = ?",
                    (collection, doc_id, content_hash, detector_version),
                ).fetchone()
                if row is not None:
                    out[doc_id] = str(row[0])
        return out

    def mark_done(self, collection: str, written: Sequence[tuple[str, str]]) -> int:
        """Remove rows for ``(doc_id, content_hash)`` pairs written to the cloud index.

        A row whose document changed meanwhile (another hash) stays queued.
        """
        with self._transaction():
            n = 0
            for doc_id, content_hash in written:
                n += self._exec(
                    "DELETE FROM outbox WHERE collection = ? AND doc_id = ? AND content_hash = ? "
                    "AND state = 'pending'",
                    (collection, doc_id, content_hash),
                ).rowcount
        return n

    def mark_failed(self, collection: str, doc_ids: Sequence[str], error: str) -> None:
        """Count a failed attempt for these rows; they stay queued."""
        with self._lock:
            self._db.executemany(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? "
                "WHERE collection = ? AND doc_id = ? AND state = 'pending'",
                [(error[:500], collection, d) for d in doc_ids],
            )

    def discard(self, collection: str, doc_ids: Sequence[str]) -> int:
        """Drop queued documents whatever their hash (a document that became private, or was deleted,
        must not be sent later); returns how many were queued (pending or dead).

        A row a drainer holds becomes a tombstone row (it keeps the lease; see the module docstring); a
        free row is removed. Each id also leaves a tombstone record, so a drainer whose lease ran out
        while it was sending learns of the deletion in :meth:`complete`.
        """
        now = time.time()
        with self._transaction():
            n = 0
            for d in doc_ids:
                row = self._exec(
                    "SELECT state, lease_owner, lease_until FROM outbox WHERE collection = ? AND doc_id = ?",
                    (collection, d),
                ).fetchone()
                if row is not None:
                    state, owner, until = row
                    n += state != "deleted"
                    if owner is not None and until >= now:
                        self._exec(
                            "UPDATE outbox SET state = 'deleted', generation = generation + 1 "
                            "WHERE collection = ? AND doc_id = ?",
                            (collection, d),
                        )
                    else:
                        self._exec("DELETE FROM outbox WHERE collection = ? AND doc_id = ?", (collection, d))
                self._exec(
                    "INSERT INTO tombstones (collection, doc_id, removed_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (collection, doc_id) DO UPDATE SET removed_at = excluded.removed_at",
                    (collection, d, now),
                )
            self._exec("DELETE FROM tombstones WHERE removed_at < ?", (now - _TOMBSTONE_TTL_S,))
        return n

    # -- leases: several drainers, each row sent by one ------------------------------------------------

    def claim(
        self,
        collection: str,
        limit: int,
        *,
        owner: str,
        lease_s: float = DEFAULT_LEASE_S,
        skip: Collection[str] = (),
    ) -> Claim:
        """Lease up to ``limit`` unleased rows of ``collection`` (oldest first) to ``owner``: pending rows
        whose backoff is over, and tombstone rows whose drainer died (``deleted`` items).

        Atomic across processes (one ``BEGIN IMMEDIATE`` transaction): two drainers never get the same
        row while its lease lives. Expired leases, and leases of a dead process on this host, count as
        free. An empty :class:`Claim` means nothing is claimable now (the queue may still hold rows
        leased by others, see :meth:`leased`, or waiting out a backoff). Ids in ``skip`` are not claimed
        (a drain passes the ids it already failed, so one drain tries each row once).
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InputError(f"limit must be a positive integer, got {limit!r}")
        if not lease_s > 0:
            raise InputError(f"lease_s must be a positive number of seconds, got {lease_s!r}")
        if not owner:
            raise InputError("owner must be a non-empty id (use new_owner_id())")
        with self._transaction():
            now = time.time()
            held = self._exec(
                "SELECT DISTINCT lease_owner FROM outbox WHERE collection = ? AND lease_until >= ? "
                "AND lease_owner IS NOT NULL AND lease_owner != ?",
                (collection, now, owner),
            ).fetchall()
            for (other,) in held:
                if owner_is_dead(other):
                    logger.info("reclaiming outbox rows leased by %s, a process that is gone", other)
                    self._exec(
                        "UPDATE outbox SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = ?",
                        (other,),
                    )
            rows = self._exec(
                "SELECT seq, collection, payload, content_hash, attempts, last_error, generation, state, "
                "error_kind, findings, detector_version FROM outbox WHERE collection = ? AND (lease_until < ? OR lease_owner = ?) "
                "AND (state = 'deleted' OR (state = 'pending' AND next_attempt_at <= ?)) "
                "AND doc_id NOT IN (SELECT value FROM json_each(?)) ORDER BY seq LIMIT ?",
                (collection, now, owner, now, json.dumps(sorted(skip)), limit),
            ).fetchall()
            until = now + lease_s
            self._db.executemany(
                "UPDATE outbox SET lease_owner = ?, lease_until = ? WHERE seq = ?",
                [(owner, until, row[0]) for row in rows],
            )
        items = [
            OutboxItem(c, document_from_json(p), h, a, e, g, s == "deleted", k, f, v)
            for _, c, p, h, a, e, g, s, k, f, v in rows
        ]
        return Claim(owner, items, now, until)

    def renew(self, owner: str, *, lease_s: float = DEFAULT_LEASE_S) -> int:
        """Extend every lease ``owner`` holds by ``lease_s`` from now; returns how many rows it holds."""
        with self._lock:
            return self._exec(
                "UPDATE outbox SET lease_until = ? WHERE lease_owner = ?", (time.time() + lease_s, owner)
            ).rowcount

    def owned(self, collection: str, owner: str, written: Sequence[tuple[str, str]]) -> list[str]:
        """The ids among ``(doc_id, content_hash)`` that ``owner`` still holds with that same hash."""
        out: list[str] = []
        with self._lock:
            for doc_id, content_hash in written:
                row = self._exec(
                    "SELECT 1 FROM outbox WHERE collection = ? AND doc_id = ? AND content_hash = ? "
                    "AND lease_owner = ? AND state = 'pending'",
                    (collection, doc_id, content_hash, owner),
                ).fetchone()
                if row is not None:
                    out.append(doc_id)
        return out

    def complete(self, claim: Claim, written: Sequence[tuple[str, str]]) -> Completion:
        """``claim.owner`` wrote these ``(doc_id, content_hash)`` pairs to the cloud index: remove its rows.

        A row still at the generation claimed is removed (``done``). A row whose document changed since
        the claim stays queued and is released (``changed``). A row deleted since the claim is reported
        in ``vanished`` and stays held (a tombstone row) until :meth:`settle`. A row another drainer
        holds (this lease expired) is left alone.
        """
        collection = claim.items[0].collection if claim.items else None
        if collection is None:
            return Completion()
        generations = {it.document.id: it.generation for it in claim.items}
        done, changed, vanished = 0, [], []
        with self._transaction():
            for doc_id, _content_hash in written:
                row = self._exec(
                    "SELECT generation, lease_owner, state FROM outbox WHERE collection = ? AND doc_id = ?",
                    (collection, doc_id),
                ).fetchone()
                if row is None:
                    gone = self._exec(
                        "SELECT 1 FROM tombstones WHERE collection = ? AND doc_id = ? AND removed_at >= ?",
                        (collection, doc_id, claim.claimed_at),
                    ).fetchone()
                    if gone is not None:
                        vanished.append(doc_id)
                    continue
                generation, lease_owner, state = row
                if lease_owner != claim.owner:
                    continue
                if state == "deleted":
                    vanished.append(doc_id)
                elif generation == generations.get(doc_id):
                    self._exec("DELETE FROM outbox WHERE collection = ? AND doc_id = ?", (collection, doc_id))
                    done += 1
                else:
                    self._exec(
                        "UPDATE outbox SET lease_owner = NULL, lease_until = 0 "
                        "WHERE collection = ? AND doc_id = ?",
                        (collection, doc_id),
                    )
                    changed.append(doc_id)
        return Completion(done, changed, vanished)

    def settle(self, claim: Claim, doc_ids: Sequence[str]) -> int:
        """The drainer has taken ``doc_ids`` out of the cloud index: remove its tombstone rows for them,
        and release those that were queued again meanwhile (the next drain sends the new text)."""
        if not claim.items or not doc_ids:
            return 0
        collection = claim.items[0].collection
        with self._transaction():
            n = 0
            for d in doc_ids:
                n += self._exec(
                    "DELETE FROM outbox WHERE collection = ? AND doc_id = ? AND lease_owner = ? "
                    "AND state = 'deleted'",
                    (collection, d, claim.owner),
                ).rowcount
                self._exec(
                    "UPDATE outbox SET lease_owner = NULL, lease_until = 0 "
                    "WHERE collection = ? AND doc_id = ? AND lease_owner = ?",
                    (collection, d, claim.owner),
                )
        return n

    def fail(
        self,
        claim: Claim,
        doc_ids: Sequence[str],
        error: str,
        kind: ErrorKind = "transient",
        *,
        dead: bool = False,
    ) -> int:
        """Count a failed attempt on ``claim.owner``'s rows and release them; returns how many were charged.

        The row waits out a backoff before its next attempt. A ``permanent`` failure of a row's
        ``max_attempts``-th attempt makes it dead (callers pass ``permanent`` only for a document sent
        alone, so the refusal is its own); ``dead=True`` makes it dead at once (a refusal by the client's own
        input checks, which no retry can change). A row whose document changed or was deleted since the
        claim is not charged: it is released, or removed if deleted (nothing was written for it).
        """
        if not claim.items:
            return 0
        collection = claim.items[0].collection
        generations = {it.document.id: it.generation for it in claim.items}
        now = time.time()
        charged = 0
        with self._transaction():
            for d in doc_ids:
                row = self._exec(
                    "SELECT generation, state, attempts FROM outbox "
                    "WHERE collection = ? AND doc_id = ? AND lease_owner = ?",
                    (collection, d, claim.owner),
                ).fetchone()
                if row is None:
                    continue
                generation, state, attempts = row
                if state == "deleted":
                    self._exec("DELETE FROM outbox WHERE collection = ? AND doc_id = ?", (collection, d))
                    continue
                if generation != generations.get(d):
                    self._exec(
                        "UPDATE outbox SET lease_owner = NULL, lease_until = 0 WHERE collection = ? AND doc_id = ?",
                        (collection, d),
                    )
                    continue
                attempts += 1
                becomes_dead = kind == "permanent" and (dead or attempts >= self.max_attempts)
                delay = (
                    0.0
                    if attempts == 1
                    else min(self.retry_cap_s, self.retry_base_s * 2 ** min(attempts - 1, 30))
                )
                self._exec(
                    "UPDATE outbox SET attempts = ?, last_error = ?, error_kind = ?, lease_owner = NULL, "
                    "lease_until = 0, next_attempt_at = ?, state = ? WHERE collection = ? AND doc_id = ?",
                    (
                        attempts,
                        error[:500],
                        kind,
                        now + delay,
                        "dead" if becomes_dead else "pending",
                        collection,
                        d,
                    ),
                )
                charged += 1
        return charged

    def retry_dead(self, collection: str | None = None) -> int:
        """Put dead rows (of one collection, or all) back in the queue with a clean attempt count; returns
        how many. Their last error is kept until the next attempt."""
        sql = "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = 0 WHERE state = 'dead'"
        args: list[Any] = []
        if collection is not None:
            sql += " AND collection = ?"
            args.append(collection)
        with self._transaction():
            return self._exec(sql, args).rowcount

    def release(self, owner: str, doc_ids: Sequence[str] | None = None) -> int:
        """Give back ``owner``'s leases (all of them, or those for ``doc_ids``) without counting a failure."""
        with self._lock:
            if doc_ids is None:
                return self._exec(
                    "UPDATE outbox SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = ?", (owner,)
                ).rowcount
            n = 0
            for d in doc_ids:
                n += self._exec(
                    "UPDATE outbox SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = ? AND doc_id = ?",
                    (owner, d),
                ).rowcount
            return n

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "DEFAULT_LEASE_S",
    "DEFAULT_MAX_ATTEMPTS",
    "Claim",
    "Completion",
    "ErrorKind",
    "Outbox",
    "OutboxItem",
    "default_max_attempts",
    "document_from_json",
    "document_to_json",
    "new_owner_id",
]
