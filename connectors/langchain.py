"""LangChain adapters: a routing retriever and EmbeddingGemma / Gemini Embedding 2 embeddings.

Install with ``pip install 'edgeroute[langchain]'``. Every retrieved ``Document`` says where it
came from (``route``, ``reasons``, ``index``, ``space``, ``score``, ``rank``, ``degraded`` in its
metadata). Sync hooks call edgeroute's sync API, async hooks its async API: one core underneath
(ONNX inference on the embedder's own thread, Gemini through google-genai's async client).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._compat import require

require("langchain_core")

from langchain_core.callbacks import (  # noqa: E402
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document as LCDocument  # noqa: E402
from langchain_core.embeddings import Embeddings  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from langchain_core.runnables import RunnableConfig  # noqa: E402
from langchain_core.tools import BaseTool  # noqa: E402
from pydantic import ConfigDict, Field  # noqa: E402

from ..framework.cloud.media import DEFAULT_MODEL  # noqa: E402
from ..framework.documents import RetrievalResult  # noqa: E402
from ..framework.embedder import Embedder  # noqa: E402
from ..framework.errors import InputError  # noqa: E402
from ..framework.parts import Part  # noqa: E402
from . import tools as _tools  # noqa: E402
from ._compat import (  # noqa: E402
    RetrievalEngine,
    check_engine,
    cloud_embedder,
    edge_embedder,
    embed_async,
    embed_sync,
    engine_call,
    hit_metadata,
    routing_options,
    validate_options,
)

__all__ = [
    "DECISION_EVENT",
    "EdgeRouteRetriever",
    "EmbeddingGemmaEmbeddings",
    "GeminiEmbeddings",
    "select_tools",
    "to_documents",
]


DECISION_EVENT = "edgeroute_decision"
"""The custom callback event each retrieval emits, as a child of the retriever run: its data is
``{"decision": RouteDecision.to_dict(), "audit": the audit record}`` (also for an empty result)."""


def _event(result: RetrievalResult) -> dict[str, Any]:
    to_dict = getattr(result.decision, "to_dict", None)
    return {
        "decision": to_dict() if callable(to_dict) else repr(result.decision),
        "audit": dict(result.audit),
    }


def to_documents(result: RetrievalResult) -> list[LCDocument]:
    """LangChain documents for an engine result, each carrying the routing metadata."""
    return [
        LCDocument(page_content=hit.text, metadata=hit_metadata(hit, result), id=hit.id)
        for hit in result.hits
    ]


class EdgeRouteRetriever(BaseRetriever):
    """A LangChain retriever over :class:`~edgeroute.framework.router.engine.HybridEngine`.

    Defaults set here (``k``, ``sensitivity``, ``stakes``, ``deadline_ms``, ``where``) can be
    overridden per call as keyword arguments (``retriever.invoke(q, k=2, sensitivity="restricted")``)
    or through the config (``config={"configurable": {"sensitivity": "restricted"}}``).
    ``last_result`` holds the most recent engine result (decision and audit record included).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    engine: Any = Field(description="a HybridEngine (anything with retrieve/aretrieve)")
    k: int = 4
    sensitivity: str = "internal"
    stakes: str = "normal"
    deadline_ms: float | None = None
    where: dict[str, Any] | None = None
    last_result: RetrievalResult | None = Field(default=None, exclude=True)

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        # Checked after pydantic so callers get InputError itself, not a wrapped ValidationError.
        engine = self.engine
        check_engine(engine)
        validate_options(self._defaults())

    def _defaults(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "sensitivity": self.sensitivity,
            "stakes": self.stakes,
            "deadline_ms": self.deadline_ms,
            "where": self.where,
        }

    @staticmethod
    def _from_config(config: RunnableConfig | None) -> dict[str, Any]:
        configurable = dict((config or {}).get("configurable") or {})
        return {
            k: v
            for k, v in configurable.items()
            if k in ("k", "sensitivity", "stakes", "deadline_ms", "where")
        }

    def invoke(self, input: str, config: RunnableConfig | None = None, **kwargs: Any) -> list[LCDocument]:
        return super().invoke(input, config, **{**self._from_config(config), **kwargs})

    async def ainvoke(
        self, input: str, config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[LCDocument]:
        return await super().ainvoke(input, config, **{**self._from_config(config), **kwargs})

    def _engine_call(self, kwargs: dict[str, Any], query: str) -> tuple[tuple[str, int], dict[str, Any]]:
        return engine_call(query, routing_options(self._defaults(), kwargs, "the retriever call"))

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[LCDocument]:
        args, kw = self._engine_call(kwargs, query)
        engine: RetrievalEngine = self.engine
        self.last_result = result = engine.retrieve(*args, **kw)
        run_manager.get_child().on_custom_event(DECISION_EVENT, _event(result))
        return to_documents(result)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[LCDocument]:
        args, kw = self._engine_call(kwargs, query)
        engine: RetrievalEngine = self.engine
        self.last_result = result = await engine.aretrieve(*args, **kw)
        await run_manager.get_child().on_custom_event(DECISION_EVENT, _event(result))
        return to_documents(result)


class _EdgeRouteEmbeddings(Embeddings):
    """Shared body: LangChain's four hooks map onto the edgeroute embedder's sync and async APIs."""

    def __init__(
        self,
        embedder: Embedder,
        dims: int | None,
        query_task: str | None = None,
        document_task: str | None = None,
    ) -> None:
        self.embedder = embedder
        self.dims = dims
        self.query_task = query_task
        self.document_task = document_task

    def _options(self, query: bool) -> dict[str, Any]:
        return {"query": query, "task": self.query_task if query else self.document_task, "dims": self.dims}

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = (
            embed_sync(self.embedder, texts, **self._options(False)).tolist() if texts else []
        )
        return out

    def embed_query(self, text: str) -> list[float]:
        out: list[float] = embed_sync(self.embedder, [text], **self._options(True))[0].tolist()
        return out

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        out: list[list[float]] = (await embed_async(self.embedder, texts, **self._options(False))).tolist()
        return out

    async def aembed_query(self, text: str) -> list[float]:
        out: list[float] = (await embed_async(self.embedder, [text], **self._options(True)))[0].tolist()
        return out


class EmbeddingGemmaEmbeddings(_EdgeRouteEmbeddings):
    """On-device EmbeddingGemma embeddings (ONNX Runtime) for LangChain.

    ``embedder`` is any edgeroute :class:`~edgeroute.framework.embedder.Embedder` (an already
    loaded ``EdgeEmbedder``, or ``HashingEmbedder`` in tests); when None, EmbeddingGemma is loaded
    from ``model_dir`` or the default model cache. ``dims`` picks a Matryoshka size (768/512/256/128).
    ``query_task`` / ``document_task`` name one of the model's prompts (for example
    ``"Classification"``) instead of the default retrieval query / document prompts.
    """

    def __init__(
        self,
        embedder: Embedder | None = None,
        *,
        model_dir: str | None = None,
        dims: int | None = None,
        query_task: str | None = None,
        document_task: str | None = None,
    ) -> None:
        resolved = edge_embedder(embedder, model_dir, dims, query_task, document_task)
        super().__init__(resolved, dims, query_task, document_task)


class GeminiEmbeddings(_EdgeRouteEmbeddings):
    """Gemini Embedding 2 (cloud) for LangChain, through the official google-genai SDK.

    Pass a configured :class:`~edgeroute.framework.cloud.embedder.CloudEmbedder` as ``cloud``, or let one be
    built from ``model``, ``dims``, ``api_key`` (default ``GEMINI_API_KEY``) and ``base_url``
    (default ``GOOGLE_GEMINI_BASE_URL``; point it at ``GeminiEmulator().base_url`` in tests).
    :meth:`embed_multimodal` embeds text, images, audio, video and PDF, interleaved.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        dims: int = 768,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        cloud: Embedder | None = None,
    ) -> None:
        super().__init__(cloud_embedder(cloud, model, dims, api_key, base_url), dims)

    @property
    def cloud(self) -> Embedder:
        """The cloud embedder doing the work."""
        return self.embedder

    @property
    def base_url(self) -> str | None:
        """Where the cloud embedder sends requests (None: Google's default endpoint)."""
        url: str | None = getattr(self.cloud, "base_url", None)
        return url

    def _multimodal_embedder(self) -> Any:
        if not callable(getattr(self.cloud, "embed", None)):
            raise InputError(
                f"{type(self.cloud).__name__} cannot embed media; "
                "pass a CloudEmbedder as cloud= for multimodal input"
            )
        return self.cloud

    def embed_multimodal(
        self, contents: Sequence[str | Sequence[Part]], *, task: str = "document"
    ) -> list[list[float]]:
        """One vector per content; a content that is a list of parts is embedded as ONE interleaved input.

        ``embed_multimodal([[Part.text("red shoe"), Part.file("shoe.png")], "a caption"])`` gives two vectors.
        """
        out: list[list[float]] = (
            self._multimodal_embedder().embed(list(contents), task=task, dims=self.dims).tolist()
        )
        return out

    async def aembed_multimodal(
        self, contents: Sequence[str | Sequence[Part]], *, task: str = "document"
    ) -> list[list[float]]:
        """The async twin of :meth:`embed_multimodal`."""
        vecs = await self._multimodal_embedder().aembed(list(contents), task=task, dims=self.dims)
        out: list[list[float]] = vecs.tolist()
        return out


def select_tools(
    router: _tools.ToolRouter, tools: Sequence[BaseTool], request: str, *, k: int = 3
) -> list[BaseTool]:
    """The LangChain tools to bind for ``request``, best first; ``[]`` when the router is unsure.

    ``llm.bind_tools(select_tools(router, tools, "refund my order"))``. Each tool must be registered
    with the router under its ``name``. The decision is ``router.last_decision`` in the calling
    thread (a context variable: concurrent callers never see each other's).
    """
    return _tools.select_tools(router, tools, request, k=k)
