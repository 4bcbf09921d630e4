"""The vector store: ChromaDB collections bound to one embedding space each.

A :class:`VectorStore` wraps a Chroma client (embedded ``PersistentClient``, a ``chroma run``
server through ``HttpClient``, or an in-memory client for tests). Every :class:`Collection` records
its :class:`~edgeroute.framework.spaces.EmbeddingSpace` in the Chroma collection metadata and
refuses vectors or queries from another space with :class:`SpaceMismatchError`. Each record keeps
the content hash of what was embedded (metadata key ``_content_hash``), so re-indexing can skip
unchanged documents (:meth:`Collection.stale_ids`).

Chroma errors are translated into the edgeroute tree (:class:`StoreError` and subclasses);
malformed calls raise :class:`InputError` before anything is written.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import tempfile
import threading
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CollectionNotFoundError, InputError, StoreError
from ..spaces import EmbeddingSpace
from .collection import CONTENT_HASH_KEY, Collection, StoredRecord, translated
from .lock import WriterLock, acquire_writer_lock, holds_lock

logger = logging.getLogger(__name__)

INDEX_SUFFIXES = (".edge", ".cloud")
"""A logical collection ``NAME`` is stored as the Chroma collections ``NAME.edge`` and ``NAME.cloud``."""

_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]*[a-zA-Z0-9]$")
_IPV4_RE = re.compile(r"^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$")
_MAX_NAME = 512
_MAX_LOGICAL_NAME = _MAX_NAME - max(len(s) for s in INDEX_SUFFIXES)
_FALLBACK_BATCH = 1000  # used when a client cannot report its limit


def _check_name(name: object, max_len: int, what: str) -> str:
    if not isinstance(name, str):
        raise InputError(f"{what} must be a string, got {type(name).__name__}")
    problem = None
    if not 3 <= len(name) <= max_len:
        problem = f"it has {len(name)} characters; use 3 to {max_len}"
    elif not _NAME_RE.match(name):
        problem = "use only letters, digits, '.', '_' and '-', and start and end with a letter or digit"
    elif ".." in name:
        problem = "it contains '..'"
    elif _IPV4_RE.match(name):
        problem = "it looks like an IPv4 address"
    if problem:
        raise InputError(f"invalid {what} {name!r}: {problem} (for example 'my-docs').")
    return name


def validate_collection_name(name: str) -> str:
    """Check a Chroma collection name (3-512 chars of ``[a-zA-Z0-9._-]``, alphanumeric at both ends)."""
    return _check_name(name, _MAX_NAME, "collection name")


def validate_logical_name(name: str) -> str:
    """Check a user-given logical collection name; it must leave room for the ``.edge``/``.cloud`` suffix."""
    return _check_name(name, _MAX_LOGICAL_NAME, "collection name")


def index_collection_name(name: str, index: str) -> str:
    """The Chroma collection holding one index (``"edge"`` or ``"cloud"``) of logical collection ``name``."""
    if f".{index}" not in INDEX_SUFFIXES:
        raise InputError(f"index must be 'edge' or 'cloud', got {index!r}")
    return f"{validate_logical_name(name)}.{index}"


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    """A row of :meth:`VectorStore.describe`; ``space`` is None when edgeroute did not create it."""

    name: str
    space: EmbeddingSpace | None
    count: int


def _settings() -> Any:
    from chromadb.config import Settings

    # Chroma's defaults (its env vars apply): Chroma allows one client configuration per path in a
    # process, so anything else would clash with a user's own PersistentClient on the same directory.
    # (Its product telemetry is a no-op in chromadb 1.5.)
    return Settings()


class VectorStore:
    """A Chroma client plus edgeroute's rules; see :meth:`persistent`, :meth:`http`, :meth:`ephemeral`."""

    def __init__(
        self, client: Any, location: str, *, read_only: bool = False, writer_lock: WriterLock | None = None
    ) -> None:
        self._client = client
        self.location = location
        self.read_only = read_only
        self.snapshot: Path | None = None  # the temporary copy a read-only store was opened from
        self.writer_lock = writer_lock
        """This process's share of the embedded store's writer lock (None: read-only, a server, in memory)."""
        self._max_batch: int | None = None
        self._closed = False
        self._reader_slot: tuple[str, int] | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the Chroma client, then let go of the writer lock (idempotent).

        In this order: Chroma keeps the store's state in memory (HNSW segments, one shared system per
        path), so the client is dropped while the lock is still held; the next writer, here or in
        another process, loads the store from disk. Writes through a closed store raise
        :class:`StoreError`.
        """
        if self._closed:
            return
        self._closed = True
        if self._finalizer is not None:
            self._finalizer()
        else:
            _close_parts(self._client, self.location, self._reader_slot, self.writer_lock)

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def require_writable(self, what: str) -> None:
        """Refuse a write on a store opened read-only or already closed (:class:`StoreError` saying so)."""
        if self._closed:
            raise StoreError(f"cannot {what}: the store at {self.location} is closed; open it again")
        if self.read_only:
            where = " (the directory is not writable)" if self.snapshot is not None else ""
            raise StoreError(
                f"cannot {what}: the store at {self.location} was opened read-only{where}; "
                "open it writable to index or delete"
            )

    @classmethod
    def persistent(
        cls, path: str | Path, *, read_only: bool = False, lock_timeout_s: float | None = None
    ) -> VectorStore:
        """An embedded store in directory ``path`` (created if missing, unless ``read_only``).

        Raises :class:`StoreError` when the directory cannot be created or written; nothing in it is touched.

        Opened writable, the store takes the directory's writer lock first (:mod:`.lock`), waiting at
        most ``lock_timeout_s`` (None: ``$EDGEROUTE_LOCK_TIMEOUT_S`` or 10 s) for another process to
        close it, then raises :class:`~.lock.StoreLockedError` naming that process; :meth:`close` lets
        go. Stores on one directory in one process share the lock (and Chroma's state).

        With ``read_only`` the directory must exist, writes through this store are refused and no lock
        is taken (a reader never waits). Unless this process writes the store too, a reader gets Chroma
        state of its own, loaded at open, so a writer elsewhere never leaves it half-stale. When the
        directory itself cannot be written (a read-only mount, another user's store), Chroma, which
        writes on open, is given a private temporary snapshot of it instead, so queries and listings
        still work and the original is never touched.
        """
        import chromadb

        p = Path(path).expanduser()
        fix = "choose a directory you can write to (--store DIR) or fix its permissions"
        if p.exists() and not p.is_dir():
            raise StoreError(f"store path {p} is a file, not a directory: {fix}.")
        if read_only and not p.is_dir():
            raise StoreError(
                f"no store at {p}: index documents first (`edgeroute index PATH --store {p}`), "
                "or point --store / $EDGEROUTE_STORE at an existing one"
            )
        opened = p
        try:
            if not read_only:
                p.mkdir(parents=True, exist_ok=True)
            _probe_writable(p)
        except OSError as exc:
            if not read_only:
                raise StoreError(f"store path {p} is not writable ({exc.strerror or exc}): {fix}.") from exc
            opened = _snapshot(p)
        key = os.path.realpath(opened)
        lock: WriterLock | None = None
        slot: tuple[str, int] | None = None
        if not read_only:
            lock = acquire_writer_lock(key, timeout_s=lock_timeout_s, on_fresh=lambda: _detach_system(key))
            chroma_path = key
        elif holds_lock(key):
            chroma_path = key  # this process writes it: read what it wrote, through the same state
        else:
            slot = _reader_slot(key)
            chroma_path = _reader_path(slot)
        try:
            with translated(f"opening the Chroma store at {p}"):
                client = chromadb.PersistentClient(path=chroma_path, settings=_settings())
        except BaseException:
            if lock is not None:
                lock.release()
            if slot is not None:
                _free_reader_slot(slot)
            raise
        store = cls(client, str(p), read_only=read_only, writer_lock=lock)
        store._reader_slot = slot
        # A store dropped without close() (``VectorStore.persistent(p).describe()``) still closes its
        # client and lets go of the lock when it is collected (its collections keep it alive till then).
        store._finalizer = weakref.finalize(store, _close_parts, client, str(p), slot, lock)
        if slot is None:
            with _slots_lock:
                _sharing.setdefault(key, weakref.WeakSet()).add(store)
        store.snapshot = opened if opened != p else None
        return store

    @classmethod
    def http(cls, host: str = "127.0.0.1", port: int = 8000) -> VectorStore:
        """A store served by ``chroma run --path DIR --host HOST --port PORT``; checks the server answers."""
        import chromadb

        where = f"http://{host}:{port}"
        try:
            client = chromadb.HttpClient(host=host, port=port, settings=_settings())
            client.heartbeat()
        except Exception as exc:
            raise StoreError(
                f"cannot reach the Chroma server at {where} ({exc}): start one with "
                f"`chroma run --path DIR --host {host} --port {port}`, or check host and port."
            ) from exc
        return cls(client, where)

    @classmethod
    def ephemeral(cls) -> VectorStore:
        """An in-memory store, private to this object (each call gets its own Chroma database)."""
        import chromadb

        # Chroma shares one in-memory system per process; a database of our own keeps stores apart.
        database = "edgeroute_" + uuid.uuid4().hex
        with translated("creating an in-memory Chroma store"):
            chromadb.AdminClient(_settings()).create_database(database)
            client = chromadb.EphemeralClient(settings=_settings(), database=database)
        return cls(client, f"memory:{database}")

    @property
    def max_batch_size(self) -> int:
        """The most records Chroma accepts in one call; writes are split below it."""
        if self._max_batch is None:
            try:
                size = int(self._client.get_max_batch_size())
            except Exception:
                size = -1
            self._max_batch = size if size > 0 else _FALLBACK_BATCH
        return self._max_batch

    def create_collection(self, name: str, space: EmbeddingSpace, *, exist_ok: bool = True) -> Collection:
        """Create collection ``name`` bound to ``space`` (cosine distance), or open it if it exists.

        An existing collection bound to another space raises :class:`SpaceMismatchError` naming both;
        with ``exist_ok=False`` an existing collection raises :class:`StoreError`.
        """
        validate_collection_name(name)
        self.require_writable(f"create collection {name!r}")
        if not isinstance(space, EmbeddingSpace):
            raise InputError(f"space must be an EmbeddingSpace, got {type(space).__name__}")
        if not exist_ok and name in self.list_collections():
            raise StoreError(
                f"collection {name!r} already exists in {self.location}: pick another name, "
                "delete it first, or pass exist_ok=True to reuse it."
            )
        metadata: dict[str, Any] = {**space.to_metadata(), "edgeroute_store": 1}
        with translated(f"creating collection {name!r} in {self.location}"):
            raw = self._client.get_or_create_collection(
                name=name,
                metadata=metadata,
                configuration={"hnsw": {"space": "cosine"}},
                embedding_function=None,
            )
        col = self._wrap(raw)
        col.space.require_same(space, f"collection {name!r}")
        return col

    def get_collection(self, name: str) -> Collection:
        """Open a collection; an unknown name raises :class:`CollectionNotFoundError` listing the others."""
        if not isinstance(name, str) or not name:
            raise InputError("collection name must be a non-empty string")
        try:
            raw = self._client.get_collection(name=name, embedding_function=None)
        except Exception as exc:
            if "does not exist" not in str(exc) and type(exc).__name__ != "NotFoundError":
                raise StoreError(f"opening collection {name!r} in {self.location} failed: {exc}") from exc
            existing = self.list_collections()
            listed = ", ".join(repr(n) for n in existing) if existing else "none yet"
            raise CollectionNotFoundError(
                f"no collection {name!r} in {self.location} (existing: {listed}): "
                "check the name and --store, or index documents into it first."
            ) from exc
        return self._wrap(raw)

    def list_collections(self) -> list[str]:
        """Names of every collection in the store, sorted."""
        with translated(f"listing collections in {self.location}"):
            return sorted(c.name for c in self._client.list_collections())

    def logical_collections(self) -> list[str]:
        """The logical collections in the store (``NAME`` for every ``NAME.edge``/``NAME.cloud``), sorted."""
        names = set()
        for name in self.list_collections():
            for suffix in INDEX_SUFFIXES:
                if name.endswith(suffix):
                    names.add(name[: -len(suffix)])
        return sorted(names)

    def describe(self) -> list[CollectionInfo]:
        """Every collection with its space (None when not created by edgeroute) and record count."""
        out = []
        with translated(f"listing collections in {self.location}"):
            for raw in sorted(self._client.list_collections(), key=lambda c: c.name):
                space = EmbeddingSpace.from_metadata(dict(raw.metadata or {}))
                out.append(CollectionInfo(raw.name, space, int(raw.count())))
        return out

    def delete_collection(self, name: str) -> None:
        """Delete a collection and its records; an unknown name raises :class:`CollectionNotFoundError`."""
        self.get_collection(name)
        self.require_writable(f"delete collection {name!r}")
        with translated(f"deleting collection {name!r} in {self.location}"):
            self._client.delete_collection(name=name)

    def _wrap(self, raw: Any) -> Collection:
        space = EmbeddingSpace.from_metadata(dict(raw.metadata or {}))
        if space is None:
            raise StoreError(
                f"collection {raw.name!r} in {self.location} is not bound to an embedding space "
                "(it was not created by edgeroute): index into a new collection instead."
            )
        return Collection(raw, space, self)

    def __repr__(self) -> str:
        return f"VectorStore({self.location!r})"


def _close_parts(
    client: Any, location: str, slot: tuple[str, int] | None, lock: WriterLock | None
) -> None:
    try:
        close = getattr(client, "close", None)
        if callable(close):
            with translated(f"closing the store at {location}"):
                close()
    finally:
        if slot is not None:
            _free_reader_slot(slot)
        if lock is not None:
            lock.release()


# Chroma shares one in-memory system per path string in a process (and HNSW state with it). A writer
# must start from disk under its lock, and a reader opened when this process does not write must not
# hand stale state to one that does later: so writers use the canonical path, readers a spelling of
# their own ("DIR/./", "DIR/././", ...: the same directory to the OS, another system to Chroma).
_slots_lock = threading.Lock()
_reader_slots: dict[str, set[int]] = {}
_sharing: dict[str, weakref.WeakSet[VectorStore]] = {}  # stores on the canonical path's system


def _reader_slot(key: str) -> tuple[str, int]:
    with _slots_lock:
        used = _reader_slots.setdefault(key, set())
        n = next(i for i in range(1, len(used) + 2) if i not in used)
        used.add(n)
    return key, n


def _free_reader_slot(slot: tuple[str, int]) -> None:
    with _slots_lock:
        _reader_slots.get(slot[0], set()).discard(slot[1])


def _reader_path(slot: tuple[str, int]) -> str:
    return slot[0] + os.sep + ("." + os.sep) * slot[1]


def _detach_system(key: str) -> None:
    """Under a freshly taken writer lock: forget a Chroma system cached for ``key`` in this process.

    It was loaded before this process held the lock (by readers that shared a writer's state, or by
    the caller's own client), so it may predate another process's writes. Its clients keep it, and
    are marked closed so that closing them never stops the fresh one that replaces it.
    """
    import sys

    if "chromadb.api.shared_system_client" not in sys.modules:
        return  # no client was ever made in this process: no state to forget
    from chromadb.api.shared_system_client import SharedSystemClient

    with SharedSystemClient._refcount_lock:
        stale = SharedSystemClient._identifier_to_system.pop(key, None)
        SharedSystemClient._identifier_to_refcount.pop(key, None)
    if stale is not None:
        logger.info("store %s: dropped Chroma state loaded before this process took the writer lock", key)
        for store in list(_sharing.get(key, ())):
            store._client._closed = True  # see the docstring


def hold_writer_lock(path: str | Path, *, timeout_s: float | None = None) -> WriterLock:
    """This process's share of the writer lock of the embedded store in ``path`` (created if missing),
    taken as :meth:`VectorStore.persistent` takes it but without opening Chroma: a caller that holds
    it across opening and closing the store (``edgeroute index``) reads the store's files after Chroma
    let go of them, before any other writer can start. :class:`StoreError` when ``path`` cannot be
    created or written; :class:`~.lock.StoreLockedError` when another writer keeps it."""
    p = Path(path).expanduser()
    try:
        p.mkdir(parents=True, exist_ok=True)
        _probe_writable(p)
    except OSError as exc:
        raise StoreError(
            f"store path {p} is not writable ({exc.strerror or exc}): choose a directory you can write "
            "to (--store DIR) or fix its permissions."
        ) from exc
    key = os.path.realpath(p)
    return acquire_writer_lock(key, timeout_s=timeout_s, on_fresh=lambda: _detach_system(key))


def _probe_writable(p: Path) -> None:
    # A throw-away file: permission bits lie under root, ACLs and read-only mounts.
    fd, probe = tempfile.mkstemp(prefix=".edgeroute-probe-", dir=p)
    os.close(fd)
    Path(probe).unlink()


def _snapshot(p: Path) -> Path:
    """A private copy of a store Chroma may not write to, deleted when the process exits."""
    tmp = Path(tempfile.mkdtemp(prefix="edgeroute-ro-store-"))
    atexit.register(shutil.rmtree, tmp, True)
    copy = tmp / "store"
    with translated(f"copying the read-only store at {p}"):
        shutil.copytree(p, copy, ignore=shutil.ignore_patterns("*.sqlite", "*.sqlite-*", "*.json", "*.jsonl"))
    size = sum(f.stat().st_size for f in copy.rglob("*") if f.is_file())
    logger.info("store %s is not writable; reading a temporary snapshot of it (%.1f MB)", p, size / 1e6)
    return copy


__all__ = [
    "CONTENT_HASH_KEY",
    "INDEX_SUFFIXES",
    "Collection",
    "CollectionInfo",
    "StoredRecord",
    "VectorStore",
    "hold_writer_lock",
    "index_collection_name",
    "validate_collection_name",
    "validate_logical_name",
]
