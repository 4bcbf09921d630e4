"""The outbox's read side: what is queued, dead or being sent, and the figures ``status`` shows.

:class:`~edgeroute.framework.router.outbox.Outbox` inherits it; it only reads (``_exec`` refuses
writes on an outbox opened read-only).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..documents import Document
from ..errors import StoreError
from .outbox_schema import document_from_json

_LIVE = "state != 'deleted'"  # rows that are documents of the collection (pending or dead)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A queued document and how often writing it to the cloud index has failed. ``deleted``: a
    tombstone row (the document was deleted while a drainer held it; it must leave the cloud index)."""

    collection: str
    document: Document
    content_hash: str
    attempts: int
    last_error: str | None
    generation: int = 0
    deleted: bool = False
    error_kind: str | None = None
    findings: str | None = None
    """The document's PII findings as ingest stored them (JSON), or None (queued by an older release)."""
    detector_version: str | None = None
    """The :attr:`~edgeroute.framework.pii.PiiDetector.version` the findings were computed under."""


class OutboxReads:
    """Queries over the outbox table; the connection and lock belong to the subclass."""

    path: Path | None
    read_only: bool
    _db: sqlite3.Connection
    _lock: threading.Lock

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

    def _items(
        self, collection: str | None, where: str, args: Sequence[Any], limit: int | None
    ) -> list[OutboxItem]:
        sql = (
            "SELECT collection, payload, content_hash, attempts, last_error, generation, state, error_kind, "
            "findings, detector_version "
            f"FROM outbox WHERE {where}"
        )
        full: list[Any] = list(args)
        if collection is not None:
            sql += " AND collection = ?"
            full.append(collection)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            full.append(int(limit))
        with self._lock:
            rows = self._exec(sql, full).fetchall()
        return [
            OutboxItem(c, document_from_json(p), h, a, e, g, s == "deleted", k, f, v)
            for c, p, h, a, e, g, s, k, f, v in rows
        ]

    def pending(self, collection: str | None = None, limit: int | None = None) -> list[OutboxItem]:
        """Queued items still to send, oldest first (optionally for one collection, at most ``limit``)."""
        return self._items(collection, "state = 'pending'", (), limit)

    def dead(self, collection: str | None = None, limit: int | None = None) -> list[OutboxItem]:
        """Dead-lettered items (the cloud refused them for good), oldest first."""
        return self._items(collection, "state = 'dead'", (), limit)

    def leased(self, collection: str | None = None) -> int:
        """How many queued rows a drainer holds right now (they are being sent)."""
        sql = f"SELECT COUNT(*) FROM outbox WHERE lease_until >= ? AND {_LIVE}"
        args: list[Any] = [time.time()]
        if collection is not None:
            sql += " AND collection = ?"
            args.append(collection)
        with self._lock:
            return int(self._exec(sql, args).fetchone()[0])

    def collections(self) -> list[str]:
        """The collections with queued rows (pending or dead), sorted."""
        with self._lock:
            rows = self._exec(
                f"SELECT DISTINCT collection FROM outbox WHERE {_LIVE} ORDER BY collection"
            ).fetchall()
        return [str(c) for (c,) in rows]

    def queued(self, collection: str) -> dict[str, dict[str, Any]]:
        """``{doc_id: metadata}`` of every document queued for ``collection``, dead ones included (oldest first)."""
        with self._lock:
            rows = self._exec(
                f"SELECT doc_id, payload FROM outbox WHERE collection = ? AND {_LIVE} ORDER BY seq",
                (collection,),
            ).fetchall()
        return {str(d): dict(json.loads(payload).get("metadata") or {}) for d, payload in rows}

    def depth(self, collection: str | None = None) -> int:
        """How many documents wait to be sent (for one collection, or in all); dead rows are not counted."""
        with self._lock:
            if collection is None:
                row = self._exec("SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()
            else:
                row = self._exec(
                    "SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND collection = ?", (collection,)
                ).fetchone()
        return int(row[0])

    def dead_count(self, collection: str | None = None) -> int:
        """How many rows are dead (for one collection, or in all)."""
        with self._lock:
            if collection is None:
                row = self._exec("SELECT COUNT(*) FROM outbox WHERE state = 'dead'").fetchone()
            else:
                row = self._exec(
                    "SELECT COUNT(*) FROM outbox WHERE state = 'dead' AND collection = ?", (collection,)
                ).fetchone()
        return int(row[0])

    def stats(self) -> dict[str, Any]:
        """Depth per collection, dead rows per collection, oldest age in seconds and the most recent errors."""
        with self._lock:
            rows = self._exec(
                "SELECT collection, COUNT(*) FROM outbox WHERE state = 'pending' GROUP BY collection"
            ).fetchall()
            dead = self._exec(
                "SELECT collection, COUNT(*) FROM outbox WHERE state = 'dead' GROUP BY collection"
            ).fetchall()
            oldest = self._exec("SELECT MIN(enqueued_at) FROM outbox WHERE state = 'pending'").fetchone()[0]
            err = self._exec(
                "SELECT last_error FROM outbox WHERE last_error IS NOT NULL AND state = 'pending' "
                "ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            dead_err = self._exec(
                "SELECT last_error FROM outbox WHERE state = 'dead' ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            leased = self._exec(
                f"SELECT COUNT(*) FROM outbox WHERE lease_until >= ? AND {_LIVE}", (time.time(),)
            ).fetchone()
        return {
            "path": str(self.path) if self.path else ":memory:",
            "depth": sum(int(n) for _, n in rows),
            "by_collection": {c: int(n) for c, n in rows},
            "oldest_age_s": round(time.time() - oldest, 3) if oldest is not None else None,
            "last_error": err[0] if err else None,
            "leased": int(leased[0]),
            "dead": sum(int(n) for _, n in dead),
            "dead_by_collection": {c: int(n) for c, n in dead},
            "dead_last_error": dead_err[0] if dead_err else None,
        }


__all__ = ["OutboxItem", "OutboxReads"]
