"""Embedding spaces: the fingerprint that makes vectors from different models incomparable by construction."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from .digest import sha256_text
from .errors import SpaceMismatchError


@dataclass(frozen=True, slots=True)
class EmbeddingSpace:
    """Everything that changes what a vector means.

    Two vectors may be compared only if their spaces are equal. ``prompt_format`` names the
    prompt convention (for example ``"embeddinggemma-v1"``); the prompts themselves are part of
    the model and are hashed into ``revision`` by the model directory's manifest.
    """

    provider: str  # "edge" or "cloud"
    model: str
    revision: str
    dims: int
    quantization: str = "none"
    prompt_format: str = "none"

    @property
    def fingerprint(self) -> str:
        """A short, stable id: ``model@revision/dims/quantization/prompt_format#hash``."""
        digest = sha256_text(json.dumps(asdict(self), sort_keys=True))[:12]
        return f"{self.model}@{self.revision[:12]}/{self.dims}/{self.quantization}/{self.prompt_format}#{digest}"

    def with_dims(self, dims: int) -> EmbeddingSpace:
        return EmbeddingSpace(self.provider, self.model, self.revision, dims, self.quantization, self.prompt_format)

    def to_metadata(self) -> dict[str, str | int]:
        """Flat key/values for a vector store's collection metadata."""
        return {f"space_{k}": v for k, v in asdict(self).items()} | {"space_fingerprint": self.fingerprint}

    @classmethod
    def from_metadata(cls, meta: dict[str, object]) -> EmbeddingSpace | None:
        try:
            return cls(
                provider=str(meta["space_provider"]),
                model=str(meta["space_model"]),
                revision=str(meta["space_revision"]),
                dims=int(str(meta["space_dims"])),
                quantization=str(meta["space_quantization"]),
                prompt_format=str(meta["space_prompt_format"]),
            )
        except KeyError:
            return None

    def require_same(self, other: EmbeddingSpace, what: str) -> None:
        """Raise :class:`SpaceMismatchError` naming both spaces unless ``other`` equals this one."""
        if other != self:
            hint = (
                "the dimensions differ; query with the dims the collection was built with"
                if other.model == self.model and other.dims != self.dims
                else "re-index into a new collection with this embedder, or use the embedder it was built with"
            )
            raise SpaceMismatchError(
                f"{what} is bound to embedding space {self.fingerprint}, "
                f"but the vectors come from {other.fingerprint}: {hint}.",
                expected=self.fingerprint,
                got=other.fingerprint,
            )
