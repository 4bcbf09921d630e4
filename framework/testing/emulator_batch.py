"""The emulator's Batch API for embeddings: the routes google-genai's ``batches`` module calls, with faults.

The wire format was read from google-genai 3.6.1's ``batches.py`` and checked against the requests the
unmodified SDK sends (the Gemini Developer API, not Vertex):

- ``POST /{v}/models/{model}:asyncBatchEmbedContent`` (``batches.create_embeddings``) with
  ``{"batch": {"displayName": ..., "inputConfig": {"requests": {"requests": [{"request":
  {"content": ..., "outputDimensionality": N}}, ...]}}}}``; answers an operation
  ``{"name": "batches/ID", "metadata": {"model", "displayName", "state": "BATCH_STATE_PENDING", ...}}``;
- ``GET /{v}/batches/ID`` (``batches.get``): the same operation; once it ended, ``done`` and
  ``metadata.output.inlinedResponses.inlinedResponses[i]`` = ``{"response": {"embedding": {"values"}}}``
  or ``{"error": {"code", "message"}}``, in input order (the SDK renames it
  ``dest.inlined_embed_content_responses``);
- ``POST /{v}/batches/ID:cancel``, ``DELETE /{v}/batches/ID`` (both answer ``{}``), and
  ``GET /{v}/batches?pageSize=&pageToken=`` (``batches.list``: ``{"operations": [...], "nextPageToken"}``).

States are Gemini's ``BATCH_STATE_*`` (the SDK maps them to ``JOB_STATE_*``). A job stays PENDING, then
RUNNING, for the number of polls its script says, then ends as scripted: ``succeeded`` (per-item
errors where scripted or where an item is invalid), ``failed`` or ``expired``. What every create
carried is recorded (texts, hashes of bytes), in :attr:`BatchJobs.created` and the emulator's request
log, so tests can prove what left the device and that no rows were submitted twice.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .emulator_wire import BadRequest, embed_requests, peek_parts, status_body

CREATE_PATH = re.compile(r"^/(v1|v1beta)/models/([^/:]+):asyncBatchEmbedContent$")
JOB_PATH = re.compile(r"^/(v1|v1beta)/batches(?:/([^/:]+))?(?::(cancel))?$")
MAX_INLINE_BYTES = 20 * 1024 * 1024
"""Gemini's limit on an inline batch request's size (the batch-mode guide: "under 20MB")."""
OUTCOMES = ("succeeded", "failed", "expired")
_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.EmbedContentBatch"

Embed = Callable[[list[Any], str], tuple[list[list[float]], dict[str, int]]]


@dataclass(frozen=True, slots=True)
class BatchScript:
    """How the next created job behaves: ``polls`` gets answer PENDING/RUNNING before it ends as
    ``outcome``; ``item_errors`` are input positions answered with a per-item 400 error;
    ``lose_answer``: the job is created but the connection drops before the answer (the client cannot
    know whether the create worked)."""

    outcome: str = "succeeded"
    polls: int = 0
    item_errors: tuple[int, ...] = ()
    lose_answer: bool = False

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown batch outcome {self.outcome!r}; choose from {', '.join(OUTCOMES)}")
        if self.polls < 0:
            raise ValueError(f"polls must be >= 0, got {self.polls}")


@dataclass
class _Job:
    name: str
    model: str
    display_name: str | None
    script: BatchScript
    created: float
    output: list[dict[str, Any]]
    polls: int = 0
    state: str = "BATCH_STATE_PENDING"
    ended: float | None = None
    tokens: dict[str, int] = field(default_factory=dict)


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class BatchJobs:
    """The emulator's batch jobs (thread-safe). ``unsupported_models``: models whose create answers 404
    (as for a model the Batch API does not offer), to test the fallback to the interactive path."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self._ids = itertools.count(1)
        self._scripts: list[BatchScript] = []
        self.default = BatchScript()
        self.created: list[dict[str, Any]] = []
        """One entry per job created: name, display name, model, time and the parts of every item."""
        self.calls: list[tuple[str, str]] = []
        """``(method, path)`` of every batch call served, in order (gets, cancels, deletes included)."""
        self.unsupported_models: set[str] = set()

    def script(self, scripts: Iterable[BatchScript]) -> None:
        """Queue how the next created jobs behave, one script per job (then :attr:`default`)."""
        with self._lock:
            self._scripts.extend(scripts)

    def reset(self) -> None:
        with self._lock:
            self._jobs.clear()
            self._scripts.clear()
            self.created.clear()
            self.calls.clear()

    @property
    def live(self) -> list[str]:
        """Names of the jobs not deleted."""
        with self._lock:
            return list(self._jobs)

    def state_of(self, name: str) -> str | None:
        with self._lock:
            job = self._jobs.get(name)
            return job.state if job is not None else None

    # -- serving ---------------------------------------------------------------------------------

    def serve(
        self, method: str, path: str, query: str, raw: bytes, known: frozenset[str], embed: Embed
    ) -> tuple[int, dict[str, Any], dict[str, Any] | None] | None:
        """``(status, body, record)`` for a batch route, or None when ``path`` is not one. ``record``
        is what the request log keeps (the parts a create carried)."""
        m = CREATE_PATH.match(path)
        if m is not None and method == "POST":
            with self._lock:
                self.calls.append((method, path))
            return self._create(m.group(1), m.group(2), raw, known, embed)
        m = JOB_PATH.match(path)
        if m is None:
            return None
        with self._lock:
            self.calls.append((method, path))
        _version, job_id, verb = m.groups()
        if job_id is None:
            if method != "GET":
                return 404, status_body(404, "NOT_FOUND", f"Method not found: {method} {path}"), None
            return 200, self._list(query), None
        name = f"batches/{job_id}"
        with self._lock:
            job = self._jobs.get(name)
            if job is None:
                return 404, status_body(404, "NOT_FOUND", f"Requested entity was not found: {name}"), None
            if verb == "cancel" and method == "POST":
                if job.ended is None:
                    job.state, job.ended = "BATCH_STATE_CANCELLED", time.time()
                return 200, {}, None
            if verb is None and method == "DELETE":
                del self._jobs[name]
                return 200, {}, None
            if verb is None and method == "GET":
                self._advance(job)
                return 200, self._operation(job), None
        return 404, status_body(404, "NOT_FOUND", f"Method not found: {method} {path}"), None

    def _create(
        self, version: str, model: str, raw: bytes, known: frozenset[str], embed: Embed
    ) -> tuple[int, dict[str, Any], dict[str, Any] | None]:
        import json

        if model not in known or model in self.unsupported_models:
            body = status_body(
                404,
                "NOT_FOUND",
                f"models/{model} is not found for API version {version}, or is not supported for "
                "asyncBatchEmbedContent.",
            )
            return 404, body, None
        if len(raw) > MAX_INLINE_BYTES:
            return (
                400,
                status_body(
                    400,
                    "INVALID_ARGUMENT",
                    f"Request payload size exceeds the limit: {MAX_INLINE_BYTES} bytes.",
                ),
                None,
            )
        try:
            body = json.loads(raw or b"{}")
            batch = body.get("batch") if isinstance(body, dict) else None
            config = batch.get("inputConfig") if isinstance(batch, dict) else None
            outer = config.get("requests") if isinstance(config, dict) else None
            items = outer.get("requests") if isinstance(outer, dict) else None
            if not isinstance(items, list) or not items:
                raise BadRequest(
                    400,
                    "INVALID_ARGUMENT",
                    "* EmbedContentBatch.input_config.requests: requests is required\n",
                )
            requests = [it.get("request") if isinstance(it, dict) else None for it in items]
        except (json.JSONDecodeError, AttributeError) as exc:
            return 400, status_body(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. {exc}"), None
        except BadRequest as exc:
            return exc.code, status_body(exc.code, exc.status, exc.message), None
        record: dict[str, Any] = {"parts": batch_parts(raw)}
        with self._lock:
            script = self._scripts.pop(0) if self._scripts else self.default
        output, tokens = _embed_items(requests, model, embed, set(script.item_errors))
        now = time.time()
        with self._lock:
            name = f"batches/emu{next(self._ids):06d}"
            display = batch.get("displayName") if isinstance(batch, dict) else None
            job = _Job(name, model, display, script, now, output, tokens=tokens)
            self._jobs[name] = job
            self.created.append(
                {"name": name, "display_name": display, "model": model, "time": now, "parts": record["parts"]}
            )
            record["batch"] = name
            if script.lose_answer:
                record["lose_answer"] = True
            return 200, self._operation(job), record

    def _advance(self, job: _Job) -> None:
        """One poll: PENDING for the first half of the scripted polls, RUNNING for the rest, then the end."""
        if job.ended is not None:
            return
        job.polls += 1
        if job.polls <= job.script.polls:
            job.state = "BATCH_STATE_PENDING" if job.polls <= job.script.polls // 2 else "BATCH_STATE_RUNNING"
            return
        job.ended = time.time()
        job.state = {
            "succeeded": "BATCH_STATE_SUCCEEDED",
            "failed": "BATCH_STATE_FAILED",
            "expired": "BATCH_STATE_EXPIRED",
        }[job.script.outcome]

    def _operation(self, job: _Job) -> dict[str, Any]:
        n = len(job.output)
        done = job.state == "BATCH_STATE_SUCCEEDED"
        failed = sum("error" in o for o in job.output) if done else 0
        meta: dict[str, Any] = {
            "@type": _TYPE,
            "model": f"models/{job.model}",
            "displayName": job.display_name,
            "state": job.state,
            "createTime": _stamp(job.created),
            "updateTime": _stamp(job.ended or job.created),
            "batchStats": {
                "requestCount": str(n),
                "successfulRequestCount": str(n - failed if done else 0),
                "failedRequestCount": str(failed),
                "pendingRequestCount": str(0 if job.ended else n),
            },
        }
        if job.ended is not None:
            meta["endTime"] = _stamp(job.ended)
        op: dict[str, Any] = {"name": job.name, "metadata": meta, "done": job.ended is not None}
        if done:
            meta["output"] = {"inlinedResponses": {"inlinedResponses": job.output}}
            op["response"] = {**meta, "@type": _TYPE}
        elif job.state == "BATCH_STATE_FAILED":
            op["error"] = {"code": 13, "message": "The batch job failed: internal error while processing."}
        return op

    def _list(self, query: str) -> dict[str, Any]:
        params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        size = max(1, min(int(params.get("pageSize") or 50), 1000))
        start = int(params.get("pageToken") or 0)
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: (j.created, j.name), reverse=True)
            page = [self._operation(j) for j in jobs[start : start + size]]
        out: dict[str, Any] = {"operations": page}
        if start + size < len(jobs):
            out["nextPageToken"] = str(start + size)
        return out


