"""Gemini Embedding 2 through the official google-genai client: batched, bounded, retried, guarded.

``CloudEmbedder`` fulfils the :class:`~edgeroute.framework.embedder.Embedder` protocol and adds
multimodal and interleaved inputs (``embed``), usage and cost accounting, a circuit breaker and
an explicit offline mode. Errors are translated into the tree in :mod:`edgeroute.framework.errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import numpy as np

from ..aio import close_at_exit, in_portal, syncify
from ..embedder import Vectors, l2_normalize
from ..errors import (
    CloudAuthError,
    CloudError,
    CloudRejectedError,
    CloudUnavailableError,
    ConfigurationError,
    InputError,
)
from ..parts import Part
from ..spaces import EmbeddingSpace
from .breaker import BreakerState, CircuitBreaker
from .ledger import SpendLedger
from .media import DEFAULT_MODEL, estimate_part_tokens, validate_content, validate_dims, wire_mime
from .pricing import PriceTable, price_table
from .retry import Attempts, RetryPolicy, parse_retry_after

logger = logging.getLogger(__name__)

MAX_BATCH = 100
PROMPT_FORMAT = "gemini-embedding-2-task-prefix-v1"
# Embedding 2 takes task instructions as text prefixes (shared API notes); "none" sends text as is.
TASK_PREFIXES: dict[str, str] = {
    "query": "task: search result | query: ",
    "question_answering": "task: question answering | query: ",
    "fact_checking": "task: fact checking | query: ",
    "code_retrieval": "task: code retrieval | query: ",
    "classification": "task: classification | query: ",
    "clustering": "task: clustering | query: ",
    "sentence_similarity": "task: sentence similarity | query: ",
    "none": "",
}
_MODALITY_KEYS = {"TEXT": "text", "IMAGE": "image", "AUDIO": "audio", "VIDEO": "video", "DOCUMENT": "pdf"}
_NETWORK_MODULES = ("httpx", "httpx2", "httpcore", "aiohttp", "anyio", "h11")

ContentInput = str | Sequence[Part]
Guard = Callable[[Sequence[Sequence[Part]]], None]


@dataclass
class CloudUsage:
    """What the cloud has been asked for so far by this process, and its estimated cost in USD.

    With a ``ledger`` every call is also added to the store's :class:`SpendLedger`, which every
    process on the store shares: :meth:`spent_usd` is then the store's total, the figure a budget
    cap must hold against.
    """

    prices: PriceTable = field(default_factory=PriceTable)
    tokens: dict[str, int] = field(default_factory=dict)
    requests: int = 0  # embedding inputs (one vector each)
    calls: int = 0  # HTTP calls that returned vectors
    ledger: SpendLedger | None = field(default=None, repr=False, compare=False)
    discount_usd: float = 0.0  # what calls priced by another table (the Batch API's) cost less
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def spent_usd(self) -> float:
        """Spend the budget counts: the store's ledger total when there is one, else this process's."""
        return self.ledger.total().cost_usd if self.ledger is not None else self.cost_usd

    @property
    def total_tokens(self) -> int:
        return sum(self.tokens.values())

    @property
    def cost_usd(self) -> float:
        """Estimated USD from the price table (standard API prices by default), less what batch calls saved."""
        return self.prices.cost(self.tokens) - self.discount_usd

    def add(self, tokens: Mapping[str, int], requests: int, *, prices: PriceTable | None = None) -> None:
        """Count one call; ``prices`` (the Batch API's, say) replace the table for its cost."""
        table = prices or self.prices
        with self._lock:
            for k, v in tokens.items():
                self.tokens[k] = self.tokens.get(k, 0) + v
            self.requests += requests
            self.calls += 1
            if prices is not None:
                self.discount_usd += self.prices.cost(tokens) - prices.cost(tokens)
        if self.ledger is not None:
            self.ledger.add(tokens, {m: table.cost({m: n}) for m, n in tokens.items()}, requests)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tokens": dict(self.tokens),
            "total_tokens": self.total_tokens,
            "requests": self.requests,
            "calls": self.calls,
            "cost_usd": round(self.cost_usd, 8),
        }


@dataclass(frozen=True, slots=True)
class _Batch:
    contents: list[Any]  # google.genai.types.Content, one per vector
    estimates: list[dict[str, int]]  # estimated tokens by modality per content
    dims: int


