"""Texts to vectors for tool routing: one task prompt, Matryoshka dims, and an embedding cache in front.

Every text is embedded at the model's full dims and cached under ``(space, "tools:<prompt>", sha256)``;
the router's dims are a truncation of that vector (Matryoshka), so one cached entry serves every dims
and a repeated request, or a tool example seen in an earlier fit, is never embedded twice. Misses of one
call go to the embedder in one batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...framework import aio
from ...framework.embedder import Embedder, Vectors, truncate_normalize
from ...framework.errors import InputError
from ...framework.store.cache import EmbeddingCache, content_key

DEFAULT_PROMPT = "Classification"
"""EmbeddingGemma's ``task: classification | query:`` prompt: chosen by measurement (docs/tool-routing.md)."""

CACHE_BYTES = 32 * 1024**2
"""The router's own in-memory cache when none is given: about 10,000 vectors of 768 float32."""


def prompt_names(embedder: Embedder) -> list[str]:
    """The task prompts ``embedder`` can embed with by name (EmbeddingGemma's manifest); [] for others."""
    names = getattr(embedder, "prompt_names", None)
    return list(names) if isinstance(names, list | tuple) else []


class TextEncoder:
    """Embeds texts for routing with ``prompt`` (when the embedder has named prompts) at ``dims``.

    Embedders without named prompts (the hashing embedder, the cloud client) embed as queries.
    ``cache`` holds full-dims vectors; None gives a private in-memory cache.
    """

    def __init__(
        self,
        embedder: Embedder,
        *,
        prompt: str | None = DEFAULT_PROMPT,
        dims: int | None = None,
        cache: EmbeddingCache | None = None,
    ) -> None:
        names = prompt_names(embedder)
        if prompt is not None and names and prompt not in names:
            raise InputError(f"unknown prompt {prompt!r}; this embedder has: {', '.join(names)}")
        self.embedder = embedder
        self.prompt = prompt if names else None
        full = embedder.space_for(None).dims
        if dims is not None and (not isinstance(dims, int) or dims < 8 or dims > full):
            raise InputError(f"dims must be an integer between 8 and the model's {full}, got {dims!r}")
        self.dims = dims or full
        self.full_dims = full
        self.cache = cache if cache is not None else EmbeddingCache(None, CACHE_BYTES)
        self._task = f"tools:{self.prompt or 'query'}"

    @property
    def space_id(self) -> str:
        """What the vectors mean: the embedder's space at full dims, and the prompt."""
        return f"{self.embedder.space_for(None).fingerprint}|{self._task}"

    def _keys(self, texts: Sequence[str]) -> list[str]:
        if isinstance(texts, str):
            raise InputError("texts must be a list of strings, not one string; wrap it in a list")
        for t in texts:
            if not isinstance(t, str) or not t.strip():
                raise InputError(f"every text must be a non-empty string, got {t!r:.40}")
        return [content_key(t, None, self._task) for t in texts]

    async def _embed(self, texts: list[str]) -> Vectors:
        embed: Any = getattr(self.embedder, "aembed", None)
        if self.prompt is not None and embed is not None:
            vecs: Vectors = await embed(texts, self.prompt)
            return vecs
        return await self.embedder.aembed_queries(texts)

    async def aencode(self, texts: Sequence[str]) -> Vectors:
        """``(len(texts), dims)`` unit vectors; only the texts the cache lacks are embedded, in one call."""
        keys = self._keys(texts)
        if not keys:
            return np.zeros((0, self.dims), dtype=np.float32)
        space = self.embedder.space_for(None)
        durable = self.cache.path is not None
        found = (
            await aio.to_thread(self.cache.get_many, space, self._task, keys)
            if durable
            else self.cache.get_many(space, self._task, keys)
        )
        miss: dict[str, str] = {}
        for k, t, v in zip(keys, texts, found, strict=True):
            if v is None:
                miss.setdefault(k, t)
        out = np.empty((len(keys), self.full_dims), dtype=np.float32)
        fresh: dict[str, np.ndarray[Any, Any]] = {}
        if miss:
            vecs = np.asarray(await self._embed(list(miss.values())), dtype=np.float32)
            if vecs.shape != (len(miss), self.full_dims):
                raise InputError(
                    f"the embedder returned shape {vecs.shape}, expected ({len(miss)}, {self.full_dims})"
                )
            if durable:
                await aio.to_thread(self.cache.put_many, space, self._task, list(miss), vecs)
            else:
                self.cache.put_many(space, self._task, list(miss), vecs)
            fresh = dict(zip(miss, vecs, strict=True))
        for i, (k, v) in enumerate(zip(keys, found, strict=True)):
            out[i] = v if v is not None else fresh[k]
        return out if self.dims == self.full_dims else truncate_normalize(out, self.dims)

    def encode(self, texts: Sequence[str]) -> Vectors:
        """:meth:`aencode` for sync callers."""
        return aio.run_sync(self.aencode(texts))


__all__ = ["CACHE_BYTES", "DEFAULT_PROMPT", "TextEncoder", "prompt_names"]