def _embed_items(
    requests: list[Any], model: str, embed: Embed, errors: set[int]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """One inlined response per request, in input order: its embedding, or the 400 that an invalid
    (or scripted) item gets."""
    failed: dict[int, str] = {i: f"* requests[{i}]: the request was refused\n" for i in errors}
    for i, r in enumerate(requests):
        if not isinstance(r, dict):
            failed[i] = f"* requests[{i}].request: expected an object\n"
    good = [i for i in range(len(requests)) if i not in failed]
    vectors: dict[int, list[float]] = {}
    tokens: dict[str, int] = {}
    try:
        vecs, tokens = embed([requests[i] for i in good], model)
        vectors = dict(zip(good, vecs, strict=True))
    except BadRequest:
        # Some item is invalid: embed one at a time, so only the bad ones get an error.
        for i in good:
            try:
                (vec,), used = embed([requests[i]], model)
            except BadRequest as exc:
                failed[i] = exc.message
                continue
            vectors[i] = vec
            for k, v in used.items():
                tokens[k] = tokens.get(k, 0) + v
    out: list[dict[str, Any]] = []
    for i in range(len(requests)):
        if i in vectors:
            out.append({"response": {"embedding": {"values": vectors[i]}}, "metadata": {}})
        else:
            out.append({"error": {"code": 400, "message": failed[i]}})
    return out, tokens


def batch_parts(raw: bytes) -> list[list[dict[str, Any]]]:
    """What each item of a batch create carried (as :func:`peek_parts` logs an embedding call)."""
    import json

    try:
        body = json.loads(raw or b"{}")
        items = body["batch"]["inputConfig"]["requests"]["requests"]
        requests = [it.get("request") for it in items if isinstance(it, dict)]
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
        return []
    return peek_parts(json.dumps({"requests": requests}).encode())


def embedder_for(text_vectors: Any, media_vector: Any) -> Embed:
    """The emulator's own embedding of a list of EmbedContentRequests (validation included)."""

    def embed(reqs: list[Any], model: str) -> tuple[list[list[float]], dict[str, int]]:
        if not reqs:
            return [], {}
        return embed_requests(reqs, model, text_vectors, media_vector)

    return embed


__all__ = [
    "CREATE_PATH",
    "JOB_PATH",
    "MAX_INLINE_BYTES",
    "OUTCOMES",
    "BatchJobs",
    "BatchScript",
    "batch_parts",
    "embedder_for",
]
