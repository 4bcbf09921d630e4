"""Optional framework imports with an actionable message, and the glue both retrievers share.

The connectors are optional: importing :mod:`edgeroute.connectors.langchain` without
``langchain-core`` installed must say which extra to install, not fail with a bare
``ModuleNotFoundError`` deep inside a stack trace.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import ModuleType
from typing import Any, Protocol

from ..framework.documents import Hit, RetrievalResult
from ..framework.embedder import Embedder, Vectors
from ..framework.errors import ConfigurationError, InputError
from ..policies.sensitivity import SensitivityError, check_sensitivity

_EXTRAS: dict[str, tuple[str, str]] = {
    # top-level module -> (extra name, distribution)
    "langchain_core": ("langchain", "langchain-core"),
    "llama_index": ("llamaindex", "llama-index-core"),
}


class MissingExtraError(ConfigurationError, ImportError):
    """A connector's framework is not installed; the message names the extra to install."""


def require(module: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the pip extra that provides it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = module.split(".")[0]
        extra, dist = _EXTRAS.get(top, ("", top))
        hint = f"pip install 'edgeroute[{extra}]'" if extra else f"pip install {dist}"
        raise MissingExtraError(
            f"{module} is not installed, so this edgeroute connector cannot load ({exc}); "
            f"install it with: {hint}"
        ) from exc


# -- glue shared by the LangChain and LlamaIndex adapters ------------------------------------
# (kept here so the two adapters cannot drift apart in what a result says about its routing)


class RetrievalEngine(Protocol):
    """What the retrievers need from :class:`edgeroute.framework.router.engine.HybridEngine`: its
    ``retrieve``/``aretrieve`` pair, called as ``(query, k, sensitivity=, stakes=, deadline_ms=, where=)``."""

    retrieve: Callable[..., RetrievalResult]
    aretrieve: Callable[..., Awaitable[RetrievalResult]]


def check_engine(engine: Any) -> None:
    """:class:`InputError` unless ``engine`` has the engine's ``retrieve`` and ``aretrieve``."""
    if not callable(getattr(engine, "retrieve", None)) or not callable(getattr(engine, "aretrieve", None)):
        raise InputError(
            "engine must be an edgeroute HybridEngine (with retrieve and aretrieve), "
            f"got {type(engine).__name__}"
        )


ROUTING_OPTIONS: tuple[str, ...] = ("k", "sensitivity", "stakes", "deadline_ms", "where")


def routing_options(
    defaults: Mapping[str, Any], overrides: Mapping[str, Any], where_from: str
) -> dict[str, Any]:
    """Merge per-call options over the retriever's defaults, rejecting unknown keys and bad values."""
    unknown = sorted(set(overrides) - set(ROUTING_OPTIONS))
    if unknown:
        raise InputError(
            f"unknown option(s) {unknown} in {where_from}; "
            f"edgeroute retrievers accept {list(ROUTING_OPTIONS)}"
        )
    opts = {**defaults, **{k: v for k, v in overrides.items() if v is not None}}
    validate_options(opts)
    return opts


def validate_options(opts: Mapping[str, Any]) -> None:
    k = opts.get("k")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}; pass k=4 for the top four hits")
    try:
        check_sensitivity(opts.get("sensitivity"))
    except SensitivityError as exc:
        raise InputError(str(exc)) from None
    stakes = opts.get("stakes")
    if stakes not in ("normal", "high"):
        raise InputError(f"unknown stakes {stakes!r}; use 'normal' or 'high'")
    deadline = opts.get("deadline_ms")
    if deadline is not None and (not isinstance(deadline, int | float) or deadline <= 0):
        raise InputError(f"deadline_ms must be a positive number of milliseconds or None, got {deadline!r}")


def engine_call(query: str, opts: Mapping[str, Any]) -> tuple[tuple[str, int], dict[str, Any]]:
    """Split merged options into the engine's positional ``(query, k)`` and keyword arguments."""
    if not isinstance(query, str) or not query.strip():
        raise InputError("the query must be a non-empty string")
    kwargs = {k: opts[k] for k in ("sensitivity", "stakes", "deadline_ms", "where") if k in opts}
    return (query, int(opts["k"])), kwargs