class CloudEmbedder:
    """Embeds text and media with Gemini Embedding 2 (:data:`~.media.DEFAULT_MODEL` by default).

    The api key comes from ``api_key`` or the ``GEMINI_API_KEY`` / ``GOOGLE_API_KEY`` environment
    variables and is never logged; ``base_url`` from the argument or ``GOOGLE_GEMINI_BASE_URL``.
    ``timeout_s`` bounds each HTTP attempt, ``deadline_s`` (default ``2 * timeout_s``) a whole call
    with its retries. ``guard`` runs on the final inputs before any request (the router's privacy
    guard raises :class:`PrivacyViolationError` there).
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        dims: int = 768,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        client: Any | None = None,
        api_version: str | None = None,
        timeout_s: float = 30.0,
        max_attempts: int = 4,
        concurrency: int = 4,
        breaker: CircuitBreaker | None = None,
        offline: bool = False,
        prices: PriceTable | Mapping[str, float] | None = None,
        guard: Guard | None = None,
        deadline_s: float | None = None,
        retry: RetryPolicy | None = None,
        ledger: SpendLedger | None = None,
    ) -> None:
        if not model or "embedding" not in model:
            raise ConfigurationError(f"model {model!r} is not an embedding model id; use {DEFAULT_MODEL!r}")
        self.model = model
        self.dims = validate_dims(dims)
        if timeout_s <= 0 or concurrency < 1:
            raise ConfigurationError("timeout_s must be > 0 and concurrency >= 1")
        self._api_key = api_key or os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")
        self.base_url = base_url or os.environ.get("GOOGLE_GEMINI_BASE_URL")
        self.api_version = api_version
        self.timeout_s = timeout_s
        self.deadline_s = deadline_s if deadline_s is not None else 2 * timeout_s
        self.concurrency = concurrency
        self.retry = retry or RetryPolicy(max_attempts=max_attempts)
        self.breaker = breaker or CircuitBreaker()
        self.offline = offline
        self.usage = CloudUsage(prices=price_table(prices), ledger=ledger)
        self.guard = guard
        self._client = client
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._client_lock = threading.Lock()
        self.last_error: str | None = None
        self._configs: dict[int, Any] = {}
        host = urlparse(self.base_url).hostname if self.base_url else None
        # Vectors from the loopback emulator must never be mixed with Gemini's: give them their own space.
        revision = "loopback-emulator" if host in ("127.0.0.1", "localhost", "::1") else "api"
        self._space = EmbeddingSpace("cloud", model, revision, self.dims, "none", PROMPT_FORMAT)

    def __repr__(self) -> str:  # the api key stays out of reprs and logs
        return (
            f"CloudEmbedder(model={self.model!r}, dims={self.dims}, "
            f"base_url={self.base_url!r}, offline={self.offline})"
        )

    # -- spaces and health -----------------------------------------------------------------

    @property
    def space(self) -> EmbeddingSpace:
        return self._space

    def space_for(self, dims: int | None = None) -> EmbeddingSpace:
        return self._space.with_dims(validate_dims(dims) if dims is not None else self.dims)

    @property
    def breaker_state(self) -> BreakerState:
        return self.breaker.state

    def health(self) -> dict[str, Any]:
        """A snapshot for ``edgeroute status`` and the router: breaker state, offline flag, usage."""
        state = self.breaker.state
        return {
            "provider": "cloud",
            "model": self.model,
            "dims": self.dims,
            "base_url": self.base_url or "https://generativelanguage.googleapis.com",
            "offline": self.offline,
            "breaker": state,
            "available": not self.offline and state != "open",
            "consecutive_failures": self.breaker.consecutive_failures,
            "retry_in_s": round(self.breaker.retry_in(), 3),
            "last_error": self.last_error,
            "usage": self.usage.as_dict(),
            "store_spend": self.usage.ledger.total().as_dict() if self.usage.ledger is not None else None,
        }

    # -- public embedding API ----------------------------------------------------------------

    async def aembed_queries(self, texts: Sequence[str], *, dims: int | None = None) -> Vectors:
        """One vector per query, with the search-query task prefix."""
        return await self.aembed(_texts(texts), task="query", dims=dims)

    async def aembed_documents(
        self, texts: Sequence[str], *, titles: Sequence[str | None] | None = None, dims: int | None = None
    ) -> Vectors:
        """One vector per document, with the ``title: ... | text: ...`` prefix."""
        return await self._send_all(self._prepare(_texts(texts), "document", titles, dims))

    async def aembed(
        self, contents: Sequence[ContentInput], *, task: str = "document", dims: int | None = None
    ) -> Vectors:
        """One vector per content: a str, or a sequence of :class:`Part` (interleaved into ONE vector)."""
        return await self._send_all(self._prepare(contents, task, None, dims))

    embed_queries = syncify(aembed_queries)
    embed_documents = syncify(aembed_documents)
    embed = syncify(aembed)

    # -- preparation (shared by sync and async) ----------------------------------------------

    def _prepare(
        self,
        contents: Sequence[ContentInput],
        task: str,
        titles: Sequence[str | None] | None,
        dims: int | None,
    ) -> list[_Batch]:
        d = validate_dims(dims) if dims is not None else self.dims
        if isinstance(contents, str | Part):
            raise InputError(
                "contents must be a list of inputs (a str, or a list of Parts for one interleaved input)"
            )
        if not contents:
            raise InputError("nothing to embed: pass at least one input")
        if task != "document" and task not in TASK_PREFIXES:
            raise InputError(f"unknown task {task!r}; choose from document, {', '.join(TASK_PREFIXES)}")
        if titles is not None and len(titles) != len(contents):
            raise InputError(
                f"got {len(titles)} titles for {len(contents)} texts; pass one title (or None) per text"
            )
        final: list[list[Part]] = []
        for i, content in enumerate(contents):
            parts = [Part.text(content)] if isinstance(content, str) else list(content)
            validate_content(parts, i)
            title = titles[i] if titles is not None else None
            final.append(_with_prefix(parts, task, title))
        if self.guard is not None:
            self.guard(final)
        from google.genai import types

        batches: list[_Batch] = []
        for start in range(0, len(final), MAX_BATCH):
            chunk = final[start : start + MAX_BATCH]
            batches.append(
                _Batch(
                    contents=[types.Content(parts=[_to_genai(p, types) for p in c]) for c in chunk],
                    estimates=[_estimate(c) for c in chunk],
                    dims=d,
                )
            )
        return batches

    # -- I/O -------------------------------------------------------------------------------

    @staticmethod
    def prefetch() -> None:
        """Import the client library (google-genai and its transport, ~0.5 s of CPU) on a thread of its
        own and return at once, for a caller that will call soon and has other work meanwhile (ingest,
        while the edge model runs). Nothing is sent; an import that fails here fails the first call."""
        if "google.genai.errors" not in sys.modules:
            threading.Thread(target=_import_client, name="edgeroute-genai-import", daemon=True).start()

    def _genai(self) -> Any:
        """The google-genai client for the running event loop.

        Its async transport (an aiohttp or httpx session) belongs to the loop that first used it, so
        the sync API's portal loop and a caller's own loop (pytest-asyncio, Jupyter) each get their
        own client; a client passed to the constructor is the caller's to share.
        """
        if self._client is not None:
            return self._client
        loop = asyncio.get_running_loop()
        with self._client_lock:
            client = self._clients.get(loop)
            if client is None:
                client = self._clients[loop] = self._new_client()
                if in_portal():
                    close_at_exit(client.aio)
        return client

    def _new_client(self) -> Any:
        if not self._api_key:
            raise ConfigurationError(
                "no Gemini api key: pass api_key=..., or set GEMINI_API_KEY (or GOOGLE_API_KEY)"
            )
        from google import genai
        from google.genai import types

        # No SDK retries: it ignores Retry-After, so retry.py does it. attempts=1 also turns off
        # the async path's hidden 1-10 s sleep-and-retry on dropped aiohttp connections.
        options = types.HttpOptions(
            base_url=self.base_url,
            api_version=self.api_version,
            timeout=int(self.timeout_s * 1000),
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        return genai.Client(api_key=self._api_key, http_options=options)

    def _precheck(self) -> None:
        if self.offline:
            raise CloudUnavailableError(
                "the cloud embedder is in offline mode; set .offline = False to call Gemini again",
                status="OFFLINE",
            )
        self.breaker.before_call()

    def _config(self, dims: int, remaining_s: float) -> Any:
        from google.genai import types

        if remaining_s >= self.timeout_s:
            # The client's own timeout applies; skip building and merging per-request HttpOptions.
            config = self._configs.get(dims)
            if config is None:
                config = self._configs[dims] = types.EmbedContentConfig(output_dimensionality=dims)
            return config
        timeout_ms = max(1, int(remaining_s * 1000))
        return types.EmbedContentConfig(
            output_dimensionality=dims, http_options=types.HttpOptions(timeout=timeout_ms)
        )

    def _accept(self, batch: _Batch, response: Any) -> Vectors:
        embeddings = response.embeddings or []
        if len(embeddings) != len(batch.contents):
            raise CloudUnavailableError(
                f"Gemini returned {len(embeddings)} embeddings for {len(batch.contents)} inputs",
                status="BAD_RESPONSE",
            )
        vectors = l2_normalize(np.asarray([e.values for e in embeddings], dtype=np.float32))
        if vectors.shape[1] != batch.dims:
            raise CloudRejectedError(
                f"Gemini returned {vectors.shape[1]}-dim vectors for output_dimensionality={batch.dims}",
                status="BAD_RESPONSE",
            )
        self.usage.add(_usage_tokens(response, batch.estimates), len(batch.contents))
        return vectors

    def _failed(self, exc: Exception) -> CloudError:
        err = _translate(exc, self._api_key, self.base_url)
        self.last_error = str(err)
        if isinstance(err, CloudUnavailableError):
            self.breaker.record_failure()
        return err

    def _retry_delay(self, attempts: Attempts, err: CloudError, exc: Exception) -> float:
        """Seconds to wait before the next attempt; raises (and logs, once) when the call has failed.

        A failed attempt that a retry may still fix is only logged at debug level: "gemini call failed"
        is for calls that did fail, not for a 503 the next attempt absorbed.
        """
        if not isinstance(err, CloudUnavailableError):
            logger.warning("gemini call failed: %s", err)
            raise err from exc
        try:
            wait = attempts.next_delay(err)
        except CloudError as final:
            logger.warning("gemini call failed after %d attempt(s): %s", attempts.attempt, final)
            raise
        logger.debug("gemini attempt %d failed (%s); retrying in %.2f s", attempts.attempt, err, wait)
        return wait

    async def _send(self, batch: _Batch) -> Vectors:
        attempts = Attempts(self.retry, self.deadline_s)
        while True:
            self._precheck()
            try:
                response = await self._genai().aio.models.embed_content(
                    model=self.model,
                    contents=batch.contents,
                    config=self._config(batch.dims, attempts.remaining()),
                )
            except Exception as exc:
                await asyncio.sleep(self._retry_delay(attempts, self._failed(exc), exc))
                continue
            self.breaker.record_success()
            return self._accept(batch, response)

    async def _send_all(self, batches: list[_Batch]) -> Vectors:
        if self.offline:
            self._precheck()
        if len(batches) == 1:
            return await self._send(batches[0])
        sem = asyncio.Semaphore(self.concurrency)

        async def one(batch: _Batch) -> Vectors:
            async with sem:
                return await self._send(batch)

        tasks = [asyncio.ensure_future(one(b)) for b in batches]
        try:
            parts = await asyncio.gather(*tasks)
        except BaseException:
            # One batch failed (or the caller gave up): the others must not run on, unseen.
            for t in tasks:
                t.cancel()
            await asyncio.wait(tasks)
            raise
        return np.concatenate(parts, axis=0)


def _texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise InputError("pass a list of texts, not a single string (wrap it: [text])")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise InputError(f"texts must be strings; item {bad[0]} is {type(texts[bad[0]]).__name__}")
    return list(texts)


def _with_prefix(parts: list[Part], task: str, title: str | None) -> list[Part]:
    prefix = f"title: {title or 'none'} | text: " if task == "document" else TASK_PREFIXES[task]
    if not prefix:
        return parts
    for j, p in enumerate(parts):
        if p.text_value is not None:
            # Only the first text part carries the instruction; media-only inputs go as they are.
            return [*parts[:j], Part.text(prefix + p.text_value), *parts[j + 1 :]]
    return parts


def _import_client() -> None:
    import importlib

    for name in ("google.genai", "google.genai.types", "google.genai.errors", "anyio", "h11"):
        with contextlib.suppress(Exception):
            importlib.import_module(name)


def _to_genai(part: Part, types: Any) -> Any:
    if part.text_value is not None:
        return types.Part(text=part.text_value)
    mime = wire_mime(part.mime_type)
    if part.uri is not None:
        return types.Part(file_data=types.FileData(file_uri=part.uri, mime_type=mime))
    return types.Part(inline_data=types.Blob(data=part.data, mime_type=mime))


def _estimate(parts: Sequence[Part]) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in parts:
        m = p.modality
        out[m] = out.get(m, 0) + estimate_part_tokens(p)
    return out


def _usage_tokens(response: Any, estimates: list[dict[str, int]]) -> dict[str, int]:
    """Tokens by modality: the response's details if the SDK kept them, else its total split by estimate."""
    meta = getattr(response, "usage_metadata", None)
    details = getattr(meta, "prompt_tokens_details", None) or []
    if details:
        out: dict[str, int] = {}
        for d in details:
            key = _MODALITY_KEYS.get(str(getattr(d.modality, "value", d.modality)), "text")
            out[key] = out.get(key, 0) + int(d.token_count or 0)
        return out
    est: dict[str, int] = {}
    for e in estimates:
        for k, v in e.items():
            est[k] = est.get(k, 0) + v
    total = getattr(meta, "prompt_token_count", None)
    if not total:
        return est
    whole = sum(est.values()) or 1
    return {k: round(total * v / whole) for k, v in est.items()}


