"""A stand-in for the edge model in commands that never embed (status, sync, delete, collections).

Loading EmbeddingGemma costs seconds; a command that only moves or counts stored records needs the
edge *space* (to open the edge index and check it), not the model. :class:`UnloadedEdge` carries the
space recorded in the store and refuses to embed, naming the command that should have loaded it.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..embedder import Vectors
from ..errors import ConfigurationError
from ..spaces import EmbeddingSpace


class UnloadedEdge:
    """An :class:`~edgeroute.framework.embedder.Embedder` with a space and no model."""

    def __init__(self, space: EmbeddingSpace) -> None:
        self._space = space

    @property
    def space(self) -> EmbeddingSpace:
        return self._space

    def space_for(self, dims: int | None = None) -> EmbeddingSpace:
        return self._space if dims is None or dims == self._space.dims else self._space.with_dims(dims)

    def _refuse(self) -> Vectors:
        raise ConfigurationError(
            "this command runs without the on-device model (it only reads or moves stored records), "
            "so it cannot embed text; use `edgeroute index` or `edgeroute query` for that"
        )

    def embed_queries(self, texts: Sequence[str], *, dims: int | None = None) -> Vectors:
        return self._refuse()

    def embed_documents(
        self, texts: Sequence[str], *, titles: Sequence[str | None] | None = None, dims: int | None = None
    ) -> Vectors:
        return self._refuse()

    async def aembed_queries(self, texts: Sequence[str], *, dims: int | None = None) -> Vectors:
        return self._refuse()

    async def aembed_documents(
        self, texts: Sequence[str], *, titles: Sequence[str | None] | None = None, dims: int | None = None
    ) -> Vectors:
        return self._refuse()


__all__ = ["UnloadedEdge"]
