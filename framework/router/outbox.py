"""A durable outbox of documents due for the cloud index, drained when the cloud is reachable.

SQLite in WAL mode, one row per (collection, document id). Enqueueing is idempotent by content
hash: the same document twice is one row, a changed document replaces its row. Draining is
at-least-once: the engine writes a batch to the cloud index (an upsert by id, so a repeat is
harmless) and only then deletes the rows whose hash it wrote. A crash at any point therefore
loses nothing (rows stay until written) and duplicates nothing (ids are unique in the index).

Several processes drain one outbox safely through *leases*: :meth:`Outbox.claim` atomically
(``BEGIN IMMEDIATE``) takes up to ``limit`` rows that nobody holds, stamping them with the
claimer's owner id and an expiry; other drainers skip leased rows, so no row is sent twice
while its lease lives. Only the owner may complete (:meth:`Outbox.complete`), fail
(:meth:`Outbox.fail`) or release its rows. A drainer that dies (kill -9) leaves its leases
behind; they are reclaimed when they expire, or at once when the owner was a process on this
host that no longer exists. A long batch keeps its rows with :meth:`Outbox.renew`.

Removing a queued document (:meth:`Outbox.discard`) leaves a *tombstone*, so a drainer that was
sending that document when it was removed learns it from :meth:`Outbox.complete` (``vanished``)
and takes the vector it just wrote back out of the cloud index.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..documents import Document
from ..errors import ConfigurationError, InputError, StoreError
from ..parts import Part

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    collection TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    payload TEXT NOT NULL,
    enqueued_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    lease_owner TEXT,
    lease_until REAL NOT NULL DEFAULT 0,
    UNIQUE (collection, doc_id)
);
CREATE TABLE IF NOT EXISTS tombstones (
    collection TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    removed_at REAL NOT NULL,
    PRIMARY KEY (collection, doc_id)
);
"""
# Outbox files written before leases existed get the two columns added on open.
_LEASE_COLUMNS = {
    "lease_owner": "ALTER TABLE outbox ADD COLUMN lease_owner TEXT",
    "lease_until": "ALTER TABLE outbox ADD COLUMN lease_until REAL NOT NULL DEFAULT 0",
}
DEFAULT_LEASE_S = 120.0
"""How long a claim holds its rows. Longer than one cloud call with its retries (20 s with the CLI's
10 s timeout), short enough that rows held by a drainer on another host that died come back soon;
drainers renew before each batch, and a dead drainer on this host is noticed at once."""
_TOMBSTONE_TTL_S = 7 * 24 * 3600.0


def new_owner_id() -> str:
    """``host:pid:random``: unique per drainer, and it says whether the owner may still be alive."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


def _owner_is_dead(owner: str) -> bool:
    """True only when the owner was a process on this host that no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists but belongs to someone else
        return False
    return False


def document_to_json(doc: Document) -> str:
    """A lossless JSON form of a document (inline bytes base64-encoded)."""
    parts = [
        {
            "text": p.text_value,
            "data": base64.b64encode(p.data).decode("ascii") if p.data is not None else None,
            "mime_type": p.mime_type,
            "uri": p.uri,
        }
        for p in doc.parts
    ]
    return json.dumps(
        {
            "id": doc.id,
            "text": doc.text,
            "title": doc.title,
            "metadata": doc.metadata,
            "sensitivity": doc.sensitivity,
            "parts": parts,
        },
        ensure_ascii=False,
    )


def document_from_json(payload: str) -> Document:
    d: dict[str, Any] = json.loads(payload)
    parts = tuple(
        Part(
            text_value=p.get("text"),
            data=base64.b64decode(p["data"]) if p.get("data") is not None else None,
            mime_type=p.get("mime_type"),
            uri=p.get("uri"),
        )
        for p in d.get("parts", [])
    )
    return Document(
        id=d["id"],
        text=d["text"],
        title=d.get("title"),
        metadata=dict(d.get("metadata") or {}),
        sensitivity=d.get("sensitivity", "internal"),
        parts=parts,
    )


def _open_read_only(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    """The outbox for reading only: never created, never written. A missing file reads as empty; a file
    in a directory this process cannot write (no WAL index can be made) is read as immutable."""
    if not path.is_file():
        db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        db.executescript(_SCHEMA)
        return db
    for mode in ("ro", "ro&immutable=1"):
        try:
            db = sqlite3.connect(
                f"file:{path}?mode={mode}",
                uri=True,
                timeout=busy_timeout_s,
                check_same_thread=False,
                isolation_level=None,
            )
            have = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
            if not have:
                raise StoreError(f"outbox {path} has no outbox table; is it an edgeroute outbox?")
            if _LEASE_COLUMNS.keys() - have:  # an outbox from before leases: read it as such
                db.close()
                db = sqlite3.connect(":memory:", uri=True, check_same_thread=False, isolation_level=None)
                db.executescript(_SCHEMA)
                db.execute("ATTACH DATABASE ? AS old", (f"file:{path}?mode={mode}",))
                db.execute(
                    "INSERT INTO outbox (seq, collection, doc_id, content_hash, payload, enqueued_at, attempts, "
                    "last_error) SELECT seq, collection, doc_id, content_hash, payload, enqueued_at, attempts, "
                    "last_error FROM old.outbox"
                )
            return db
        except sqlite3.Error:
            continue
    raise StoreError(f"outbox {path} cannot be read; check its permissions")


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A queued document and how often writing it to the cloud index has failed."""

    collection: str
    document: Document
    content_hash: str
    attempts: int
    last_error: str | None


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
    it was being sent (released for the next drain), and ids removed from the queue since the claim
    (``vanished``: the caller must take what it wrote for them back out of the cloud index)."""

    done: int = 0
    changed: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)


