"""edgeroute core: embedders, stores, the hybrid engine, outbox, cache, audit, eval, CLI and the Gemini emulator.

Names are imported lazily, so ``import edgeroute.framework`` stays cheap and an application that uses
only the on-device half never imports chromadb or google-genai.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import __all__ as _ERROR_NAMES  # cheap: errors imports nothing third-party

if TYPE_CHECKING:
    from .cloud.breaker import CircuitBreaker
    from .cloud.embedder import CloudEmbedder
    from .documents import Document, Hit, RetrievalResult
    from .edge.embedder import EdgeEmbedder
    from .embedder import Embedder
    from .errors import (
        CloudAuthError,
        CloudError,
        CloudRejectedError,
        CloudUnavailableError,
        CollectionNotFoundError,
        ConfigurationError,
        EdgeRouteError,
        InputError,
        ModelIntegrityError,
        ModelNotFoundError,
        PrivacyViolationError,
        RoutingError,
        SpaceMismatchError,
        StoreError,
    )
    from .parts import Part
    from .router.audit import AuditLog
    from .router.engine import HybridEngine, IngestReport, SyncReport
    from .router.outbox import Outbox
    from .spaces import EmbeddingSpace
    from .store.cache import CachedEmbedder, EmbeddingCache
    from .store.chroma import Collection, VectorStore
    from .testing.emulator import GeminiEmulator
    from .testing.hashing import HashingEmbedder

_EXPORTS: dict[str, str] = {
    "AuditLog": "router.audit",
    "CachedEmbedder": "store.cache",
    "EmbeddingCache": "store.cache",
    "CircuitBreaker": "cloud.breaker",
    "CloudEmbedder": "cloud.embedder",
    "Document": "documents",
    "Hit": "documents",
    "RetrievalResult": "documents",
    "EdgeEmbedder": "edge.embedder",
    "Embedder": "embedder",
    "GeminiEmulator": "testing.emulator",
    "HybridEngine": "router.engine",
    "IngestReport": "router.engine",
    "SyncReport": "router.engine",
    "HashingEmbedder": "testing.hashing",
    "Outbox": "router.outbox",
    "Part": "parts",
    "EmbeddingSpace": "spaces",
    "Collection": "store.chroma",
    "VectorStore": "store.chroma",
    **dict.fromkeys(_ERROR_NAMES, "errors"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edgeroute.framework' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return __all__
