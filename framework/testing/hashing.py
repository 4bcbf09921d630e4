"""A deterministic, dependency-free embedder for tests, demos without a model, and the emulator's fallback.

Text is lower-cased, split into word unigrams and character trigrams, and each feature is hashed
into a signed bucket (the "hashing trick"). Texts that share words land close together, so
retrieval over it behaves sensibly for tests, but it is no language model.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Sequence

import numpy as np

from ..embedder import Vectors, l2_normalize
from ..errors import InputError
from ..spaces import EmbeddingSpace

_WORD = re.compile(r"\w+", re.UNICODE)


def _bucket(feature: str, dims: int) -> tuple[int, float]:
    d = hashlib.blake2b(feature.encode(), digest_size=8).digest()
    n = int.from_bytes(d, "little")
    return n % dims, 1.0 if (n >> 63) & 1 else -1.0


def hash_embed(texts: Sequence[str], dims: int) -> Vectors:
    out = np.zeros((len(texts), dims), dtype=np.float32)
    for i, text in enumerate(texts):
        words = _WORD.findall(text.lower())
        for w in words:
            j, s = _bucket("w:" + w, dims)
            out[i, j] += 2.0 * s
            padded = f"#{w}#"
            for k in range(len(padded) - 2):
                j, s = _bucket("c:" + padded[k : k + 3], dims)
                out[i, j] += 0.5 * s
        if not words:
            j, s = _bucket("empty:" + text, dims)
            out[i, j] = s
    return l2_normalize(out)


class HashingEmbedder:
    """Implements :class:`~edgeroute.framework.embedder.Embedder` with the hashing trick."""

    def __init__(
        self, dims: int = 256, *, provider: str = "edge", name: str = "edgeroute/hashing-v1"
    ) -> None:
        if dims < 8:
            raise InputError(f"dims must be at least 8, got {dims}")
        self._dims = dims
        self._space = EmbeddingSpace(
            provider=provider, model=name, revision="1", dims=dims, prompt_format="none"
        )
        self.calls = 0

    @property
    def space(self) -> EmbeddingSpace:
        return self._space

    def space_for(self, dims: int | None = None) -> EmbeddingSpace:
        return self._space.with_dims(dims or self._dims)

    def _embed(self, texts: Sequence[str], dims: int | None) -> Vectors:
        d = dims or self._dims
        if d > self._dims:
            raise InputError(f"dims {d} exceeds this embedder's {self._dims}")
        for t in texts:
            if not isinstance(t, str) or not t.strip():
                raise InputError("every text must be a non-empty string")
        self.calls += 1
        full = hash_embed(texts, self._dims)
        return l2_normalize(np.ascontiguousarray(full[:, :d])) if d != self._dims else full

    def embed_queries(self, texts: Sequence[str], *, dims: int | None = None) -> Vectors:
        return self._embed(texts, dims)

    def embed_documents(
        self, texts: Sequence[str], *, titles: Sequence[str | None] | None = None, dims: int | None = None
    ) -> Vectors:
        return self._embed(texts, dims)

    async def aembed_queries(self, texts: Sequence[str], *, dims: int | None = None) -> Vectors:
        return await asyncio.to_thread(self._embed, texts, dims)

    async def aembed_documents(
        self, texts: Sequence[str], *, titles: Sequence[str | None] | None = None, dims: int | None = None
    ) -> Vectors:
        return await asyncio.to_thread(self._embed, texts, dims)
