"""One Chroma collection bound to one embedding space: checked writes, reads, queries.

Get a :class:`Collection` from :class:`~edgeroute.framework.store.chroma.VectorStore`. Every write is
checked whole before the first record goes to Chroma; Chroma's errors are translated into
:class:`~edgeroute.framework.errors.StoreError`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..documents import Hit, MetadataValue
from ..embedder import Vectors
from ..errors import EdgeRouteError, InputError, StoreError
from ..spaces import EmbeddingSpace

if TYPE_CHECKING:
    from .chroma import VectorStore

CONTENT_HASH_KEY = "_content_hash"
"""Metadata key under which each record keeps the hash of the content its vector was computed from."""

# Chroma 1.5's embedded store writes a record's metadata to SQLite in one statement of six variables
# a key; past SQLite's 32,766 variables (about 5,460 keys: 5,400 were fine, 5,500 were not) the write
# fails with "Error in compaction" and the collection is unusable for good: every later write, and
# after a restart every read. So a record's metadata is bounded well below that, before any write.
MAX_METADATA_KEYS = 1024
"""Most metadata keys of one record as stored (besides the reserved content-hash key); the service
lets a document bring 1,000, which leaves room for the keys the engine adds (sensitivity, title)."""
MAX_METADATA_KEY_CHARS = 256
"""Longest metadata key, in characters."""
MAX_METADATA_VALUE_CHARS = 65_536
"""Longest string metadata value, in characters (the text belongs in the document, not its metadata)."""


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn Chroma's (and the OS's) errors into :class:`StoreError`; let ours through unchanged."""
    try:
        yield
    except EdgeRouteError:
        raise
    except Exception as exc:
        raise StoreError(f"{what} failed: {exc}") from exc


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record as stored: what :meth:`Collection.get` returns. ``vector`` is set only when asked for."""

    id: str
    text: str
    content_hash: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    vector: np.ndarray | None = None


def _check_ids(ids: Sequence[str], what: str = "ids") -> list[str]:
    if isinstance(ids, str):
        raise InputError(f"{what} must be a sequence of strings, not one string; wrap it in a list")
    out = list(ids)
    for i in out:
        if not isinstance(i, str) or not i:
            raise InputError(f"every id must be a non-empty string, got {i!r}")
    return out


def check_metadata(
    meta: Mapping[str, MetadataValue], label: str = "metadata", *, max_keys: int = MAX_METADATA_KEYS
) -> dict[str, MetadataValue]:
    """``meta`` as a dict, after checking what Chroma can store without harm; :class:`InputError`
    (naming ``label``) for a non-mapping, too many keys, an empty, long or reserved key, or a value
    that is not str/int/float/bool, a string over the length cap, or a non-finite float."""
    if not isinstance(meta, Mapping):
        raise InputError(f"{label} must be a mapping, got {type(meta).__name__}")
    if len(meta) > max_keys:
        raise InputError(
            f"{label} has {len(meta)} keys; at most {max_keys} are allowed (Chroma cannot "
            "store a record with thousands of keys): keep a few filterable keys, put the rest in the text"
        )
    out: dict[str, MetadataValue] = {}
    for key, value in meta.items():
        if not isinstance(key, str) or not key:
            raise InputError(f"{label} has a key {key!r}: keys must be non-empty strings")
        if len(key) > MAX_METADATA_KEY_CHARS:
            raise InputError(
                f"{label} has a key of {len(key)} characters; the limit is {MAX_METADATA_KEY_CHARS}"
            )
        if key == CONTENT_HASH_KEY:
            raise InputError(f"{label} uses the reserved key {CONTENT_HASH_KEY!r}: pass content_hashes")
        if not isinstance(value, (str, int, float, bool)):
            raise InputError(
                f"{label}[{key!r}] is a {type(value).__name__}; Chroma stores only str, int, "
                "float or bool: convert it (for example json.dumps a list)"
            )
        if isinstance(value, str) and len(value) > MAX_METADATA_VALUE_CHARS:
            raise InputError(
                f"{label}[{key!r}] has {len(value)} characters; the limit for a metadata value is "
                f"{MAX_METADATA_VALUE_CHARS}: put long text in the document itself"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"{label}[{key!r}] is {value}; metadata numbers must be finite")
        out[key] = value
    return out


def _check_metadata(meta: Mapping[str, MetadataValue], row: int) -> dict[str, MetadataValue]:
    return check_metadata(meta, f"metadatas[{row}]")


class Collection:
    """One Chroma collection bound to one embedding space. Get it from :class:`VectorStore`."""

    def __init__(self, raw: Any, space: EmbeddingSpace, store: VectorStore) -> None:
        self._raw = raw
        self.name: str = raw.name
        self.space: EmbeddingSpace = space
        self._store = store

    def __repr__(self) -> str:
        return f"Collection({self.name!r}, space={self.space.fingerprint!r})"

    def _batches(self, n: int) -> Iterator[slice]:
        size = self._store.max_batch_size
        for start in range(0, n, size):
            yield slice(start, min(n, start + size))

    def count(self) -> int:
        """Number of records."""
        with translated(f"counting collection {self.name!r}"):
            return int(self._raw.count())

    def stale_ids(self, ids: Sequence[str], content_hashes: Sequence[str]) -> list[str]:
        """The ids (in the given order) that are missing or were stored with another content hash."""
        id_list = _check_ids(ids)
        hashes = list(content_hashes)
        if len(hashes) != len(id_list):
            raise InputError(f"got {len(id_list)} ids but {len(hashes)} content hashes; pass one hash per id")
        stored: dict[str, Any] = {}
        unique = list(dict.fromkeys(id_list))
        for part in self._batches(len(unique)):
            with translated(f"reading collection {self.name!r}"):
                got = self._raw.get(ids=unique[part], include=["metadatas"])
            for rid, meta in zip(got["ids"], got["metadatas"] or [], strict=False):
                stored[rid] = (meta or {}).get(CONTENT_HASH_KEY)
        return [i for i, h in zip(id_list, hashes, strict=True) if stored.get(i) != h]

    def upsert(
        self,
        ids: Sequence[str],
        vectors: Vectors,
        *,
        space: EmbeddingSpace,
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, MetadataValue]] | None = None,
        content_hashes: Sequence[str],
    ) -> None:
        """Insert or replace records by id. Everything is checked before the first write.

        ``space`` must equal the collection's (else :class:`SpaceMismatchError`); ``vectors`` must be
        ``(len(ids), space.dims)`` and finite; metadata values str/int/float/bool. Large calls are split
        into batches under Chroma's limit.
        """
        self.space.require_same(space, f"collection {self.name!r}")
        self._store.require_writable(f"write to collection {self.name!r}")
        id_list = _check_ids(ids)
        n = len(id_list)
        if n == 0:
            return
        if len(set(id_list)) != n:
            dup = next(i for i in id_list if id_list.count(i) > 1)
            raise InputError(f"id {dup!r} appears more than once in one upsert; ids must be unique")
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[0] != n:
            raise InputError(f"vectors must have shape ({n}, {self.space.dims}), got {arr.shape}")
        if arr.shape[1] != self.space.dims:
            raise InputError(
                f"vectors have {arr.shape[1]} dims but collection {self.name!r} holds {self.space.dims}-dim "
                f"vectors of {self.space.fingerprint}: embed with dims={self.space.dims}"
            )
        if not np.isfinite(arr).all():
            raise InputError("vectors contain NaN or infinity; check the embedder's output")
        text_list = list(texts)
        hash_list = list(content_hashes)
        meta_list = list(metadatas) if metadatas is not None else [{} for _ in range(n)]
        for label, seq in (("texts", text_list), ("content_hashes", hash_list), ("metadatas", meta_list)):
            if len(seq) != n:
                raise InputError(f"got {n} ids but {len(seq)} {label}; pass one per id")
        for t in text_list:
            if not isinstance(t, str):
                raise InputError(f"every text must be a string, got {type(t).__name__}")
        for h in hash_list:
            if not isinstance(h, str) or not h:
                raise InputError("every content hash must be a non-empty string (Document.content_hash())")
        metas: list[dict[str, MetadataValue]] = [
            {**_check_metadata(m, row), CONTENT_HASH_KEY: h}
            for row, (m, h) in enumerate(zip(meta_list, hash_list, strict=True))
        ]
        for part in self._batches(n):
            with translated(f"writing to collection {self.name!r}"):
                self._raw.upsert(
                    ids=id_list[part], embeddings=arr[part], documents=text_list[part], metadatas=metas[part]
                )

    def delete(self, ids: Sequence[str]) -> None:
        """Delete records by id; unknown ids are ignored."""
        id_list = _check_ids(ids)
        self._store.require_writable(f"delete from collection {self.name!r}")
        for part in self._batches(len(id_list)):
            with translated(f"deleting from collection {self.name!r}"):
                self._raw.delete(ids=id_list[part])

    def ids(self, where: Mapping[str, Any] | None = None) -> list[str]:
        """Every record id (those matching the metadata filter ``where``, if given), in storage order."""
        return [rid for rid, _ in self._pages(where, include_metadata=False)]

    def metadata(self, where: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
        """``{id: metadata}`` for every record (matching ``where``), without vectors or texts."""
        return dict(self._pages(where, include_metadata=True))

    def metadata_of(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``{id: metadata}`` of the stored records among ``ids`` (others are left out), without vectors or texts."""
        unique = list(dict.fromkeys(_check_ids(ids)))
        out: dict[str, dict[str, Any]] = {}
        for part in self._batches(len(unique)):
            with translated(f"reading collection {self.name!r}"):
                got = self._raw.get(ids=unique[part], include=["metadatas"])
            for rid, meta in zip(got["ids"], got["metadatas"] or [], strict=False):
                out[rid] = {k: v for k, v in (meta or {}).items() if k != CONTENT_HASH_KEY}
        return out

    def first_metadata(self, where: Mapping[str, Any]) -> dict[str, Any] | None:
        """The metadata of one record matching ``where``, or None: cheaper than listing them all."""
        with translated(f"reading collection {self.name!r}"):
            got = self._raw.get(where=normalise_where(where), limit=1, include=["metadatas"])
        if not got["ids"]:
            return None
        meta = (got.get("metadatas") or [None])[0] or {}
        return {k: v for k, v in meta.items() if k != CONTENT_HASH_KEY}

    def _pages(
        self, where: Mapping[str, Any] | None, *, include_metadata: bool
    ) -> list[tuple[str, dict[str, Any]]]:
        flt = normalise_where(where)
        out: list[tuple[str, dict[str, Any]]] = []
        size = self._store.max_batch_size
        include = ["metadatas"] if include_metadata else []
        while True:
            with translated(f"listing records in collection {self.name!r}"):
                got = self._raw.get(where=flt, limit=size, offset=len(out), include=include)
            metas = got.get("metadatas") or [None] * len(got["ids"])
            page = [
                (rid, {k: v for k, v in (m or {}).items() if k != CONTENT_HASH_KEY})
                for rid, m in zip(got["ids"], metas, strict=True)
            ]
            out.extend(page)
            if len(page) < size:
                return out

    def update_metadata(self, ids: Sequence[str], metadatas: Sequence[Mapping[str, MetadataValue]]) -> None:
        """Replace the metadata of stored records (vectors, texts and content hashes stay).

        For a change that needs no new vector: a document re-marked confidential, a new title. Keys
        a record had and the new metadata lacks are removed; unknown ids raise :class:`InputError`.
        """
        id_list = _check_ids(ids)
        metas = [_check_metadata(m, row) for row, m in enumerate(metadatas)]
        if len(metas) != len(id_list):
            raise InputError(f"got {len(id_list)} ids but {len(metas)} metadatas; pass one per id")
        self._store.require_writable(f"update collection {self.name!r}")
        stored = {r.id: r for r in self.get(id_list)}
        missing = [i for i in id_list if i not in stored]
        if missing:
            raise InputError(f"cannot update metadata of {missing[:5]}: not in collection {self.name!r}")
        rows: list[dict[str, MetadataValue | None]] = []
        for rid, meta in zip(id_list, metas, strict=True):
            gone: dict[str, MetadataValue | None] = {k: None for k in stored[rid].metadata if k not in meta}
            rows.append({**gone, **meta})  # None removes a key in Chroma's update
        for part in self._batches(len(id_list)):
            with translated(f"updating collection {self.name!r}"):
                self._raw.update(ids=id_list[part], metadatas=rows[part])

    def query(
        self,
        vector: np.ndarray,
        k: int = 10,
        *,
        space: EmbeddingSpace,
        where: Mapping[str, Any] | None = None,
    ) -> list[Hit]:
        """The ``k`` nearest records to ``vector`` (shape ``(dims,)`` or ``(1, dims)``), best first.

        ``score`` is the cosine similarity, ``rank`` starts at 1, ``index`` is the space's provider and
        ``space`` its fingerprint. ``where`` is a Chroma metadata filter (``{"lang": "en"}``,
        ``{"year": {"$gte": 2020}}``); several plain keys are combined with ``$and``. A record's
        metadata key ``title`` (when a string) becomes ``Hit.title``.
        """
        q = self._query_vector(vector, k, space)
        if q.ndim != 1 or q.shape[0] != self.space.dims:
            raise InputError(
                f"query vector must have shape ({self.space.dims},) for {self.space.fingerprint}, "
                f"got {q.shape}"
            )
        if not np.isfinite(q).all():
            raise InputError("query vector contains NaN or infinity")
        flt = normalise_where(where)
        try:
            # No count() first: Chroma returns what there is when the collection holds fewer than k
            # (none when empty), and the extra call cost a served retrieval about 1 ms.
            res = self._raw.query(
                query_embeddings=q[None, :],
                n_results=k,
                where=flt,
                include=["documents", "metadatas", "distances"],
            )
        except Exception as exc:
            if flt is not None and type(exc).__name__ in {"InvalidArgumentError", "ValueError"}:
                raise InputError(f"invalid metadata filter {dict(flt)!r}: {exc}") from exc
            raise StoreError(f"querying collection {self.name!r} failed: {exc}") from exc
        return self._hits(res["ids"][0], res["documents"][0], res["metadatas"][0], res["distances"][0])

    def _query_vector(
        self, vector: np.ndarray[Any, Any], k: int, space: EmbeddingSpace
    ) -> np.ndarray[Any, Any]:
        """``vector`` as float32, a ``(1, dims)`` row flattened, after checking ``space`` and ``k``
        (its shape and values are the caller's to check)."""
        self.space.require_same(space, f"collection {self.name!r}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InputError(f"k must be a positive integer, got {k!r}")
        q = np.asarray(vector, dtype=np.float32)
        if q.ndim == 2 and q.shape[0] == 1:
            q = q[0]
        return q

    def _hits(
        self, ids: Sequence[str], docs: Sequence[Any], metas: Sequence[Any], dists: Sequence[float]
    ) -> list[Hit]:
        """One Chroma result row (ids, documents, metadatas, distances) as ranked :class:`Hit` objects."""
        index: Literal["edge", "cloud"] = "cloud" if self.space.provider == "cloud" else "edge"
        fingerprint = self.space.fingerprint  # a sha256 of the space each time it is read
        hits = []
        for rank, (rid, text, meta, dist) in enumerate(zip(ids, docs, metas, dists, strict=True), start=1):
            clean = {k2: v for k2, v in (meta or {}).items() if k2 != CONTENT_HASH_KEY}
            title = clean.get("title")
            hits.append(
                Hit(
                    id=rid,
                    text=text or "",
                    score=float(1.0 - dist) if math.isfinite(dist) else float("nan"),
                    rank=rank,
                    index=index,
                    space=fingerprint,
                    metadata=clean,
                    title=title if isinstance(title, str) else None,
                )
            )
        return hits

    def get(self, ids: Sequence[str], *, include_vectors: bool = False) -> list[StoredRecord]:
        """The stored records for ``ids``, in the given order; ids not in the collection are left out."""
        id_list = _check_ids(ids)
        include = ["documents", "metadatas", *(["embeddings"] if include_vectors else [])]
        found: dict[str, StoredRecord] = {}
        unique = list(dict.fromkeys(id_list))
        for part in self._batches(len(unique)):
            with translated(f"reading collection {self.name!r}"):
                got = self._raw.get(ids=unique[part], include=include)
            vecs = got.get("embeddings") if include_vectors else None
            for j, rid in enumerate(got["ids"]):
                meta = dict((got["metadatas"] or [])[j] or {})
                h = meta.pop(CONTENT_HASH_KEY, None)
                vec = np.asarray(vecs[j], dtype=np.float32) if vecs is not None else None
                found[rid] = StoredRecord(
                    id=rid,
                    text=(got["documents"] or [""])[j] or "",
                    content_hash=h if isinstance(h, str) else None,
                    metadata=meta,
                    vector=vec,
                )
        return [found[i] for i in unique if i in found]


def normalise_where(where: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if where is None:
        return None
    if not isinstance(where, Mapping):
        raise InputError(f"where must be a mapping such as {{'lang': 'en'}}, got {type(where).__name__}")
    flt = dict(where)
    if not flt:
        return None
    # Chroma wants one top-level key; several plain keys mean "all of them".
    if len(flt) > 1 and not any(k.startswith("$") for k in flt):
        return {"$and": [{k: v} for k, v in flt.items()]}
    return flt


__all__ = [
    "CONTENT_HASH_KEY",
    "MAX_METADATA_KEYS",
    "MAX_METADATA_KEY_CHARS",
    "MAX_METADATA_VALUE_CHARS",
    "Collection",
    "StoredRecord",
    "check_metadata",
]
