"""LlamaIndex adapters: a routing retriever, EmbeddingGemma / Gemini Embedding 2 embeddings, a tool retriever.

Install with ``pip install 'edgeroute[llamaindex]'``. Nothing here touches LlamaIndex's global
``Settings``: pass the embedding model and the retriever explicitly. Every ``NodeWithScore``
carries the routing facts (``route``, ``reasons``, ``index``, ``space``, ``score``, ``rank``,
``degraded``) in its node's metadata, hidden from the LLM prompt and from embedding.
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._compat import require

require("llama_index.core")

from llama_index.core.base.base_retriever import BaseRetriever  # noqa: E402
from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding  # noqa: E402
from llama_index.core.callbacks import CallbackManager  # noqa: E402
from llama_index.core.objects import ObjectRetriever, SimpleToolNodeMapping  # noqa: E402
from llama_index.core.objects.tool_node_mapping import convert_tool_to_node  # noqa: E402
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode  # noqa: E402
from llama_index.core.tools import BaseTool  # noqa: E402
from pydantic import PrivateAttr  # noqa: E402

from ..framework.cloud.media import DEFAULT_MODEL  # noqa: E402
from ..framework.documents import RetrievalResult  # noqa: E402
from ..framework.embedder import Embedder  # noqa: E402
from ..framework.errors import InputError  # noqa: E402
from . import _compat  # noqa: E402
from ._compat import RetrievalEngine, check_engine, cloud_embedder, edge_embedder, embed_async, embed_sync  # noqa: E402

if TYPE_CHECKING:
    from .tools import ToolDecision, ToolRouter

__all__ = [
    "EdgeRouteRetriever",
    "EmbeddingGemmaEmbedding",
    "GeminiEmbedding",
    "ToolRouterRetriever",
    "to_nodes",
    "tool_object_retriever",
]

_ROUTING_KEYS = ["id", "title", "route", "reasons", "index", "space", "score", "rank", "degraded"]


def to_nodes(result: RetrievalResult) -> list[NodeWithScore]:
    """LlamaIndex nodes for an engine result, each carrying the routing metadata."""
    return [
        NodeWithScore(
            node=TextNode(
                id_=hit.id,
                text=hit.text,
                metadata=_compat.hit_metadata(hit, result),
                excluded_embed_metadata_keys=list(_ROUTING_KEYS),
                excluded_llm_metadata_keys=list(_ROUTING_KEYS),
            ),
            score=float(hit.score),
        )
        for hit in result.hits
    ]


class EdgeRouteRetriever(BaseRetriever):
    """A LlamaIndex retriever over :class:`~edgeroute.framework.router.engine.HybridEngine`.

    ``k``, ``sensitivity``, ``stakes``, ``deadline_ms`` and ``where`` apply to every call; use
    :meth:`with_options` for a copy with other settings. ``last_result`` holds the most recent
    engine result, decision and audit record included.
    """

    def __init__(
        self,
        engine: RetrievalEngine,
        *,
        k: int = 4,
        sensitivity: str = "internal",
        stakes: str = "normal",
        deadline_ms: float | None = None,
        where: dict[str, Any] | None = None,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        check_engine(engine)
        self._engine = engine
        self._options: dict[str, Any] = {
            "k": k,
            "sensitivity": sensitivity,
            "stakes": stakes,
            "deadline_ms": deadline_ms,
            "where": where,
        }
        _compat.validate_options(self._options)
        self.last_result: RetrievalResult | None = None
        super().__init__(callback_manager=callback_manager)

    @property
    def options(self) -> dict[str, Any]:
        """The per-call options this retriever passes to the engine."""
        return dict(self._options)

    def with_options(self, **overrides: Any) -> EdgeRouteRetriever:
        """A copy of this retriever with some options changed (``k``, ``sensitivity`` ...)."""
        opts = _compat.routing_options(self._options, overrides, "with_options")
        return EdgeRouteRetriever(self._engine, callback_manager=self.callback_manager, **opts)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        args, kw = _compat.engine_call(query_bundle.query_str, self._options)
        result = self._engine.retrieve(*args, **kw)
        self.last_result = result
        return to_nodes(result)

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        args, kw = _compat.engine_call(query_bundle.query_str, self._options)
        result = await self._engine.aretrieve(*args, **kw)
        self.last_result = result
        return to_nodes(result)


class _EdgeRouteEmbedding(BaseEmbedding):
    """Shared body: every LlamaIndex hook maps onto the edgeroute embedder, batch and async included."""

    dims: int | None = None
    _embedder: Embedder = PrivateAttr()
    _query_task: str | None = PrivateAttr(default=None)
    _document_task: str | None = PrivateAttr(default=None)

    def _setup(
        self,
        embedder: Embedder,
        dims: int | None,
        embed_batch_size: int,
        callback_manager: CallbackManager | None,
        tasks: tuple[str | None, str | None] = (None, None),
    ) -> None:
        _EdgeRouteEmbedding.__init__(  # pydantic's __init__, with this class's ``dims`` field
            self,
            model_name=embedder.space_for(dims).fingerprint,
            dims=dims,
            embed_batch_size=embed_batch_size,
            callback_manager=callback_manager or CallbackManager(),
        )
        self._embedder = embedder
        self._query_task, self._document_task = tasks

    def _vectors(self, texts: Sequence[str], query: bool) -> list[Embedding]:
        task = self._query_task if query else self._document_task
        out: list[Embedding] = embed_sync(
            self._embedder, texts, query=query, task=task, dims=self.dims
        ).tolist()
        return out

    async def _avectors(self, texts: Sequence[str], query: bool) -> list[Embedding]:
        task = self._query_task if query else self._document_task
        vecs = await embed_async(self._embedder, texts, query=query, task=task, dims=self.dims)
        out: list[Embedding] = vecs.tolist()
        return out

    @property
    def embedder(self) -> Embedder:
        """The edgeroute embedder doing the work."""
        return self._embedder

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._vectors([query], True)[0]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return (await self._avectors([query], True))[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._vectors([text], False)[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._avectors([text], False))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._vectors(texts, False) if texts else []

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await self._avectors(texts, False) if texts else []


class EmbeddingGemmaEmbedding(_EdgeRouteEmbedding):
    """On-device EmbeddingGemma for LlamaIndex (``VectorStoreIndex``, ``IngestionPipeline`` ...).

    ``embedder`` is any edgeroute embedder (a loaded ``EdgeEmbedder``; ``HashingEmbedder`` in tests);
    when None, EmbeddingGemma is loaded from ``model_dir`` or the default model cache.
    ``query_task`` / ``document_task`` name one of the model's prompts instead of the retrieval ones.
    """

    def __init__(
        self,
        embedder: Embedder | None = None,
        *,
        model_dir: str | None = None,
        dims: int | None = None,
        query_task: str | None = None,
        document_task: str | None = None,
        embed_batch_size: int = 16,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        resolved = edge_embedder(embedder, model_dir, dims, query_task, document_task)
        self._setup(resolved, dims, embed_batch_size, callback_manager, (query_task, document_task))

    @classmethod
    def class_name(cls) -> str:
        return "EmbeddingGemmaEmbedding"


class GeminiEmbedding(_EdgeRouteEmbedding):
    """Gemini Embedding 2 (cloud) for LlamaIndex, through google-genai.

    Pass a configured ``CloudEmbedder`` as ``cloud``, or let one be built from ``model``, ``dims``,
    ``api_key`` (default ``GEMINI_API_KEY``) and ``base_url`` (default ``GOOGLE_GEMINI_BASE_URL``).
    The API key never appears in the model's payload or repr.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        dims: int = 768,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        cloud: Embedder | None = None,
        embed_batch_size: int = 100,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        embedder = cloud_embedder(cloud, model, dims, api_key, base_url)
        self._setup(embedder, dims, embed_batch_size, callback_manager)

    @classmethod
    def class_name(cls) -> str:
        return "GeminiEmbedding"


