"""Gemini's Batch API for embeddings through the unmodified google-genai client: submit, poll, find, clean up.

google-genai 3.6 (``client.aio.batches``, Gemini Developer API only; Vertex has no
``create_embeddings``) sends ``POST models/{model}:asyncBatchEmbedContent`` with the inputs inlined
(``EmbeddingsBatchJobSource(inlined_requests=EmbedContentBatch(contents, config))``) and gets an
operation named ``batches/ID``; ``batches.get`` polls it, and a job that succeeded carries one
``InlinedEmbedContentResponse`` per input, in input order (``dest.inlined_embed_content_responses``:
an embedding, or a per-item error). ``batches.list`` finds a job by display name; ``cancel`` and
``delete`` end and remove it.

The Batch API costs half the interactive price (:data:`~.pricing.BATCH_PRICES_PER_MTOK`); its limits
are its own (an inline request under 20 MB, 100 concurrent batch jobs, a 24 h target turnaround; a
job pending or running too long expires: after 48 h, UNCONFIRMED). Google announced embedding batches
for ``gemini-embedding-001``; the Gemini API pricing page gives Gemini Embedding 2 a batch price too.
:data:`BATCH_MODELS` lists those; a model outside it, or one whose create the service refuses (404 or
400), falls back to the interactive path (:mod:`edgeroute.framework.router.batch_drain`).

The inputs go through the same preparation as the interactive path: the input checks, the task
prefix, and the privacy guard on the final parts, before any byte leaves.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..embedder import Vectors, l2_normalize
from ..errors import CloudRejectedError, CloudUnavailableError
from ..parts import Part
from .embedder import CloudEmbedder, _estimate, _with_prefix
from .pricing import BATCH_PRICES_PER_MTOK, PriceTable
from .retry import Attempts

logger = logging.getLogger(__name__)

BATCH_MODELS = frozenset({"gemini-embedding-001", "gemini-embedding-2", "gemini-embedding-2-preview"})
"""Models the Gemini API offers embedding batches for (announced for -001; a batch price for Embedding 2)."""
BATCH_PRICES = PriceTable(dict(BATCH_PRICES_PER_MTOK))
ENDED = frozenset({"succeeded", "failed", "expired", "cancelled"})
_LIST_PAGES = 20  # pages of 100 jobs searched for a display name before giving up
_warned = False


def _quiet_experimental() -> None:
    """google-genai marks ``create_embeddings`` experimental and warns on every call: logged once
    instead. The filter is added on every call (an identical filter replaces itself, so the list does
    not grow) because test runners reset the filters between tests."""
    global _warned
    from google.genai._common import ExperimentalWarning

    warnings.filterwarnings("ignore", message=r"batches\.create_embeddings", category=ExperimentalWarning)
    if not _warned:
        logger.info("google-genai marks batches.create_embeddings experimental; its wire format may change")
        _warned = True


@dataclass(frozen=True, slots=True)
class BatchStatus:
    """One poll of a job. ``state``: pending, running, succeeded, failed, expired, cancelled (or the
    service's own word). When it succeeded: ``vectors`` (normalised, one row per position in ``ok``)
    and ``item_errors`` (``{position: (code, message)}``) for inputs the service refused."""

    name: str
    state: str
    ok: list[int] = field(default_factory=list)
    vectors: Vectors = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    item_errors: dict[int, tuple[int, str]] = field(default_factory=dict)

    @property
    def ended(self) -> bool:
        return self.state in ENDED


def supports_batch(model: str) -> bool:
    """True when the Gemini API offers embedding batches for ``model`` (see :data:`BATCH_MODELS`)."""
    return model.removeprefix("models/") in BATCH_MODELS


class BatchEmbedder:
    """The Batch API side of a :class:`CloudEmbedder`: the same client, key, guard, breaker and usage."""

    def __init__(self, cloud: CloudEmbedder) -> None:
        self.cloud = cloud

    def prepare(
        self, contents: Sequence[Sequence[Part]], titles: Sequence[str | None], dims: int | None
    ) -> tuple[list[Any], int]:
        """The google-genai Contents of documents (checked, prefixed with their titles as the interactive
        path does, guarded) and their dims; raises before anything is sent (:class:`InputError`,
        :class:`PrivacyViolationError`)."""
        batches = self.cloud._prepare([list(c) for c in contents], "document", list(titles), dims)
        return [c for b in batches for c in b.contents], batches[0].dims

    async def asubmit(self, contents: list[Any], dims: int, display_name: str) -> str:
        """Create one job for prepared ``contents``; returns its name (``batches/ID``).

        Not retried: a create whose answer was lost may have made a job, and a second create would
        embed (and bill) the rows twice; the caller looks it up by ``display_name`` instead.
        """
        from google.genai import types

        _quiet_experimental()
        self.cloud._precheck()
        src = types.EmbeddingsBatchJobSource(
            inlined_requests=types.EmbedContentBatch(
                contents=contents, config=types.EmbedContentConfig(output_dimensionality=dims)
            )
        )
        try:
            job = await self.cloud._genai().aio.batches.create_embeddings(
                model=self.cloud.model,
                src=src,
                config=types.CreateEmbeddingsBatchJobConfig(display_name=display_name),
            )
        except Exception as exc:
            raise self.cloud._failed(exc) from exc
        self.cloud.breaker.record_success()
        if not job.name:
            raise CloudUnavailableError("the Batch API created a job but gave no name", status="BAD_RESPONSE")
        return str(job.name)

    async def apoll(self, name: str, dims: int) -> BatchStatus:
        """The job's state, with its results once it succeeded (a vanished job reads ``expired``)."""
        try:
            job = await self._retried(lambda c: c.aio.batches.get(name=name))
        except CloudRejectedError as exc:
            if exc.status_code == 404:  # deleted, or gone past its retention: its rows must be sent again
                return BatchStatus(name, "expired")
            raise
        state = _state(job.state)
        if state != "succeeded":
            return BatchStatus(name, state)
        responses = (job.dest.inlined_embed_content_responses if job.dest is not None else None) or []
        ok: list[int] = []
        rows: list[list[float]] = []
        errors: dict[int, tuple[int, str]] = {}
        for i, item in enumerate(responses):
            emb = item.response.embedding if item.response is not None else None
            if emb is not None and emb.values:
                ok.append(i)
                rows.append(list(emb.values))
            else:
                err = item.error
                code = int(err.code or 0) if err is not None else 0
                errors[i] = (code, (err.message if err is not None else None) or "no embedding returned")
        vectors = np.zeros((0, dims), dtype=np.float32)
        if rows:
            vectors = l2_normalize(np.asarray(rows, dtype=np.float32))
            if vectors.shape[1] != dims:
                raise CloudRejectedError(
                    f"the Batch API returned {vectors.shape[1]}-dim vectors for output_dimensionality={dims}",
                    status="BAD_RESPONSE",
                )
        return BatchStatus(name, state, ok, vectors, errors)

    async def afind(self, display_name: str) -> str | None:
        """The name of a job created with ``display_name`` (a create whose answer was lost), or None."""

        async def search(client: Any) -> str | None:
            pager = await client.aio.batches.list(config={"page_size": 100})
            seen = 0
            async for job in pager:
                if job.display_name == display_name:
                    return str(job.name)
                seen += 1
                if seen >= 100 * _LIST_PAGES:
                    break
            return None

        found: str | None = await self._retried(search)
        return found

    async def acancel(self, name: str) -> None:
        await self._gone_ok(lambda c: c.aio.batches.cancel(name=name))

    async def adelete(self, name: str) -> None:
        """Remove the job and its results from the service (a job already gone is fine)."""
        await self._gone_ok(lambda c: c.aio.batches.delete(name=name))

    def record_usage(self, parts: Sequence[Sequence[Part]], titles: Sequence[str | None]) -> float:
        """Count the embedded inputs (as sent: with the task prefix and title) in the cloud usage at
        batch prices; returns the estimated USD. The estimate is edgeroute's (the job reports no
        token counts to the SDK), so it differs a little from what an interactive call reports."""
        tokens: dict[str, int] = {}
        for content, title in zip(parts, titles, strict=True):
            for k, v in _estimate(_with_prefix(list(content), "document", title)).items():
                tokens[k] = tokens.get(k, 0) + v
        self.cloud.usage.add(tokens, len(parts), prices=BATCH_PRICES)
        return BATCH_PRICES.cost(tokens)

    async def _gone_ok(self, call: Any) -> None:
        try:
            await self._retried(call)
        except CloudRejectedError as exc:
            if exc.status_code != 404:
                raise

    async def _retried(self, call: Any) -> Any:
        """An idempotent call (get, list, cancel, delete) with the embedder's retries and breaker."""
        attempts = Attempts(self.cloud.retry, self.cloud.deadline_s)
        while True:
            self.cloud._precheck()
            try:
                out = await call(self.cloud._genai())
            except Exception as exc:
                err = self.cloud._failed(exc)
                await asyncio.sleep(self.cloud._retry_delay(attempts, err, exc))
                continue
            self.cloud.breaker.record_success()
            return out


def _state(state: Any) -> str:
    """``JOB_STATE_SUCCEEDED`` -> ``succeeded`` (the SDK maps Gemini's ``BATCH_STATE_*`` to these)."""
    raw = str(getattr(state, "value", state) or "JOB_STATE_UNSPECIFIED")
    word = raw.removeprefix("JOB_STATE_").removeprefix("BATCH_STATE_").lower()
    return {"queued": "pending", "unspecified": "pending", "partially_succeeded": "succeeded"}.get(word, word)


__all__ = ["BATCH_MODELS", "BATCH_PRICES", "ENDED", "BatchEmbedder", "BatchStatus", "supports_batch"]
