"""Re-indexing unchanged PATHs without opening the store: a record of the last ``edgeroute index`` run.

What users of LangChain's indexing API (a record manager) or LlamaIndex's ingestion cache expect of a
re-run over the same files: it knows they are unchanged without embedding anything. ``edgeroute
index`` already embeds nothing then (content hashes), but still imports chromadb and reads every
stored record, which is most of its cost. So after each run on an embedded store the run's outcome is
recorded, and a later run with the same inputs answers from the record, if and only if:

- the **inputs** are the same: every document the PATHs load now (id, content hash, title,
  sensitivity, metadata; so a changed, added, removed or relabelled file, or a new chunking, differs),
  and everything else the run depends on (store, collection, outbox, model directory and its manifest,
  policy file bytes, edge and cloud settings, sensitivity, ``--prune``, ``--skip-bad``, ``--id-prefix``,
  the edgeroute version). No file may be unreadable (``--skip-bad`` runs with bad files are re-run);
- the **store** is as the run left it: a digest of Chroma's own tables (its log position per segment,
  collections, segments and their metadata, embedding count and last row) and of the collection's
  outbox rows, findings, tombstones and Batch API jobs, taken under the writer lock after the store
  was closed. Any write by anyone (another ``index``, ``delete``, ``sync``, a crash midway) moves
  the log or the rows, so the digest differs and the run is done in full;
- the run **would write nothing**: the cloud is absent or ``--offline`` (so no drain runs), which left
  every cloud-bound document queued in the outbox, where re-queueing it changes nothing.

Otherwise (a Chroma server with ``--chroma-url``, the cloud online, any difference) the run is done in
full, and recorded at its end. The record is dropped before a full run writes anything, and written
only after the store is closed, so a run killed midway leaves none. Checking costs reading the files
(as any run does) and two small SQLite reads: no chromadb, no model, no writes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..documents import Document
from ..pii.stored import rules_version
from ..router.lifecycle import source_key
from ..settings import RouterSettings
from .sources import Loaded

RECORD_FILE = ".edgeroute-index-runs.json"
"""In the store directory: ``{"format": 1, "runs": {key: record}}``, the most recent runs first."""
FORMAT = 1
MAX_RUNS = 64
CHROMA_FILE = "chroma.sqlite3"
HEAD_FILE = Path(__file__).resolve().parent.parent / "pii" / "data" / "head.npz"


@dataclass(frozen=True, slots=True)
class RunRecord:
    """What a run left behind: its inputs' digest, the store's digest after it, and its report's counts."""

    docs: str
    state: str
    documents: int
    edge_documents: int
    private: int
    not_indexable: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "docs": self.docs,
            "state": self.state,
            "documents": self.documents,
            "edge_documents": self.edge_documents,
            "private": self.private,
            "not_indexable": self.not_indexable,
            "at": time.time(),
        }

    @classmethod
    def from_json(cls, raw: Any) -> RunRecord | None:
        try:
            return cls(
                str(raw["docs"]),
                str(raw["state"]),
                int(raw["documents"]),
                int(raw["edge_documents"]),
                int(raw["private"]),
                [str(i) for i in raw["not_indexable"]],
            )
        except (KeyError, TypeError, ValueError):
            return None


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _file_digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def run_key(
    settings: RouterSettings,
    paths: Sequence[Path],
    *,
    sensitivity: str,
    prune: bool,
    skip_bad: bool,
    id_prefix: str | None,
) -> str | None:
    """The digest of everything a run depends on besides its documents and the store's contents, or
    None when no run with these settings is ever answered from a record (a Chroma server, the cloud
    online, no model directory to be found)."""
    if settings.chroma_url or (settings.cloud_configured and not settings.offline):
        return None
    model: Any = None
    if settings.edge == "model":
        from ..edge.model_dir import MANIFEST, resolve_model_dir
        from ..errors import EdgeRouteError

        try:
            directory = resolve_model_dir(settings.model_dir, download=False)
        except EdgeRouteError:
            return None
        model = [os.path.realpath(directory), _file_digest(directory / MANIFEST)]
    policy = None
    if settings.policy_file is not None:
        policy = [os.path.realpath(settings.policy_file), _file_digest(settings.policy_file)]
    from importlib.metadata import PackageNotFoundError, version

    release: dict[str, str | None] = {}
    # chromadb's too: the store digest reads its tables, whose meaning an upgrade may change.
    for package in ("edgeroute", "chromadb"):
        try:
            release[package] = version(package)
        except PackageNotFoundError:
            release[package] = None
    return _digest(
        {
            "format": FORMAT,
            "versions": release,
            "store": os.path.realpath(settings.store),
            "collection": settings.collection,
            "outbox": os.path.realpath(settings.outbox_path),
            "edge": [settings.edge, settings.edge_dims, model],
            "policy": policy,
            # The pattern and secret rules and the shipped head decide the stored findings: an edited
            # rule or a retrained head (an editable checkout, no version bump) is a full run.
            "detector": [rules_version(), _file_digest(HEAD_FILE)],
            "cloud": [
                settings.cloud_configured,
                settings.offline,
                settings.base_url,
                settings.cloud_model,
                settings.cloud_dims,
            ],
            "paths": [source_key(p) for p in paths],
            "options": [sensitivity, prune, skip_bad, id_prefix],
        }
    )


