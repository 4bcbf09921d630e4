"""LlamaIndex connector against the real engine (ephemeral Chroma, hashing edge embedder, Gemini emulator)."""

from __future__ import annotations

from pathlib import Path

import pytest
from llama_index.core import Document as LIDocument
from llama_index.core import VectorStoreIndex
from llama_index.core.base.response.schema import Response
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.llms import MockLLM
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.response_synthesizers import get_response_synthesizer
from llama_index.core.retrievers import QueryFusionRetriever
from llama_index.core.schema import MetadataMode

from edgeroute.connectors.llamaindex import EdgeRouteRetriever, EmbeddingGemmaEmbedding, GeminiEmbedding
from edgeroute.framework.errors import ConfigurationError, InputError
from edgeroute.framework.router.engine import HybridEngine
from edgeroute.framework.testing.emulator import GeminiEmulator
from edgeroute.framework.testing.hashing import HashingEmbedder

ROUTING_KEYS = {"route", "reasons", "index", "space", "score", "rank", "degraded"}


def test_nodes_carry_routing_metadata_hidden_from_llm(engine: HybridEngine) -> None:
    nodes = EdgeRouteRetriever(engine, k=2).retrieve("why do dogs bark")
    assert len(nodes) == 2 and nodes[0].node.node_id == "pets-2"
    meta = nodes[0].node.metadata
    assert set(meta) >= ROUTING_KEYS and meta["route"] == "edge"
    assert nodes[0].score == pytest.approx(meta["score"])
    assert "route" not in nodes[0].node.get_content(metadata_mode=MetadataMode.LLM)


async def test_aretrieve_and_options(engine: HybridEngine) -> None:
    r = EdgeRouteRetriever(engine, k=3, stakes="high")
    nodes = await r.aretrieve("fresh pasta eggs")
    assert len(nodes) == 3 and nodes[0].node.metadata["route"] == "hybrid"
    private = r.with_options(sensitivity="restricted", k=1)
    out = await private.aretrieve("fresh pasta eggs")
    assert len(out) == 1 and "privacy.sensitivity" in out[0].node.metadata["reasons"]
    assert private.last_result is not None and r.options["k"] == 3
    with pytest.raises(InputError, match="unknown option"):
        r.with_options(top_n=2)
    with pytest.raises(InputError, match="unknown sensitivity"):
        EdgeRouteRetriever(engine, sensitivity="secret")
    with pytest.raises(InputError, match="HybridEngine"):
        EdgeRouteRetriever(object())  # type: ignore[arg-type]


def test_retriever_query_engine_with_mock_llm(engine: HybridEngine) -> None:
    qe = RetrieverQueryEngine(
        retriever=EdgeRouteRetriever(engine, k=2),
        response_synthesizer=get_response_synthesizer(llm=MockLLM(max_tokens=8)),
    )
    resp = qe.query("how is bread made")
    assert isinstance(resp, Response)
    assert resp.source_nodes[0].node.node_id == "food-1"
    assert resp.source_nodes[0].node.metadata["route"] == "edge"


async def test_query_fusion_retriever(engine: HybridEngine) -> None:
    fusion = QueryFusionRetriever(
        [EdgeRouteRetriever(engine, k=2), EdgeRouteRetriever(engine, k=2, stakes="high")],
        llm=MockLLM(),
        num_queries=1,
        similarity_top_k=3,
        use_async=True,
    )
    nodes = await fusion.aretrieve("cats purr")
    assert nodes and nodes[0].node.node_id == "pets-1"
    assert fusion.retrieve("reset VPN password")[0].node.node_id == "it-1"


def test_embedding_in_vector_store_index_and_pipeline() -> None:
    embed = EmbeddingGemmaEmbedding(HashingEmbedder(128))
    docs = [LIDocument(text=t, id_=i) for i, t in [("a", "cats purr softly"), ("b", "dogs bark loudly")]]
    index = VectorStoreIndex.from_documents(docs, embed_model=embed)
    hit = index.as_retriever(similarity_top_k=1).retrieve("why do dogs bark")[0]
    assert hit.node.ref_doc_id == "b"
    nodes = IngestionPipeline(transformations=[SentenceSplitter(chunk_size=64, chunk_overlap=8), embed]).run(
        documents=docs
    )
    assert len(nodes) == 2 and all(n.embedding is not None and len(n.embedding) == 128 for n in nodes)


async def test_embedding_batch_and_async(tiny_model_dir: Path) -> None:
    embed = EmbeddingGemmaEmbedding(model_dir=str(tiny_model_dir), dims=128, embed_batch_size=2)
    vecs = embed.get_text_embedding_batch(["one", "two", "three"])
    assert len(vecs) == 3 and len(vecs[0]) == 128
    avecs = await embed.aget_text_embedding_batch(["one", "two", "three"])
    assert avecs[0] == pytest.approx(vecs[0], abs=1e-6)
    q = await embed.aget_query_embedding("one")
    assert q != pytest.approx(vecs[0], abs=1e-6)  # query prompt differs from the document prompt
    assert embed.model_name.startswith("edgeroute/tiny") or "@" in embed.model_name
    with pytest.raises(ConfigurationError, match="unknown document_task"):
        EmbeddingGemmaEmbedding(model_dir=str(tiny_model_dir), document_task="nope")
    with pytest.raises(InputError):
        embed.get_query_embedding("")


async def test_gemini_embedding(emulator: GeminiEmulator) -> None:
    g = GeminiEmbedding(base_url=emulator.base_url, api_key="secret-key", dims=256)
    assert len(g.get_query_embedding("hello")) == 256
    batch = await g.aget_text_embedding_batch(["a", "b", "c"])
    assert len(batch) == 3 and len(batch[0]) == 256
    assert "secret-key" not in repr(g) and "secret-key" not in str(g.to_payload())