def _header(response: Any, name: str) -> str | None:
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        value = headers.get(name) or headers.get(name.lower())
    except AttributeError:
        return None
    return str(value) if value is not None else None


def _is_auth_failure(code: int, exc: Any) -> bool:
    if code in (401, 403):
        return True
    text = f"{exc.message} {exc.details}".lower()
    return code == 400 and ("api key not valid" in text or "api_key_invalid" in text)


def _translate(exc: Exception, api_key: str | None, base_url: str | None) -> CloudError:
    """Map an SDK or transport exception onto the edgeroute error tree; re-raise anything else."""
    from google.genai import errors as genai_errors

    def clean(text: str) -> str:
        return text.replace(api_key, "***") if api_key and len(api_key) >= 8 else text

    if isinstance(exc, genai_errors.APIError):
        code = int(exc.code or 0)
        message = clean(f"Gemini answered {code} {exc.status}: {exc.message}")
        if code in (408, 429) or code >= 500:
            retry_after = parse_retry_after(_header(exc.response, "Retry-After"))
            return CloudUnavailableError(
                message, status_code=code, status=exc.status, retry_after=retry_after
            )
        if _is_auth_failure(code, exc):
            # Gemini answers a bad key with 400 INVALID_ARGUMENT ("API key not valid"): not a malformed request.
            return CloudAuthError(
                f"API key rejected: {message} (check GEMINI_API_KEY / GOOGLE_API_KEY"
                + (" and that the Gemini API is enabled for the key's project)" if code == 403 else ")"),
                status_code=code,
                status=exc.status,
            )
        hint = {
            400: "the request was malformed or an input is over a limit",
            404: f"check the model id ({DEFAULT_MODEL}) and api_version",
        }.get(code, "the request was refused")
        return CloudRejectedError(f"{message} ({hint})", status_code=code, status=exc.status)
    module = type(exc).__module__.split(".")[0]
    if isinstance(exc, TimeoutError | OSError | asyncio.TimeoutError) or module in _NETWORK_MODULES:
        where = base_url or "https://generativelanguage.googleapis.com"
        kind = "timed out" if "timeout" in type(exc).__name__.lower() else "failed"
        if _refused(exc):
            # Said the same way whichever transport the SDK used (httpx or aiohttp word it differently).
            return CloudUnavailableError(
                f"the call to Gemini at {where} failed: connection refused ({type(exc).__name__}); "
                "check the base URL and that the server is up"
            )
        return CloudUnavailableError(
            clean(f"the call to Gemini at {where} {kind}: {type(exc).__name__}: {exc}")
        )
    raise exc


def _refused(exc: BaseException | None) -> bool:
    """True when the transport error comes from a refused TCP connection."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, ConnectionRefusedError):
            return True
        exc = getattr(exc, "os_error", None) or exc.__cause__ or exc.__context__
        seen += 1
    return False