def hit_metadata(hit: Hit, result: RetrievalResult) -> dict[str, Any]:
    """The routing facts every connector result carries, on top of the document's own metadata."""
    decision = result.decision
    reasons: Sequence[Any] = getattr(decision, "reasons", ())
    route = getattr(decision, "route", None)
    return {
        **hit.metadata,
        "id": hit.id,
        "title": hit.title,
        "route": str(getattr(route, "value", route)),
        "reasons": [getattr(r, "code", str(r)) for r in reasons],
        "index": hit.index,
        "space": hit.space,
        "score": float(hit.score),
        "rank": int(hit.rank),
        "degraded": bool(result.degraded),
    }


def load_edge_embedder(embedder: Embedder | None, model_dir: str | None) -> Embedder:
    """The given embedder, or EmbeddingGemma loaded from ``model_dir`` (the default resolution when None)."""
    if embedder is not None:
        if not isinstance(embedder, Embedder):
            raise ConfigurationError(
                f"embedder must implement edgeroute's Embedder protocol, got {type(embedder).__name__}; "
                "pass an EdgeEmbedder, a HashingEmbedder or a CloudEmbedder"
            )
        return embedder
    from ..framework.edge.embedder import EdgeEmbedder

    return EdgeEmbedder.load(model_dir)


def edge_embedder(
    embedder: Embedder | None,
    model_dir: str | None,
    dims: int | None,
    query_task: str | None,
    document_task: str | None,
) -> Embedder:
    """The on-device embedder for an adapter, with ``dims`` and both task prompts checked now."""
    resolved = load_edge_embedder(embedder, model_dir)
    resolved.space_for(dims)  # validates dims now rather than at the first call
    check_task(resolved, query_task, "query_task")
    check_task(resolved, document_task, "document_task")
    return resolved


def cloud_embedder(
    cloud: Embedder | None, model: str, dims: int, api_key: str | None, base_url: str | None
) -> Embedder:
    """The given cloud embedder, or a ``CloudEmbedder`` built from the adapter's arguments."""
    if cloud is None:
        from ..framework.cloud.embedder import CloudEmbedder

        cloud = CloudEmbedder(model=model, dims=dims, api_key=api_key, base_url=base_url)
    cloud.space_for(dims)
    return cloud


def check_task(embedder: Embedder, task: str | None, what: str) -> None:
    """Fail at construction, not at the first query, when a task prompt cannot be honoured."""
    if task is None:
        return
    names: Sequence[str] | None = getattr(embedder, "prompt_names", None)
    if names is None or not callable(getattr(embedder, "embed", None)):
        raise ConfigurationError(
            f"{what}={task!r} needs an embedder with named prompts (EdgeEmbedder); "
            f"{type(embedder).__name__} has none, so leave {what} unset"
        )
    if task not in names:
        raise ConfigurationError(f"unknown {what} {task!r}; this model's prompts are: {', '.join(names)}")


def _texts(texts: Sequence[str], what: str) -> list[str]:
    if isinstance(texts, str):
        raise InputError(f"{what} must be a list of strings, got one string; wrap it in a list")
    items = list(texts)
    for i, t in enumerate(items):
        if not isinstance(t, str) or not t.strip():
            raise InputError(f"{what}[{i}] is {t!r}; every text must be a non-empty string")
    return items


def _embed_call(
    embedder: Embedder, texts: Sequence[str], *, query: bool, task: str | None, dims: int | None, aio: bool
) -> Any:
    """The embedder call both modes make: a named task prompt when one is set, else queries or
    documents; ``aio`` picks the embedder's async method (the result is then awaitable)."""
    items = _texts(texts, "queries" if query else "texts")
    prefix = "a" if aio else ""
    if task is not None:
        return getattr(embedder, f"{prefix}embed")(items, task, dims=dims)
    method = "embed_queries" if query else "embed_documents"
    return getattr(embedder, prefix + method)(items, dims=dims)


def embed_sync(
    embedder: Embedder, texts: Sequence[str], *, query: bool, task: str | None, dims: int | None
) -> Vectors:
    """Embed queries or documents with the embedder's sync API, through a named task prompt when one is set."""
    out: Vectors = _embed_call(embedder, texts, query=query, task=task, dims=dims, aio=False)
    return out


async def embed_async(
    embedder: Embedder, texts: Sequence[str], *, query: bool, task: str | None, dims: int | None
) -> Vectors:
    """The same call through the embedder's async API (which keeps blocking work off the event loop)."""
    out: Vectors = await _embed_call(embedder, texts, query=query, task=task, dims=dims, aio=True)
    return out
