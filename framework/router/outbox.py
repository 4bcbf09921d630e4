"""A durable outbox of documents due for the cloud index, drained when the cloud is reachable.

SQLite in WAL mode, one row per (collection, document id). Enqueueing is idempotent by content
hash: the same document twice is one row, a changed document replaces its row. Draining is
at-least-once: the engine writes a batch to the cloud index (an upsert by id, so a repeat is
harmless) and only then deletes the rows whose hash it wrote. A crash at any point therefore
loses nothing (rows stay until written) and duplicates nothing (ids are unique in the index).
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..documents import Document
from ..errors import ConfigurationError, StoreError
from ..parts import Part

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
    UNIQUE (collection, doc_id)
);
"""


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


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A queued document and how often writing it to the cloud index has failed."""

    collection: str
    document: Document
    content_hash: str
    attempts: int
    last_error: str | None


class Outbox:
    """The durable queue. ``path=None`` keeps it in memory (nothing survives the process).

    Thread-safe within a process; several processes may share the file (SQLite WAL, writers wait
    up to ``busy_timeout_s``).
    """

    def __init__(self, path: str | Path | None = None, *, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path).expanduser() if path is not None else None
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
        except sqlite3.Error as exc:
            raise StoreError(
                f"outbox {target} cannot be opened ({exc}); delete it if it is not an edgeroute outbox"
            ) from exc
        self._lock = threading.Lock()

    def _exec(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
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
        with self._lock:
            self._exec("BEGIN IMMEDIATE")
            try:
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
                self._exec("COMMIT")
            except BaseException:
                self._exec("ROLLBACK")
                raise
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
        with self._lock:
            self._exec("BEGIN IMMEDIATE")
            try:
                n = 0
                for doc_id, content_hash in written:
                    n += self._exec(
                        "DELETE FROM outbox WHERE collection = ? AND doc_id = ? AND content_hash = ?",
                        (collection, doc_id, content_hash),
                    ).rowcount
                self._exec("COMMIT")
            except BaseException:
                self._exec("ROLLBACK")
                raise
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
        """Drop rows whatever their hash (a document that became private must not be sent later)."""
        with self._lock:
            n = 0
            for d in doc_ids:
                n += self._exec(
                    "DELETE FROM outbox WHERE collection = ? AND doc_id = ?", (collection, d)
                ).rowcount
        return n

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
        return {
            "path": str(self.path) if self.path else ":memory:",
            "depth": sum(int(n) for _, n in rows),
            "by_collection": {c: int(n) for c, n in rows},
            "oldest_age_s": round(time.time() - oldest, 3) if oldest is not None else None,
            "last_error": err[0] if err else None,
        }

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Outbox", "OutboxItem", "document_from_json", "document_to_json"]
