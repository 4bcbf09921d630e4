"""edgeroute core: embedders, stores, the hybrid engine, outbox, cache, audit, eval, CLI and the Gemini emulator.

Names are imported lazily, so ``import edgeroute.framework`` stays cheap and an application that uses
only the on-device half never imports chromadb or google-genai.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import __all__ as _ERROR_NAMES  # cheap: errors imports nothing third-party

if TYPE_CHECKING:
    from .audit import AuditLog
    from .cache import CachedEmbedder, EmbeddingCache
    from .circuit import CircuitBreaker
    from .cloud import CloudEmbedder
    from .documents import Document, Hit, RetrievalResult
    from .edge import EdgeEmbedder
    from .embedder import Embedder
    from .emulator import GeminiEmulator
    from .engine import HybridEngine, IngestReport, SyncReport
    from .errors import (
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
    from .hashing import HashingEmbedder
    from .outbox import Outbox
    from .parts import Part
    from .spaces import EmbeddingSpace
    from .store import Collection, VectorStore

_EXPORTS: dict[str, str] = {
    "AuditLog": "audit",
    "CachedEmbedder": "cache",
    "EmbeddingCache": "cache",
    "CircuitBreaker": "circuit",
    "CloudEmbedder": "cloud",
    "Document": "documents",
    "Hit": "documents",
    "RetrievalResult": "documents",
    "EdgeEmbedder": "edge",
    "Embedder": "embedder",
    "GeminiEmulator": "emulator",
    "HybridEngine": "engine",
    "IngestReport": "engine",
    "SyncReport": "engine",
    "HashingEmbedder": "hashing",
    "Outbox": "outbox",
    "Part": "parts",
    "EmbeddingSpace": "spaces",
    "Collection": "store",
    "VectorStore": "store",
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
