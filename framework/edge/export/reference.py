"""sentence-transformers on the original checkpoint, behind the :class:`Embedder` contract.

The reference the exporter's parity check and ``edgeroute eval --embedder sentence-transformers`` compare
against. Needs the ``export`` extra (torch); never on the run-time path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...embedder import Vectors, truncate_normalize
from ...errors import InputError
from ...spaces import EmbeddingSpace

_DIMS = (768, 512, 256, 128)


class SentenceTransformersEmbedder:
    """EmbeddingGemma run by sentence-transformers (fp32, torch): same prompts, its own embedding space."""

    def __init__(self, checkpoint: str | Path, *, batch_size: int = 16) -> None:
        from .exporter import load_reference  # raises the actionable "pip install 'edgeroute[export]'" error

        self._model: Any = load_reference(Path(checkpoint))
        self._prompts: dict[str, str] = dict(self._model.prompts)
        self._batch_size = batch_size
        self._space = EmbeddingSpace(
            provider="edge",
            model="google/embeddinggemma-300m",
            revision=f"sentence-transformers:{Path(checkpoint).resolve()}",
            dims=768,
            quantization="torch-fp32",
            prompt_format="embeddinggemma",
        )

    @property
    def space(self) -> EmbeddingSpace:
        return self._space

    def space_for(self, dims: int | None = None) -> EmbeddingSpace:
        return self._space.with_dims(self._dims(dims))

    @staticmethod
    def _dims(dims: int | None) -> int:
        d = 768 if dims is None else dims
        if d not in _DIMS:
            raise InputError(f"dims must be one of {_DIMS}, got {dims}")
        return d

    def _encode(self, texts: list[str], dims: int | None) -> Vectors:
        if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
            raise InputError("every text must be a non-empty string")
        full = self._model.encode(
            texts, batch_size=self._batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return truncate_normalize(np.asarray(full, dtype=np.float32), self._dims(dims))

    def embed_queries(self, texts: Sequence[str], *, dims: int | None = None) -> Vectors:
        return self._encode([self._prompts["query"] + t for t in texts], dims)

    def embed_documents(
        self, texts: Sequence[str], *, titles: Sequence[str | None] | None = None, dims: int | None = None
    ) -> Vectors:
        prefix = self._prompts["document"]
        heads = [
            prefix.replace("title: none", f"title: {title}", 1) if title else prefix
            for title in (titles if titles is not None else [None] * len(texts))
        ]
        return self._encode([h + t for h, t in zip(heads, texts, strict=True)], dims)

    async def aembed_queries(self, texts: Sequence[str], *, dims: int | None = None) -> Vectors:
        return await asyncio.to_thread(self.embed_queries, texts, dims=dims)

    async def aembed_documents(
        self, texts: Sequence[str], *, titles: Sequence[str | None] | None = None, dims: int | None = None
    ) -> Vectors:
        return await asyncio.to_thread(self.embed_documents, texts, titles=titles, dims=dims)
