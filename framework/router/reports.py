"""What the engine's write paths report: one ingest, one drain of the outbox."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

ProgressFn = Callable[[str, int, int | None], None]
"""``progress(stage, done, total)``: what long operations report as work completes (``total`` may be None)."""


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one drain of the outbox did, counting only this drainer's own work: ``written`` documents
    it sent and stored, ``unchanged`` already stored, ``refused`` dropped by privacy, ``failed``.
    ``remaining`` is the queue depth for the collection after it, of which ``in_flight`` rows were
    being sent by other drainers (other processes) at that moment. ``dead`` rows of the collection are
    dead letters: the cloud refused them for good (``edgeroute sync --retry-dead`` queues them again)."""

    written: int = 0
    unchanged: int = 0
    refused: int = 0
    failed: int = 0
    remaining: int = 0
    error: str | None = None
    in_flight: int = 0
    dead: int = 0

    @property
    def complete(self) -> bool:
        """True when nothing failed, nothing is dead and nothing is left queued except what other
        drainers are sending."""
        return self.failed == 0 and self.dead == 0 and self.remaining <= self.in_flight

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class BatchSyncReport(SyncReport):
    """A drain through Gemini's Batch API (:mod:`.batch_drain`): the :class:`SyncReport` counts, and the
    jobs. ``jobs_submitted`` this drainer created; ``jobs_resumed`` it found recorded (a restart) and
    polled; ``jobs_done`` ended and had their results written; ``jobs_failed`` failed or expired (their
    rows went back to the queue); ``jobs_open`` are still pending or running at the end (a later
    ``sync --batch-api`` polls them; nothing is resubmitted). ``fallback`` says why documents went
    through the interactive path instead (the model has no Batch API), or None."""

    jobs_submitted: int = 0
    jobs_resumed: int = 0
    jobs_done: int = 0
    jobs_failed: int = 0
    jobs_open: int = 0
    polls: int = 0
    fallback: str | None = None
    claimed: int = 0
    """Queued rows this drainer took up (screened, then put in jobs, found stored, refused or failed)."""

    @property
    def complete(self) -> bool:
        return (
            self.jobs_open == 0 and self.failed == 0 and self.dead == 0 and self.remaining <= self.in_flight
        )


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What :meth:`HybridEngine.ingest` did with each index of the collection.

    ``private`` documents were kept out of the cloud index; ``queued`` are due for the cloud index
    but still in the outbox (cloud offline, absent or failing) until ``edgeroute sync``.
    ``edge_updated`` documents were unchanged but relabelled (sensitivity, metadata): their stored
    records were updated without re-embedding. ``edge_redetected`` documents were unchanged (their
    vectors kept) but had no findings stored under this detector version (a new PII head, rule set,
    PII setting or edge model files): each got a model pass for its findings alone, which costs as
    much as embedding it, so a re-index that says 0 written but many re-detected ran the model.
    """

    documents: int
    edge_written: int
    edge_unchanged: int
    private: int
    cloud: SyncReport
    queued: int
    edge_updated: int = 0
    edge_redetected: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


__all__ = ["BatchSyncReport", "IngestReport", "ProgressFn", "SyncReport"]
