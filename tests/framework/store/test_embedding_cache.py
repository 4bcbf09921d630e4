"""The embedding cache (memory LRU + SQLite) and CachedEmbedder."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from edgeroute.framework.embedder import Embedder, Vectors
from edgeroute.framework.errors import ConfigurationError, InputError
from edgeroute.framework.spaces import EmbeddingSpace
from edgeroute.framework.store.cache import CachedEmbedder, EmbeddingCache, content_key
from edgeroute.framework.testing.hashing import HashingEmbedder

SPACE = EmbeddingSpace("edge", "test/model", "1", 4)
ENTRY = 4 * 4 + 160  # a 4-dim float32 vector plus the per-entry overhead the cache counts


def vec(i: float) -> np.ndarray:
    return np.array([i, 0, 0, 1], dtype=np.float32)


class Recording:
    """Wraps a HashingEmbedder and records which texts reached it, and through which method."""

    def __init__(self, dims: int = 32) -> None:
        self.base = HashingEmbedder(dims)
        self.seen: list[tuple[str, list[str]]] = []

    @property
    def space(self) -> EmbeddingSpace:
        return self.base.space

    def space_for(self, dims: int | None = None) -> EmbeddingSpace:
        return self.base.space_for(dims)

    def embed_documents(
        self, texts: Sequence[str], *, titles: Sequence[str | None] | None = None, dims: int | None = None
    ) -> Vectors:
        self.seen.append(("sync", list(texts)))
        return self.base.embed_documents(texts, titles=titles, dims=dims)

    def embed_queries(self, texts: Sequence[str], *, dims: int | None = None) -> Vectors:
        self.seen.append(("sync", list(texts)))
        return self.base.embed_queries(texts, dims=dims)

    async def aembed_documents(
        self, texts: Sequence[str], *, titles: Sequence[str | None] | None = None, dims: int | None = None
    ) -> Vectors:
        self.seen.append(("async", list(texts)))
        return await self.base.aembed_documents(texts, titles=titles, dims=dims)

    async def aembed_queries(self, texts: Sequence[str], *, dims: int | None = None) -> Vectors:
        self.seen.append(("async", list(texts)))
        return await self.base.aembed_queries(texts, dims=dims)


class TestEmbeddingCache:
    def test_memory_only_hits_and_misses(self) -> None:
        cache = EmbeddingCache(None, max_bytes=10_000)
        assert cache.get(SPACE, "document", "h1") is None
        cache.put(SPACE, "document", "h1", vec(1))
        np.testing.assert_array_equal(cache.get(SPACE, "document", "h1"), vec(1))
        assert cache.get(SPACE, "query", "h1") is None  # the task is part of the key
        assert cache.get(SPACE.with_dims(8), "document", "h1") is None  # so is the space
        assert (cache.hits, cache.misses) == (1, 3)
        assert cache.hit_rate == pytest.approx(0.25)
        s = cache.stats()
        assert (s.hits, s.misses, s.entries, s.path) == (1, 3, 1, None)

    def test_memory_lru_eviction(self) -> None:
        cache = EmbeddingCache(None, max_bytes=3 * ENTRY)
        for i in range(3):
            cache.put(SPACE, "document", f"h{i}", vec(i))
        assert cache.get(SPACE, "document", "h0") is not None  # h0 is now the most recently used
        cache.put(SPACE, "document", "h3", vec(3))
        assert cache.get(SPACE, "document", "h1") is None
        assert all(cache.get(SPACE, "document", h) is not None for h in ("h0", "h2", "h3"))
        assert cache.stats().evictions == 1 and cache.stats().bytes <= 3 * ENTRY

    def test_sqlite_persists_and_evicts_least_recently_used(self, tmp_path: Path) -> None:
        path = tmp_path / "c" / "embeddings.sqlite"
        with EmbeddingCache(path, max_bytes=10 * ENTRY, memory_bytes=0) as cache:
            for i in range(10):
                cache.put(SPACE, "document", f"h{i}", vec(i))
            for i in range(1, 10):  # everything but h0 used again, later
                assert cache.get(SPACE, "document", f"h{i}") is not None
            cache.put(SPACE, "document", "new", vec(99))
            st = cache.stats()
            assert st.bytes <= 10 * ENTRY and st.evictions >= 1
            assert cache.get(SPACE, "document", "h0") is None
        with EmbeddingCache(path, max_bytes=10 * ENTRY) as again:
            np.testing.assert_array_equal(again.get(SPACE, "document", "new"), vec(99))
            assert again.hits == 1 and again.misses == 0

    def test_shared_across_processes(self, tmp_path: Path) -> None:
        path = tmp_path / "shared.sqlite"
        script = (
            "import numpy as np, sys\n"
            "from edgeroute.framework.store.cache import EmbeddingCache\n"
            "c = EmbeddingCache(__import__('pathlib').Path(sys.argv[1]))\n"
            "c.put_many('space-x', 'document', ['a', 'b'], np.eye(2, 3, dtype=np.float32))\n"
        )
        with EmbeddingCache(path) as cache:  # open first: WAL readers and a writer at the same time
            subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=60)
            got = cache.get_many("space-x", "document", ["a", "b", "c"])
        assert got[0] is not None and got[1] is not None and got[2] is None
        np.testing.assert_array_equal(got[1], [0, 1, 0])

    def test_bad_settings(self, tmp_path: Path) -> None:
        with pytest.raises(InputError, match="max_bytes"):
            EmbeddingCache(None, max_bytes=0)
        with pytest.raises(ConfigurationError, match="only a cache"):
            EmbeddingCache(tmp_path, max_bytes=1000)  # a directory, not a file
        not_sqlite = tmp_path / "junk.sqlite"
        not_sqlite.write_bytes(b"this is not a database" * 100)
        with pytest.raises(ConfigurationError, match="delete the file"):
            EmbeddingCache(not_sqlite)
        with pytest.raises(InputError, match="one vector per hash"):
            EmbeddingCache(None).put_many(SPACE, "document", ["a", "b"], np.zeros((1, 4), np.float32))


class TestCachedEmbedder:
    def test_is_an_embedder(self) -> None:
        emb: Embedder = CachedEmbedder(HashingEmbedder(32), EmbeddingCache(None))
        assert isinstance(emb, Embedder)
        assert emb.space == HashingEmbedder(32).space and emb.space_for(16).dims == 16

    def test_embeds_only_misses(self) -> None:
        inner = Recording()
        cached = CachedEmbedder(inner, EmbeddingCache(None))
        first = cached.embed_documents(["alpha text", "beta text"], titles=["A", None])
        # The sync API runs the async core: the wrapped embedder is reached through its async method.
        assert inner.seen == [("async", ["alpha text", "beta text"])]
        np.testing.assert_allclose(first, HashingEmbedder(32).embed_documents(["alpha text", "beta text"]))
        again = cached.embed_documents(["beta text", "alpha text", "gamma text"], titles=[None, "A", None])
        assert inner.seen[-1] == ("async", ["gamma text"])
        np.testing.assert_array_equal(again[:2], first[::-1])
        assert cached.cache.hits == 2 and cached.cache.misses == 3

    def test_key_includes_title_task_and_dims(self) -> None:
        inner = Recording()
        cached = CachedEmbedder(inner, EmbeddingCache(None))
        cached.embed_documents(["same"], titles=["one"])
        cached.embed_documents(["same"], titles=["two"])
        cached.embed_queries(["same"])
        cached.embed_documents(["same"], titles=["one"], dims=16)
        assert len(inner.seen) == 4
        assert content_key("ab", "c", "t") != content_key("a", "bc", "t")

    def test_duplicates_in_one_call_are_embedded_once(self) -> None:
        inner = Recording()
        out = CachedEmbedder(inner, EmbeddingCache(None)).embed_queries(["x y", "x y", "z"])
        assert inner.seen == [("async", ["x y", "z"])]
        np.testing.assert_array_equal(out[0], out[1])

    async def test_async_methods_call_the_inner_async_methods(self) -> None:
        inner = Recording()
        cached = CachedEmbedder(inner, EmbeddingCache(None))
        a = await cached.aembed_documents(["one doc", "two doc"])
        b = await cached.aembed_documents(["two doc", "three doc"])
        q = await cached.aembed_queries(["a query"])
        assert inner.seen == [
            ("async", ["one doc", "two doc"]),
            ("async", ["three doc"]),
            ("async", ["a query"]),
        ]
        np.testing.assert_array_equal(a[1], b[0])
        assert q.shape == (1, 32)

    def test_bad_input(self) -> None:
        cached = CachedEmbedder(HashingEmbedder(32), EmbeddingCache(None))
        with pytest.raises(InputError, match="non-empty"):
            cached.embed_documents(["ok", " "])
        with pytest.raises(InputError, match="titles"):
            cached.embed_documents(["ok"], titles=["a", "b"])
        with pytest.raises(InputError, match="wrap it in a list"):
            cached.embed_queries("just a string")