class ToolRouterRetriever(BaseRetriever):
    """Retrieves tool nodes chosen by a :class:`~edgeroute.connectors.tools.ToolRouter`.

    An unsure decision yields no nodes ("no tool / ask the user"). ``last_decision`` is the
    :class:`~edgeroute.connectors.tools.ToolDecision` of the last retrieval *in this thread or asyncio
    task* (a context variable), so concurrent retrievals never read each other's decision.
    """

    def __init__(self, router: ToolRouter, tools: Sequence[BaseTool], *, k: int = 3) -> None:
        if k < 1:
            raise InputError(f"k must be a positive integer, got {k}")
        self._router = router
        self._nodes = {str(t.metadata.name): convert_tool_to_node(t) for t in tools}
        missing = sorted(set(self._nodes) - set(router.tool_names))
        if missing:
            raise InputError(
                f"tools {missing} are not registered with the router; register each with "
                "router.register(name, description, examples) first"
            )
        self._k = k
        self._last: contextvars.ContextVar[ToolDecision | None] = contextvars.ContextVar(
            f"edgeroute_tool_retrieval_{id(self)}", default=None
        )
        super().__init__()

    @property
    def last_decision(self) -> ToolDecision | None:
        return self._last.get()

    def _nodes_for(self, decision: ToolDecision) -> list[NodeWithScore]:
        self._last.set(decision)
        return [
            NodeWithScore(node=self._nodes[name], score=score)
            for name, score in decision.tools
            if name in self._nodes
        ]

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self._nodes_for(self._router.route(query_bundle.query_str, k=self._k))

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self._nodes_for(await self._router.aroute(query_bundle.query_str, k=self._k))


def tool_object_retriever(
    router: ToolRouter, tools: Sequence[BaseTool], *, k: int = 3
) -> ObjectRetriever[BaseTool]:
    """An ``ObjectRetriever`` over ``tools`` for LlamaIndex agents, routed on-device by ``router``.

    ``tool_object_retriever(router, tools).retrieve("refund my order")`` returns the tools to offer.
    """
    mapping = SimpleToolNodeMapping.from_objects(list(tools))
    return ObjectRetriever(retriever=ToolRouterRetriever(router, tools, k=k), object_node_mapping=mapping)
