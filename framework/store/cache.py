"""An embedding cache keyed by (space fingerprint, task, content hash), and an embedder that uses it.

:class:`EmbeddingCache` keeps vectors in an in-memory LRU and, when given a path, in SQLite (WAL
journal, so several processes can share one file: readers never block, writers wait up to
``busy_timeout``). Both tiers are bounded in bytes and evict the least recently used entries.
:class:`CachedEmbedder` wraps any :class:`~edgeroute.framework.embedder.Embedder` and embeds only
the texts the cache does not hold; edge and cloud embedders share one cache, the space fingerprint
keeps their vectors apart.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..aio import syncify, to_thread
from ..digest import sha256_text
from ..embedder import Embedder, Vectors
from ..errors import ConfigurationError, InputError
from ..spaces import EmbeddingSpace

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 2 * 1024**3
DEFAULT_MEMORY_BYTES = 64 * 1024**2
_ROW_OVERHEAD = 160  # key strings, SQLite row and index overhead, roughly; counts towards max_bytes
_SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (
    space TEXT NOT NULL, task TEXT NOT NULL, hash TEXT NOT NULL,
    dims INTEGER NOT NULL, vec BLOB NOT NULL, nbytes INTEGER NOT NULL, last_used REAL NOT NULL,
    PRIMARY KEY (space, task, hash)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS vectors_last_used ON vectors (last_used);
"""

Key = tuple[str, str, str]


def default_cache_path() -> Path:
    """``$EDGEROUTE_CACHE_DIR/embeddings.sqlite``, by default ``~/.cache/edgeroute/embeddings.sqlite``."""
    return (
        Path(os.environ.get("EDGEROUTE_CACHE_DIR", "~/.cache/edgeroute")).expanduser() / "embeddings.sqlite"
    )


