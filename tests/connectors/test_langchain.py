"""LangChain connector against the real engine (ephemeral Chroma, hashing edge embedder, Gemini emulator)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from langchain_chroma import Chroma
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document as LCDocument
from langchain_core.embeddings import Embeddings
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import PromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnablePassthrough
from langchain_tests.integration_tests import EmbeddingsIntegrationTests, RetrieversIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from edgeroute.connectors.langchain import (
    DECISION_EVENT,
    EdgeRouteRetriever,
    EmbeddingGemmaEmbeddings,
    GeminiEmbeddings,
)
from edgeroute.framework.cloud.embedder import CloudEmbedder
from edgeroute.framework.errors import ConfigurationError, EdgeRouteError, InputError
from edgeroute.framework.parts import Part
from edgeroute.framework.router.engine import HybridEngine
from edgeroute.framework.store.chroma import VectorStore
from edgeroute.framework.testing.emulator import GeminiEmulator
from edgeroute.framework.testing.hashing import HashingEmbedder

IMAGES = Path(__file__).resolve().parents[3] / "shared" / "data" / "flickr8k_1k" / "images"
ROUTING_KEYS = {"route", "reasons", "index", "space", "score", "rank", "degraded"}

# The standard suites read their parameters from properties, so the live fixtures are parked here.
_LIVE: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def _park(emulator: GeminiEmulator, engine: HybridEngine) -> None:
    _LIVE["emulator"] = emulator
    _LIVE["engine"] = engine


class Recorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_retriever_start(self, serialized: Any, query: str, **kwargs: Any) -> None:
        self.events.append(("start", query))

    def on_retriever_end(self, documents: Any, **kwargs: Any) -> None:
        self.events.append(("end", documents))

    def on_retriever_error(self, error: BaseException, **kwargs: Any) -> None:
        self.events.append(("error", error))

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        self.events.append((name, data))


def test_documents_carry_routing_metadata(engine: HybridEngine) -> None:
    docs = EdgeRouteRetriever(engine=engine, k=2).invoke("why do dogs bark")
    assert len(docs) == 2
    assert docs[0].id == "pets-2"
    meta = docs[0].metadata
    assert set(meta) >= ROUTING_KEYS
    assert meta["route"] == "edge" and meta["index"] == "edge" and meta["rank"] == 1
    assert meta["topic"] == "pets"


def test_per_call_kwargs_and_config_override_defaults(engine: HybridEngine) -> None:
    r = EdgeRouteRetriever(engine=engine, k=4)
    assert len(r.invoke("bread ovens", k=1)) == 1
    high = r.invoke("bread ovens", stakes="high")
    assert high[0].metadata["route"] == "hybrid" and "stakes.high" in high[0].metadata["reasons"]
    private = r.invoke(
        "bread ovens", config={"configurable": {"sensitivity": "restricted", "stakes": "high"}}
    )
    assert private[0].metadata["route"] == "edge"
    assert "privacy.sensitivity" in private[0].metadata["reasons"]
    assert r.last_result is not None and r.last_result.decision.route.value == "edge"


async def test_async_path_calls_aretrieve(engine: HybridEngine) -> None:
    r = EdgeRouteRetriever(engine=engine, k=3)
    rec = Recorder()
    docs = await r.ainvoke("fresh pasta with eggs", stakes="high", config={"callbacks": [rec]})
    assert [e[0] for e in rec.events] == ["start", DECISION_EVENT, "end"]
    assert docs[0].id == "food-2" or "food-2" in [d.id for d in docs]
    assert docs[0].metadata["route"] == "hybrid"
    many = await r.abatch(["cats", "rain in spring"])
    assert [len(d) for d in many] == [3, 3]


def test_batch(engine: HybridEngine) -> None:
    out = EdgeRouteRetriever(engine=engine, k=1).batch(["cats purr", "reset VPN password"])
    assert [d[0].id for d in out] == ["pets-1", "it-1"]


def test_lcel_chain_with_fake_llm(engine: HybridEngine) -> None:
    retriever = EdgeRouteRetriever(engine=engine, k=2)
    prompt = PromptTemplate.from_template("Context:\n{context}\n\nQuestion: {question}")
    seen: list[str] = []

    def fmt(docs: list[LCDocument]) -> str:
        text = "\n".join(f"[{d.metadata['route']}] {d.page_content}" for d in docs)
        seen.append(text)
        return text

    chain = (
        {"context": retriever | fmt, "question": RunnablePassthrough()}
        | prompt
        | FakeListLLM(responses=["Dogs bark to warn."])
        | StrOutputParser()
    )
    assert chain.invoke("why do dogs bark") == "Dogs bark to warn."
    assert "[edge] Dogs bark" in seen[0]


def test_callbacks_fire_with_decision_and_errors(engine: HybridEngine) -> None:
    rec = Recorder()
    EdgeRouteRetriever(engine=engine, k=1).invoke("cats", config={"callbacks": [rec]})
    assert [e[0] for e in rec.events] == ["start", DECISION_EVENT, "end"]
    assert rec.events[1][1]["decision"]["route"] == "edge" and "query_sha256" in rec.events[1][1]["audit"]
    assert rec.events[2][1][0].metadata["route"] == "edge"
    rec.events.clear()
    with pytest.raises(InputError, match="unknown stakes"):
        EdgeRouteRetriever(engine=engine).invoke("cats", stakes="urgent", config={"callbacks": [rec]})
    assert [e[0] for e in rec.events] == ["start", "error"]


def test_with_fallbacks_uses_second_retriever(engine: HybridEngine) -> None:
    broken = HybridEngine(VectorStore.ephemeral(), f"never-{uuid.uuid4().hex[:6]}", edge=HashingEmbedder(256))
    primary = EdgeRouteRetriever(engine=broken)
    with pytest.raises(EdgeRouteError):
        primary.invoke("cats")
    chain = primary.with_fallbacks([EdgeRouteRetriever(engine=engine, k=1)])
    assert chain.invoke("cats purr")[0].id == "pets-1"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "k must be a positive"),
        ({"sensitivity": "secret"}, "unknown sensitivity"),
        ({"deadline_ms": -1}, "deadline_ms"),
    ],
)
def test_bad_options_are_rejected(engine: HybridEngine, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        EdgeRouteRetriever(engine=engine, **kwargs)
    with pytest.raises(InputError, match=message):
        EdgeRouteRetriever(engine=engine).invoke("cats", **kwargs)


def test_bad_engine_and_unknown_option(engine: HybridEngine) -> None:
    with pytest.raises(InputError, match="HybridEngine"):
        EdgeRouteRetriever(engine=object())
    with pytest.raises(InputError, match="unknown option"):
        EdgeRouteRetriever(engine=engine).invoke("cats", top_n=3)


def test_embedding_gemma_with_tiny_model_and_task_prompts(tiny_model_dir: Path) -> None:
    emb = EmbeddingGemmaEmbeddings(model_dir=str(tiny_model_dir), dims=256)
    q = emb.embed_query("red shoes")
    d = emb.embed_documents(["red shoes", "blue sky"])
    assert len(q) == 256 and len(d) == 2 and len(d[0]) == 256
    assert q != d[0]  # query and document prompts differ
    cls = EmbeddingGemmaEmbeddings(model_dir=str(tiny_model_dir), query_task="Classification")
    assert cls.embed_query("red shoes") != EmbeddingGemmaEmbeddings(
        model_dir=str(tiny_model_dir)
    ).embed_query("red shoes")
    with pytest.raises(ConfigurationError, match="unknown query_task"):
        EmbeddingGemmaEmbeddings(model_dir=str(tiny_model_dir), query_task="nope")
    with pytest.raises(ConfigurationError, match="named prompts"):
        EmbeddingGemmaEmbeddings(HashingEmbedder(), query_task="query")
    with pytest.raises(InputError, match="non-empty"):
        emb.embed_query("  ")


async def test_gemini_embeddings_async_and_multimodal(emulator: GeminiEmulator) -> None:
    g = GeminiEmbeddings(base_url=emulator.base_url, api_key="test-key", dims=256)
    assert len(await g.aembed_query("hello")) == 256
    image = next(IMAGES.glob("*.jpg")).read_bytes()
    vecs = g.embed_multimodal([[Part.text("a dog on grass"), Part.image(image, "image/jpeg")], "a caption"])
    assert len(vecs) == 2 and len(vecs[0]) == 256
    assert len(await g.aembed_multimodal([[Part.image(image, "image/jpeg")]])) == 1
    with pytest.raises(InputError):
        g.embed_multimodal([[Part.image(image, "image/jpeg")] * 7])


def test_works_as_langchain_chroma_embedding_function() -> None:
    store = Chroma(
        collection_name=f"lc-{uuid.uuid4().hex[:8]}",
        embedding_function=EmbeddingGemmaEmbeddings(HashingEmbedder()),
    )
    store.add_texts(["cats purr", "dogs bark", "bread bakes"], ids=["a", "b", "c"])
    assert store.similarity_search("why do dogs bark", k=1)[0].page_content == "dogs bark"


class _EmbeddingGemmaParams:
    @property
    def embeddings_class(self) -> type[Embeddings]:
        return EmbeddingGemmaEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"embedder": HashingEmbedder(128)}


class TestEmbeddingGemmaStandardUnit(_EmbeddingGemmaParams, EmbeddingsUnitTests):
    pass


class TestEmbeddingGemmaStandardIntegration(_EmbeddingGemmaParams, EmbeddingsIntegrationTests):
    pass


class TestGeminiStandardUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[Embeddings]:
        return GeminiEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"base_url": _LIVE["emulator"].base_url, "api_key": "test-key"}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"GEMINI_API_KEY": "env-key", "GOOGLE_GEMINI_BASE_URL": "http://127.0.0.1:9"},
            {},
            {"base_url": "http://127.0.0.1:9"},
        )


class TestGeminiStandardIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[Embeddings]:
        return GeminiEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"cloud": CloudEmbedder(base_url=_LIVE["emulator"].base_url, api_key="test-key", dims=768)}


class TestRetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return EdgeRouteRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"engine": _LIVE["engine"]}

    @property
    def retriever_query_example(self) -> str:
        return "what do dogs do"


@pytest.mark.slow
def test_real_embeddinggemma_ranks_by_meaning() -> None:
    import numpy as np

    emb = EmbeddingGemmaEmbeddings(dims=256)  # the exported model from the default cache
    q = np.array(emb.embed_query("Which animal barks?"))
    docs = np.array(emb.embed_documents(["Dogs bark at strangers.", "Stock prices fell on Monday."]))
    assert float(docs[0] @ q) > float(docs[1] @ q) + 0.1