def docs_digest(loaded: Loaded) -> str:
    """The digest of every document the PATHs loaded (in order) and of the files that held none."""

    def one(d: Document) -> list[Any]:
        return [d.id, d.content_hash(), d.title, d.sensitivity, sorted(d.metadata.items())]

    return _digest(
        {
            "docs": [one(d) for d in loaded.docs],
            "origins": sorted((o, sorted(ids)) for o, ids in loaded.origins.items()),
            "problems": [(p.path, p.kind, p.reason) for p in loaded.problems],
        }
    )


@contextlib.contextmanager
def _sqlite(path: Path, *, wal: bool = False) -> Iterator[sqlite3.Connection]:
    """A connection that only reads ``path`` (which must exist: it is never created here). A WAL file
    (the outbox) is opened read-write, though only read, so that closing it removes the ``-wal`` and
    ``-shm`` files a read-only connection would leave behind."""
    if not path.is_file():
        raise FileNotFoundError(path)
    db = sqlite3.connect(path if wal else f"file:{path}?mode=ro", uri=not wal, timeout=5.0)
    try:
        yield db
    finally:
        db.close()


def _rows(db: sqlite3.Connection, sql: str, args: Sequence[Any] = ()) -> list[list[Any]]:
    return [list(r) for r in db.execute(sql, args).fetchall()]


def store_state(settings: RouterSettings) -> tuple[str, int] | None:
    """The digest of the embedded store's contents that any write changes, and the collection's outbox
    depth (pending rows), read without Chroma; None when it cannot be read (then no record is used)."""
    name = settings.collection
    try:
        with _sqlite(settings.store / CHROMA_FILE) as db:
            chroma = {
                # Every add, update and delete is a new log entry: its position only grows (the log
                # keeps its last entry when purged), and each segment records how far it has applied it.
                "log": _rows(db, "SELECT max(seq_id), count(*) FROM embeddings_queue"),
                "applied": _rows(db, "SELECT segment_id, seq_id FROM max_seq_id ORDER BY segment_id"),
                "collections": _rows(
                    db,
                    "SELECT id, name, dimension, database_id, config_json_str FROM collections ORDER BY id",
                ),
                "collection_metadata": _rows(db, "SELECT * FROM collection_metadata ORDER BY 1, 2"),
                "segments": _rows(db, "SELECT id, type, scope, collection FROM segments ORDER BY id"),
                "embeddings": _rows(db, "SELECT count(*), max(id) FROM embeddings"),
                "migrations": _rows(db, "SELECT * FROM migrations ORDER BY 1, 2"),
            }
        with _sqlite(settings.outbox_path, wal=True) as db:
            rows = _rows(
                db,
                "SELECT seq, doc_id, content_hash, enqueued_at, attempts, last_error, lease_owner, "
                "lease_until, state, generation, error_kind, next_attempt_at, findings, detector_version "
                "FROM outbox WHERE collection = ? ORDER BY seq",
                (name,),
            )
            outbox = {
                "rows": rows,
                "findings": _rows(
                    db,
                    "SELECT doc_id, content_hash, detector_version, findings FROM findings "
                    "WHERE collection = ? ORDER BY doc_id",
                    (name,),
                ),
                "tombstones": _rows(
                    db,
                    "SELECT doc_id, removed_at FROM tombstones WHERE collection = ? ORDER BY doc_id",
                    (name,),
                ),
                "jobs": _rows(
                    db,
                    "SELECT token, job_name, last_state, polls FROM batch_jobs WHERE collection = ? ORDER BY token",
                    (name,),
                ),
            }
    except (OSError, sqlite3.Error):
        return None
    depth = sum(1 for r in rows if r[8] == "pending")
    return _digest({"chroma": chroma, "outbox": outbox}), depth


def known_hashes(settings: RouterSettings) -> set[str]:
    """Content hashes of the collection's documents whose findings ingest stored (every document it
    embedded, kept with the outbox): a document whose hash is not among them is most likely to be
    embedded by this run. Empty when there is no outbox yet."""
    try:
        with _sqlite(settings.outbox_path, wal=True) as db:
            rows = db.execute(
                "SELECT content_hash FROM findings WHERE collection = ?", (settings.collection,)
            )
            return {str(h) for (h,) in rows.fetchall()}
    except (OSError, sqlite3.Error):
        return set()


def _record_path(settings: RouterSettings) -> Path:
    return settings.store / RECORD_FILE


def _read_runs(settings: RouterSettings) -> dict[str, Any]:
    try:
        raw = json.loads(_record_path(settings).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict) or raw.get("format") != FORMAT or not isinstance(raw.get("runs"), dict):
        return {}
    return dict(raw["runs"])


def _write_runs(settings: RouterSettings, runs: dict[str, Any]) -> None:
    """Replace the record file at once (a reader sees the old file or the new one, never a torn one)."""
    path = _record_path(settings)
    keep = dict(sorted(runs.items(), key=lambda kv: -float(kv[1].get("at", 0)))[:MAX_RUNS])
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps({"format": FORMAT, "runs": keep}), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


def recorded(settings: RouterSettings, key: str) -> RunRecord | None:
    return RunRecord.from_json(_read_runs(settings).get(key))


def forget(settings: RouterSettings, key: str) -> None:
    """Drop the record of ``key`` before a full run writes anything."""
    runs = _read_runs(settings)
    if runs.pop(key, None) is not None:
        _write_runs(settings, runs)


def remember(settings: RouterSettings, key: str, record: RunRecord) -> None:
    runs = _read_runs(settings)
    runs[key] = record.to_json()
    _write_runs(settings, runs)


__all__ = [
    "RECORD_FILE",
    "RunRecord",
    "docs_digest",
    "forget",
    "known_hashes",
    "recorded",
    "remember",
    "run_key",
    "store_state",
]