def content_key(text: str, title: str | None, task: str) -> str:
    """sha256 of (title, text, task), JSON-encoded so different triples never collide by concatenation."""
    return sha256_text(json.dumps([title, text, task], ensure_ascii=False))


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A snapshot of the cache's counters. ``entries`` and ``bytes`` describe the durable tier when
    there is one (else the memory tier); ``hits`` and ``misses`` count lookups by this object."""

    hits: int
    misses: int
    hit_rate: float
    entries: int
    bytes: int
    max_bytes: int
    memory_entries: int
    memory_bytes: int
    evictions: int
    path: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _space_id(space: EmbeddingSpace | str) -> str:
    if isinstance(space, EmbeddingSpace):
        return space.fingerprint
    if isinstance(space, str) and space:
        return space
    raise InputError(f"space must be an EmbeddingSpace or its fingerprint, got {space!r}")


class EmbeddingCache:
    """Vectors by (space fingerprint, task, content hash), bounded by ``max_bytes``, LRU eviction.

    ``path=None`` keeps everything in memory. With a path the SQLite file is the store of record and
    an in-memory LRU of at most ``memory_bytes`` sits in front of it. Thread-safe.
    """

    def __init__(
        self, path: Path | None = None, max_bytes: int = DEFAULT_MAX_BYTES, *, memory_bytes: int | None = None
    ) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise InputError(f"max_bytes must be a positive integer, got {max_bytes!r}")
        self.path = Path(path).expanduser() if path is not None else None
        self.max_bytes = max_bytes
        self.memory_limit = min(max_bytes, DEFAULT_MEMORY_BYTES) if memory_bytes is None else memory_bytes
        if self.path is None:
            self.memory_limit = max_bytes
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self._lock = threading.Lock()
        self._mem: OrderedDict[Key, np.ndarray] = OrderedDict()
        self._mem_bytes = 0
        self._db: sqlite3.Connection | None = self._open(self.path) if self.path is not None else None

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        fix = "pass another cache path, or delete the file (it is only a cache)"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise ConfigurationError(f"cannot open the embedding cache at {path} ({exc}): {fix}.") from exc
        return db

    def close(self) -> None:
        """Close the SQLite connection (the memory tier is dropped too)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
            self._mem.clear()
            self._mem_bytes = 0

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def hit_rate(self) -> float:
        """Hits over lookups since this object was created (0.0 before any lookup)."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    # -- memory tier -------------------------------------------------------------------------------

    def _mem_put(self, key: Key, vec: np.ndarray) -> None:
        size = vec.nbytes + _ROW_OVERHEAD
        if size > self.memory_limit:
            return
        old = self._mem.pop(key, None)
        if old is not None:
            self._mem_bytes -= old.nbytes + _ROW_OVERHEAD
        self._mem[key] = vec
        self._mem_bytes += size
        while self._mem_bytes > self.memory_limit:
            _, dropped = self._mem.popitem(last=False)
            self._mem_bytes -= dropped.nbytes + _ROW_OVERHEAD
            if self._db is None:
                self.evictions += 1

    # -- public API --------------------------------------------------------------------------------

    def get_many(
        self, space: EmbeddingSpace | str, task: str, hashes: Sequence[str]
    ) -> list[np.ndarray | None]:
        """The cached vector for each hash, or None; counts hits and misses and refreshes last use."""
        sid = _space_id(space)
        out: list[np.ndarray | None] = [None] * len(hashes)
        with self._lock:
            missing: dict[str, list[int]] = {}
            for i, h in enumerate(hashes):
                key = (sid, task, h)
                vec = self._mem.get(key)
                if vec is not None:
                    self._mem.move_to_end(key)
                    out[i] = vec
                else:
                    missing.setdefault(h, []).append(i)
            if missing and self._db is not None:
                found = self._db_get(sid, task, list(missing))
                for h, vec in found.items():
                    self._mem_put((sid, task, h), vec)
                    for i in missing[h]:
                        out[i] = vec
            n_hit = sum(v is not None for v in out)
            self.hits += n_hit
            self.misses += len(hashes) - n_hit
        return out

    def get(self, space: EmbeddingSpace | str, task: str, content_hash: str) -> np.ndarray | None:
        """One vector or None (see :meth:`get_many`)."""
        return self.get_many(space, task, [content_hash])[0]

    def put_many(
        self, space: EmbeddingSpace | str, task: str, hashes: Sequence[str], vectors: Vectors
    ) -> None:
        """Store one vector per hash, then evict least recently used entries beyond ``max_bytes``."""
        sid = _space_id(space)
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[0] != len(hashes):
            raise InputError(f"need one vector per hash: {len(hashes)} hashes, vectors of shape {arr.shape}")
        with self._lock:
            for h, row in zip(hashes, arr, strict=True):
                vec = np.array(row, dtype=np.float32)  # own copy: callers may reuse their buffer
                vec.setflags(write=False)
                self._mem_put((sid, task, h), vec)
            if self._db is not None:
                now = time.time()
                rows = [
                    (sid, task, h, arr.shape[1], row.tobytes(), row.nbytes + _ROW_OVERHEAD, now)
                    for h, row in zip(hashes, arr, strict=True)
                ]
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
                    self._db_evict()
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise

    def put(self, space: EmbeddingSpace | str, task: str, content_hash: str, vector: np.ndarray) -> None:
        """Store one vector (see :meth:`put_many`)."""
        self.put_many(space, task, [content_hash], np.asarray(vector, dtype=np.float32)[None, :])

    def clear(self) -> None:
        """Drop every entry (both tiers); counters are kept."""
        with self._lock:
            self._mem.clear()
            self._mem_bytes = 0
            if self._db is not None:
                self._db.execute("DELETE FROM vectors")

    def stats(self) -> CacheStats:
        """Counters and sizes now."""
        with self._lock:
            if self._db is not None:
                entries, size = self._db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(nbytes), 0) FROM vectors"
                ).fetchone()
            else:
                entries, size = len(self._mem), self._mem_bytes
            return CacheStats(
                hits=self.hits,
                misses=self.misses,
                hit_rate=self.hit_rate,
                entries=int(entries),
                bytes=int(size),
                max_bytes=self.max_bytes,
                memory_entries=len(self._mem),
                memory_bytes=self._mem_bytes,
                evictions=self.evictions,
                path=str(self.path) if self.path else None,
            )

    # -- SQLite tier (called with the lock held) ---------------------------------------------------

    def _db_get(self, sid: str, task: str, hashes: list[str]) -> dict[str, np.ndarray]:
        assert self._db is not None
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(hashes), 500):  # stay under SQLite's bound-parameter limit
            part = hashes[start : start + 500]
            marks = ",".join("?" * len(part))
            for h, blob in self._db.execute(
                f"SELECT hash, vec FROM vectors WHERE space = ? AND task = ? AND hash IN ({marks})",
                [sid, task, *part],
            ):
                vec = np.frombuffer(blob, dtype=np.float32).copy()
                vec.setflags(write=False)
                found[h] = vec
        if found:
            now = time.time()
            self._db.executemany(
                "UPDATE vectors SET last_used = ? WHERE space = ? AND task = ? AND hash = ?",
                [(now, sid, task, h) for h in found],
            )
        return found

    def _db_evict(self) -> None:
        assert self._db is not None
        (total,) = self._db.execute("SELECT COALESCE(SUM(nbytes), 0) FROM vectors").fetchone()
        if total <= self.max_bytes:
            return
        # Evict down to 90% so that a full cache does not pay for an eviction on every write.
        excess = total - int(self.max_bytes * 0.9)
        victims: list[tuple[str, str, str]] = []
        freed = 0
        for space, task, h, nbytes in self._db.execute(
            "SELECT space, task, hash, nbytes FROM vectors ORDER BY last_used"
        ):
            victims.append((space, task, h))
            freed += nbytes
            if freed >= excess:
                break
        self._db.executemany("DELETE FROM vectors WHERE space = ? AND task = ? AND hash = ?", victims)
        for key in victims:
            old = self._mem.pop(key, None)
            if old is not None:
                self._mem_bytes -= old.nbytes + _ROW_OVERHEAD
        self.evictions += len(victims)
        logger.debug("embedding cache: evicted %d entries (%d bytes)", len(victims), freed)


class CachedEmbedder:
    """An :class:`~edgeroute.framework.embedder.Embedder` that consults ``cache`` before ``inner``.

    Each text is keyed by ``(inner.space_for(dims).fingerprint, task, content_key(text, title, task))``
    with task ``"query"`` or ``"document"``; only the misses reach ``inner`` (in one call, duplicates
    embedded once). The core is async: cache I/O runs in a worker thread, ``inner`` through its async
    methods; the sync methods run that same core through the portal (:mod:`edgeroute.framework.aio`).
    """

    def __init__(self, inner: Embedder, cache: EmbeddingCache) -> None:
        self.inner = inner
        self.cache = cache

    @property
    def space(self) -> EmbeddingSpace:
        return self.inner.space

    def space_for(self, dims: int | None = None) -> EmbeddingSpace:
        return self.inner.space_for(dims)

    async def aembed_queries(self, texts: Sequence[str], *, dims: int | None = None) -> Vectors:
        return await self._aembed(texts, None, "query", dims)

    async def aembed_documents(
        self, texts: Sequence[str], *, titles: Sequence[str | None] | None = None, dims: int | None = None
    ) -> Vectors:
        return await self._aembed(texts, titles, "document", dims)

    embed_queries = syncify(aembed_queries)
    embed_documents = syncify(aembed_documents)

    async def _aembed(
        self, texts: Sequence[str], titles: Sequence[str | None] | None, task: str, dims: int | None
    ) -> Vectors:
        text_list, title_list = _check_inputs(texts, titles)
        space = self.inner.space_for(dims)
        keys = [content_key(t, ti, task) for t, ti in zip(text_list, title_list, strict=True)]
        cached = await to_thread(self.cache.get_many, space, task, keys)
        found = {k: v for k, v in zip(keys, cached, strict=True) if v is not None}
        misses: dict[str, tuple[str, str | None]] = {}  # key -> (text, title), duplicates once
        for k, t, ti in zip(keys, text_list, title_list, strict=True):
            if k not in found:
                misses.setdefault(k, (t, ti))
        if misses:
            miss_texts = [t for t, _ in misses.values()]
            if task == "query":
                fresh = await self.inner.aembed_queries(miss_texts, dims=dims)
            else:
                miss_titles = [ti for _, ti in misses.values()]
                fresh = await self.inner.aembed_documents(miss_texts, titles=miss_titles, dims=dims)
            arr = np.asarray(fresh, dtype=np.float32)
            if arr.shape != (len(misses), space.dims):
                raise InputError(
                    f"the wrapped embedder returned shape {arr.shape}, expected "
                    f"({len(misses)}, {space.dims}) for {space.fingerprint}"
                )
            await to_thread(self.cache.put_many, space, task, list(misses), arr)
            found.update(zip(misses, arr, strict=True))
        out = np.empty((len(keys), space.dims), dtype=np.float32)
        for i, k in enumerate(keys):
            out[i] = found[k]
        return out


def _check_inputs(
    texts: Sequence[str], titles: Sequence[str | None] | None
) -> tuple[list[str], list[str | None]]:
    if isinstance(texts, str):
        raise InputError("texts must be a sequence of strings, not one string; wrap it in a list")
    text_list = list(texts)
    for t in text_list:
        if not isinstance(t, str) or not t.strip():
            raise InputError(f"every text must be a non-empty string, got {t!r:.40}")
    title_list: list[str | None] = list(titles) if titles is not None else [None] * len(text_list)
    if len(title_list) != len(text_list):
        raise InputError(f"got {len(text_list)} texts but {len(title_list)} titles; pass one title per text")
    return text_list, title_list


__all__ = [
    "DEFAULT_MAX_BYTES",
    "CacheStats",
    "CachedEmbedder",
    "EmbeddingCache",
    "content_key",
    "default_cache_path",
]