class Outbox:
    """The durable queue. ``path=None`` keeps it in memory (nothing survives the process).

    Thread-safe within a process; several processes may share the file (SQLite WAL, writers wait
    up to ``busy_timeout_s``).
    """

    def __init__(
        self, path: str | Path | None = None, *, busy_timeout_s: float = 30.0, read_only: bool = False
    ) -> None:
        self.path = Path(path).expanduser() if path is not None else None
        self.read_only = read_only
        self._lock = threading.Lock()
        if read_only and self.path is not None:
            self._db = _open_read_only(self.path, busy_timeout_s)
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
            self._db.executescript(_SCHEMA)
            have = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
            for column, ddl in _LEASE_COLUMNS.items():
                if column not in have:
                    self._db.execute(ddl)
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

    def _exec(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        if self.read_only and not sql.lstrip().upper().startswith(("SELECT", "PRAGMA")):
            raise StoreError(
                f"outbox {self.path} was opened read-only (a command that only reads); "
                "run a writing command (index, sync, delete) to change it"
            )
        try:
            return self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise StoreError(f"outbox {self.path or ':memory:'} failed: {exc}") from exc

    def enqueue(self, collection: str, documents: Sequence[Document]) -> int:
        """Queue documents for ``collection``'s cloud index; returns how many rows were added or changed.

        A document already queued with the same content hash is left alone (its attempt count too).
        """
        now = time.time()
        changed = 0
        with self._transaction():
            for doc in documents:
                cur = self._exec(
                    "INSERT INTO outbox (collection, doc_id, content_hash, payload, enqueued_at) "
                    "VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (collection, doc_id) DO UPDATE SET "
                    "content_hash = excluded.content_hash, payload = excluded.payload, "
                    "enqueued_at = excluded.enqueued_at, attempts = 0, last_error = NULL "
                    "WHERE outbox.content_hash != excluded.content_hash",
                    (collection, doc.id, doc.content_hash(), document_to_json(doc), now),
                )
                changed += cur.rowcount
                # Queued again: no longer removed, whatever a drainer learns later.
                self._exec("DELETE FROM tombstones WHERE collection = ? AND doc_id = ?", (collection, doc.id))
        return changed

    def pending(self, collection: str | None = None, limit: int | None = None) -> list[OutboxItem]:
        """Queued items, oldest first (optionally for one collection, at most ``limit``)."""
        sql = "SELECT collection, payload, content_hash, attempts, last_error FROM outbox"
        args: list[Any] = []
        if collection is not None:
            sql += " WHERE collection = ?"
            args.append(collection)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        with self._lock:
            rows = self._exec(sql, args).fetchall()
        return [OutboxItem(c, document_from_json(p), h, a, e) for c, p, h, a, e in rows]

    def mark_done(self, collection: str, written: Sequence[tuple[str, str]]) -> int:
        """Remove rows for ``(doc_id, content_hash)`` pairs written to the cloud index.

        A row whose document changed meanwhile (another hash) stays queued.
        """
        with self._transaction():
            n = 0
            for doc_id, content_hash in written:
                n += self._exec(
                    "DELETE FROM outbox WHERE collection = ? AND doc_id = ? AND content_hash = ?",
                    (collection, doc_id, content_hash),
                ).rowcount
        return n

    def mark_failed(self, collection: str, doc_ids: Sequence[str], error: str) -> None:
        """Count a failed attempt for these rows; they stay queued."""
        with self._lock:
            self._db.executemany(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? "
                "WHERE collection = ? AND doc_id = ?",
                [(error[:500], collection, d) for d in doc_ids],
            )

    def discard(self, collection: str, doc_ids: Sequence[str]) -> int:
        """Drop rows whatever their hash or lease (a document that became private, or was deleted, must
        not be sent later). Each id leaves a tombstone, so a drainer sending it right now learns about it
        in :meth:`complete` and takes it back out of the cloud index."""
        now = time.time()
        with self._transaction():
            n = 0
            for d in doc_ids:
                n += self._exec(
                    "DELETE FROM outbox WHERE collection = ? AND doc_id = ?", (collection, d)
                ).rowcount
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
    ) -> Claim:
        """Lease up to ``limit`` unleased rows of ``collection`` (oldest first) to ``owner``.

        Atomic across processes (one ``BEGIN IMMEDIATE`` transaction): two drainers never get the same
        row while its lease lives. Expired leases, and leases of a dead process on this host, count as
        free. An empty :class:`Claim` means nothing is claimable now (the queue may still hold rows
        leased by others: see :meth:`leased`).
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
                if _owner_is_dead(other):
                    logger.info("reclaiming outbox rows leased by %s, a process that is gone", other)
                    self._exec(
                        "UPDATE outbox SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = ?",
                        (other,),
                    )
            rows = self._exec(
                "SELECT seq, payload, content_hash, attempts, last_error FROM outbox "
                "WHERE collection = ? AND (lease_until < ? OR lease_owner = ?) ORDER BY seq LIMIT ?",
                (collection, now, owner, limit),
            ).fetchall()
            until = now + lease_s
            self._db.executemany(
                "UPDATE outbox SET lease_owner = ?, lease_until = ? WHERE seq = ?",
                [(owner, until, seq) for seq, *_ in rows],
            )
        items = [OutboxItem(collection, document_from_json(p), h, a, e) for _, p, h, a, e in rows]
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
                    "AND lease_owner = ?",
                    (collection, doc_id, content_hash, owner),
                ).fetchone()
                if row is not None:
                    out.append(doc_id)
        return out

    def complete(self, claim: Claim, written: Sequence[tuple[str, str]]) -> Completion:
        """``claim.owner`` wrote these ``(doc_id, content_hash)`` pairs to the cloud index: remove its rows.

        A row whose document changed while it was being sent stays queued and is released (``changed``);
        a row another drainer holds (this lease expired) is left alone; an id removed from the queue
        since the claim is reported in ``vanished``.
        """
        collection = claim.items[0].collection if claim.items else None
        done, changed, vanished = 0, [], []
        if collection is None:
            return Completion()
        with self._transaction():
            for doc_id, content_hash in written:
                row = self._exec(
                    "SELECT content_hash, lease_owner FROM outbox WHERE collection = ? AND doc_id = ?",
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
                stored_hash, lease_owner = row
                if lease_owner != claim.owner:
                    continue
                if stored_hash == content_hash:
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

    def fail(self, claim: Claim, doc_ids: Sequence[str], error: str) -> int:
        """Count a failed attempt on ``claim.owner``'s rows and release them for the next drain."""
        if not claim.items:
            return 0
        collection = claim.items[0].collection
        with self._transaction():
            n = 0
            for d in doc_ids:
                n += self._exec(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ?, lease_owner = NULL, "
                    "lease_until = 0 WHERE collection = ? AND doc_id = ? AND lease_owner = ?",
                    (error[:500], collection, d, claim.owner),
                ).rowcount
        return n

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

    def leased(self, collection: str | None = None) -> int:
        """How many queued rows another drainer holds right now (they are being sent)."""
        sql = "SELECT COUNT(*) FROM outbox WHERE lease_until >= ?"
        args: list[Any] = [time.time()]
        if collection is not None:
            sql += " AND collection = ?"
            args.append(collection)
        with self._lock:
            return int(self._exec(sql, args).fetchone()[0])

    def collections(self) -> list[str]:
        """The collections with queued rows, sorted."""
        with self._lock:
            rows = self._exec("SELECT DISTINCT collection FROM outbox ORDER BY collection").fetchall()
        return [str(c) for (c,) in rows]

    def queued(self, collection: str) -> dict[str, dict[str, Any]]:
        """``{doc_id: metadata}`` of every row queued for ``collection`` (oldest first)."""
        with self._lock:
            rows = self._exec(
                "SELECT doc_id, payload FROM outbox WHERE collection = ? ORDER BY seq", (collection,)
            ).fetchall()
        return {str(d): dict(json.loads(payload).get("metadata") or {}) for d, payload in rows}

    def depth(self, collection: str | None = None) -> int:
        """How many documents are queued (for one collection, or in all)."""
        with self._lock:
            if collection is None:
                row = self._exec("SELECT COUNT(*) FROM outbox").fetchone()
            else:
                row = self._exec("SELECT COUNT(*) FROM outbox WHERE collection = ?", (collection,)).fetchone()
        return int(row[0])

    def stats(self) -> dict[str, Any]:
        """Depth per collection, oldest age in seconds and the most recent error."""
        with self._lock:
            rows = self._exec("SELECT collection, COUNT(*) FROM outbox GROUP BY collection").fetchall()
            oldest = self._exec("SELECT MIN(enqueued_at) FROM outbox").fetchone()[0]
            err = self._exec(
                "SELECT last_error FROM outbox WHERE last_error IS NOT NULL ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            leased = self._exec(
                "SELECT COUNT(*) FROM outbox WHERE lease_until >= ?", (time.time(),)
            ).fetchone()
        return {
            "path": str(self.path) if self.path else ":memory:",
            "depth": sum(int(n) for _, n in rows),
            "by_collection": {c: int(n) for c, n in rows},
            "oldest_age_s": round(time.time() - oldest, 3) if oldest is not None else None,
            "last_error": err[0] if err else None,
            "leased": int(leased[0]),
        }

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "DEFAULT_LEASE_S",
    "Claim",
    "Completion",
    "Outbox",
    "OutboxItem",
    "document_from_json",
    "document_to_json",
    "new_owner_id",
]
