"""What the engine's write paths report: one ingest, one drain of the outbox."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one drain of the outbox did. ``remaining`` is the queue depth for the collection after it."""

    written: int = 0
    unchanged: int = 0
    refused: int = 0
    failed: int = 0
    remaining: int = 0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What :meth:`HybridEngine.ingest` did with each index of the collection.

    ``private`` documents were kept out of the cloud index; ``queued`` are due for the cloud index
    but still in the outbox (cloud offline, absent or failing) until ``edgeroute sync``.
    """

    documents: int
    edge_written: int
    edge_unchanged: int
    private: int
    cloud: SyncReport
    queued: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


__all__ = ["IngestReport", "SyncReport"]
