"""The outbox's SQLite file: its schema, the in-place migration of older files, read-only opening,
the documents' JSON form and the drainers' owner ids. :mod:`.outbox` holds the queue's operations.

The ``batch_jobs`` and ``batch_rows`` tables (:mod:`.outbox_jobs`) keep each Batch API job a drainer
submitted: its name, and the rows it holds by position with the generation each had, so a restarted
drainer polls the job again instead of submitting its rows twice. Both are created on open; an older
file gains them with no change to its rows.

The ``findings`` table keeps every ingested document's PII findings (kinds and offsets, never the text),
keyed by id with the content hash and detector version they hold for, so re-indexing an unchanged
document runs no model pass (:meth:`Outbox.stored_findings`).

Every column added since the first release is added on open with a default that reads an older
row correctly (``ALTER TABLE ... ADD COLUMN``), so an outbox written by any earlier version keeps
its rows and works at once; a read-only open of an older file copies it into memory instead.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import sqlite3
from pathlib import Path
from typing import Any

from ..documents import Document
from ..errors import StoreError
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
    lease_owner TEXT,
    lease_until REAL NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending',
    generation INTEGER NOT NULL DEFAULT 0,
    error_kind TEXT,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    findings TEXT,
    detector_version TEXT,
    UNIQUE (collection, doc_id)
);
CREATE TABLE IF NOT EXISTS findings (
    collection TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    detector_version TEXT NOT NULL,
    findings TEXT NOT NULL,
    PRIMARY KEY (collection, doc_id)
);
CREATE TABLE IF NOT EXISTS batch_jobs (
    token TEXT PRIMARY KEY,
    collection TEXT NOT NULL,
    job_name TEXT,
    dims INTEGER NOT NULL,
    created_at REAL NOT NULL,
    polls INTEGER NOT NULL DEFAULT 0,
    last_state TEXT,
    poll_owner TEXT,
    poll_until REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS batch_rows (
    token TEXT NOT NULL,
    position INTEGER NOT NULL,
    doc_id TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    generation INTEGER NOT NULL,
    PRIMARY KEY (token, position)
);
CREATE TABLE IF NOT EXISTS tombstones (
    collection TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    removed_at REAL NOT NULL,
    PRIMARY KEY (collection, doc_id)
);
"""
ADDED_COLUMNS = {
    # leases (several drainers)
    "lease_owner": "ALTER TABLE outbox ADD COLUMN lease_owner TEXT",
    "lease_until": "ALTER TABLE outbox ADD COLUMN lease_until REAL NOT NULL DEFAULT 0",
    # 'pending' (to send), 'dead' (the cloud refused it for good) or 'deleted' (a tombstone row a
    # drainer holds: the document was deleted while it was being sent, see Outbox.discard)
    "state": "ALTER TABLE outbox ADD COLUMN state TEXT NOT NULL DEFAULT 'pending'",
    # bumped by every change of the row's document (a new text, a delete, an ingest after a delete):
    # a drainer may complete a row only if it is still the generation it claimed
    "generation": "ALTER TABLE outbox ADD COLUMN generation INTEGER NOT NULL DEFAULT 0",
    "error_kind": "ALTER TABLE outbox ADD COLUMN error_kind TEXT",  # 'permanent' or 'transient'
    "next_attempt_at": "ALTER TABLE outbox ADD COLUMN next_attempt_at REAL NOT NULL DEFAULT 0",
    # the document's PII findings (JSON, see edgeroute.framework.pii.stored) and the detector version
    # they were computed under: the drain re-checks the policy from them without running the model.
    # NULL in rows queued by an older release: the drain runs detection for those.
    "findings": "ALTER TABLE outbox ADD COLUMN findings TEXT",
    "detector_version": "ALTER TABLE outbox ADD COLUMN detector_version TEXT",
}
_BASE_COLUMNS = (
    "seq",
    "collection",
    "doc_id",
    "content_hash",
    "payload",
    "enqueued_at",
    "attempts",
    "last_error",
)


def create_schema(db: sqlite3.Connection) -> None:
    """Create the tables, or bring an older outbox file up to date in place (its rows are kept)."""
    db.executescript(_SCHEMA)
    have = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
    for column, ddl in ADDED_COLUMNS.items():
        if column not in have:
            db.execute(ddl)


def new_owner_id() -> str:
    """``host:pid:random``: unique per drainer, and it says whether the owner may still be alive."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


def owner_is_dead(owner: str) -> bool:
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


def open_read_only(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    """The outbox for reading only: never created, never written. A missing file reads as empty; a file
    in a directory this process cannot write (no WAL index can be made) is read as immutable; a file
    from an older version (columns missing) is copied into memory with the current schema."""
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
            if ADDED_COLUMNS.keys() - have:  # an older outbox: read it as the current schema
                db.close()
                db = sqlite3.connect(":memory:", uri=True, check_same_thread=False, isolation_level=None)
                db.executescript(_SCHEMA)
                db.execute("ATTACH DATABASE ? AS old", (f"file:{path}?mode={mode}",))
                columns = ", ".join(c for c in (*_BASE_COLUMNS, *ADDED_COLUMNS) if c in have)
                db.execute(f"INSERT INTO outbox ({columns}) SELECT {columns} FROM old.outbox")
            return db
        except sqlite3.Error:
            continue
    raise StoreError(f"outbox {path} cannot be read; check its permissions")


__all__ = [
    "ADDED_COLUMNS",
    "create_schema",
    "document_from_json",
    "document_to_json",
    "new_owner_id",
    "open_read_only",
    "owner_is_dead",
]
