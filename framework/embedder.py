"""The one contract every embedder fulfils, edge or cloud.

Query versus document is part of the contract (the models prompt them differently), and every
embedder names the :class:`EmbeddingSpace` its vectors live in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from .spaces import EmbeddingSpace

Vectors = npt.NDArray[np.float32]
"""``(n, dims)`` float32, each row L2-normalised."""


@runtime_checkable
class Embedder(Protocol):
    """What the engine, the cache and the connectors rely on."""

    @property
    def space(self) -> EmbeddingSpace:
        """The space of vectors produced at the default dims."""
        ...

    def embed_queries(self, texts: Sequence[str], *, dims: int | None = None) -> Vectors: ...

    def embed_documents(
        self, texts: Sequence[str], *, titles: Sequence[str | None] | None = None, dims: int | None = None
    ) -> Vectors: ...

    async def aembed_queries(self, texts: Sequence[str], *, dims: int | None = None) -> Vectors: ...

    async def aembed_documents(
        self, texts: Sequence[str], *, titles: Sequence[str | None] | None = None, dims: int | None = None
    ) -> Vectors: ...

    def space_for(self, dims: int | None = None) -> EmbeddingSpace:
        """The space of vectors produced at ``dims`` (the default when None)."""
        ...


def l2_normalize(x: Vectors) -> Vectors:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: Vectors = (x / norms).astype(np.float32, copy=False)
    return out


def truncate_normalize(x: Vectors, dims: int) -> Vectors:
    """Matryoshka truncation: keep the first ``dims`` components, then re-normalise."""
    return l2_normalize(np.ascontiguousarray(x[:, :dims], dtype=np.float32))
