"""Unmodified clients against the service: the openai package, LangChain's OpenAIEmbeddings, and
RemoteEngine behind the LangChain and LlamaIndex retrievers."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Callable

import httpx
import numpy as np
import pytest
from conftest import Served

from edgeroute.framework.documents import Document
from edgeroute.framework.errors import CollectionNotFoundError, ConfigurationError, InputError
from edgeroute.framework.serve.remote import RemoteEngine, ServiceError
from edgeroute.framework.testing.hashing import HashingEmbedder

Start = Callable[..., Served]
DOCS = [
    Document("shoes", "Cushioned running shoes for long distances and trail races.", sensitivity="public"),
    Document("coffee", "Espresso machines need descaling every two months.", title="Coffee care"),
    Document("bikes", "Mountain bikes with full suspension handle rocky descents.", metadata={"lang": "en"}),
]


def test_openai_client_embeddings_and_models(serve: Start) -> None:
    openai = pytest.importorskip("openai")
    s = serve()
    client = openai.OpenAI(base_url=s.url + "/v1", api_key=s.keys["acme"], max_retries=0)
    texts = ["running shoes", "espresso machine descaling"]
    res = client.embeddings.create(model=s.service.edge_model, input=texts)  # the client asks for base64
    got = np.array([d.embedding for d in res.data], dtype=np.float32)
    np.testing.assert_allclose(got, HashingEmbedder(128).embed_documents(texts), atol=1e-6)
    assert res.model == s.service.edge_model and res.usage.total_tokens > 0
    res = client.embeddings.create(model="edge", input="one", encoding_format="float", dimensions=64)
    assert len(res.data[0].embedding) == 64
    assert [m.id for m in client.models.list()] == [s.service.edge_model, s.service.cloud_model]
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.embeddings.create(model=s.service.cloud_model, input="mail jane.roe@example.org")
    assert info.value.code == "privacy.pii"
    served = client.embeddings.create(
        model=s.service.cloud_model, input="mail jane.roe@example.org", extra_body={"on_private": "edge"}
    )
    assert served.model == s.service.edge_model
    bad = openai.OpenAI(base_url=s.url + "/v1", api_key="er-000000000000-" + "a" * 43, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.embeddings.create(model="edge", input="x")
    assert s.emu.request_count == 0


async def test_openai_async_client(serve: Start) -> None:
    openai = pytest.importorskip("openai")
    s = serve()
    client = openai.AsyncOpenAI(base_url=s.url + "/v1", api_key=s.keys["acme"], max_retries=0)
    results = await asyncio.gather(
        *(client.embeddings.create(model="edge", input=f"text {i}") for i in range(8))
    )
    assert all(len(r.data) == 1 for r in results)
    await client.close()


def test_langchain_openai_embeddings(serve: Start) -> None:
    lco = pytest.importorskip("langchain_openai")
    s = serve()
    emb = lco.OpenAIEmbeddings(
        model=s.service.edge_model,
        base_url=s.url + "/v1",
        api_key=s.keys["acme"],
        check_embedding_ctx_length=False,  # send text, not tiktoken ids (the documented switch for non-OpenAI servers)
        max_retries=0,
    )
    docs = emb.embed_documents(["running shoes", "espresso machine"])
    np.testing.assert_allclose(
        np.array(docs, dtype=np.float32),
        HashingEmbedder(128).embed_documents(["running shoes", "espresso machine"]),
        atol=1e-6,
    )
    assert len(emb.embed_query("shoes")) == 128


def test_remote_engine_matches_the_engine_api(serve: Start) -> None:
    s = serve()
    with RemoteEngine(s.url, s.keys["acme"], "notes") as remote:
        report = remote.ingest(DOCS)
        assert report.documents == 3 and report.edge_written == 3 and report.cloud.written >= 1
        result = remote.retrieve("trail running shoes", 2)
        assert result.hits[0].id == "shoes" and result.decision.route.value in ("edge", "hybrid", "cloud")
        assert result.audit["collection"] == "notes"
        hybrid = remote.retrieve("bikes", 3, stakes="high")
        assert hybrid.decision.route.value == "hybrid" and {h.index for h in hybrid.hits} <= {
            "edge",
            "cloud",
            "hybrid",
        }
        async_result = asyncio.run(remote.aretrieve("espresso", 1))
        assert async_result.hits[0].id == "coffee" and async_result.hits[0].title == "Coffee care"
        with pytest.raises(InputError):
            remote.retrieve("x", 0)
    with pytest.raises(CollectionNotFoundError):
        RemoteEngine(s.url, s.keys["globex"], "notes").retrieve("shoes")
    with pytest.raises(ConfigurationError, match="API key rejected"):
        RemoteEngine(s.url, "er-000000000000-" + "b" * 43, "notes").retrieve("shoes")
    with pytest.raises(ServiceError, match="cannot reach"):
        RemoteEngine("http://127.0.0.1:9", s.keys["acme"], "notes", timeout_s=2).retrieve("shoes")
    assert "er-" not in repr(RemoteEngine(s.url, s.keys["acme"], "notes"))


def test_remote_engine_sends_media_parts_and_maps_errors_back(serve: Start) -> None:
    from edgeroute.framework.parts import Part

    s = serve()
    remote = RemoteEngine(s.url, s.keys["acme"], "notes")
    remote.ingest(DOCS)
    # the service checks media as the engine does: a fake PNG is an input error, before any cloud call
    with pytest.raises(InputError, match="HTTP 400"):
        remote.retrieve([Part.text("shoes"), Part.image(b"not a png")])
    with pytest.raises(InputError, match="list of Documents"):
        remote.ingest(DOCS[0])  # type: ignore[arg-type]
    # the documents above may still drain in the background: check that the fake image never left
    assert not any("bm90IGEgcG5n" in json.dumps(r) for r in s.emu.requests)  # base64 of b"not a png"


def test_remote_engine_ingests_media_parts_to_the_cloud_index_and_keeps_private_media_home(
    serve: Start,
) -> None:
    from edgeroute.framework.parts import Part

    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
    private_png = b"\x89PNG\r\n\x1a\n" + b"\1" * 32
    s = serve()
    remote = RemoteEngine(s.url, s.keys["acme"], "pictures")
    report = remote.ingest(
        [
            Document("poster", "A red bicycle poster", parts=(Part.image(png),), sensitivity="public"),
            Document("scan", "Scanned badge", parts=(Part.image(private_png),), sensitivity="restricted"),
        ]
    )
    assert report.documents == 2 and report.edge_written == 2 and report.private == 1
    asyncio.run(s.service.drain_once())
    sent = json.dumps(s.emu.requests)
    assert (
        hashlib.sha256(png).hexdigest() in sent
    )  # the public image reached the cloud model (recorded by hash)
    assert hashlib.sha256(private_png).hexdigest() not in sent and "Scanned badge" not in sent
    # a bad part is refused with its position, before any cloud call
    r = httpx.post(
        s.url + "/v1/documents",
        headers={"Authorization": f"Bearer {s.keys['acme']}"},
        json={"collection": "pictures", "documents": [{"id": "x", "text": "t", "parts": [{"data": "AAAA"}]}]},
    )
    assert r.status_code == 400
    assert "documents[0].parts part 0 needs a mime_type" in r.json()["error"]["message"]


def test_langchain_retriever_accepts_remote_engine(serve: Start) -> None:
    pytest.importorskip("langchain_core")
    from edgeroute.connectors.langchain import EdgeRouteRetriever

    s = serve()
    remote = RemoteEngine(s.url, s.keys["acme"], "notes")
    remote.ingest(DOCS)
    retriever = EdgeRouteRetriever(engine=remote, k=2)
    docs = retriever.invoke("trail running shoes")
    assert docs[0].id == "shoes" and docs[0].metadata["route"] in ("edge", "hybrid")
    adocs = asyncio.run(retriever.ainvoke("espresso"))
    assert adocs[0].id == "coffee"


def test_llamaindex_retriever_accepts_remote_engine(serve: Start) -> None:
    pytest.importorskip("llama_index.core")
    from edgeroute.connectors.llamaindex import EdgeRouteRetriever

    s = serve()
    remote = RemoteEngine(s.url, s.keys["acme"], "notes")
    remote.ingest(DOCS)
    nodes = EdgeRouteRetriever(remote, k=2).retrieve("mountain bikes")
    assert nodes[0].node.node_id == "bikes" and nodes[0].node.metadata["index"] in ("edge", "hybrid")


@pytest.mark.slow
def test_real_model_embeddings_through_openai_match_the_edge_embedder(serve: Start) -> None:
    openai = pytest.importorskip("openai")
    from edgeroute.framework.edge.embedder import EdgeEmbedder

    edge = EdgeEmbedder.load(os.environ.get("EDGEROUTE_EDGE_MODEL"))
    s = serve(edge=edge)
    client = openai.OpenAI(base_url=s.url + "/v1", api_key=s.keys["acme"], max_retries=0)
    texts = [
        "Cushioned running shoes for long distances.",
        "Die Katze schläft auf dem warmen Sofa.",
        "Photosynthesis converts light into chemical energy in plants.",
        "¿Dónde está la estación de tren?",
    ]
    for input_type, want in (
        ("document", edge.embed_documents(texts)),
        ("query", edge.embed_queries(texts)),
    ):
        # concurrent single-text requests, so the micro-batcher pads them into one batch
        async def one(t: str, it: str = input_type) -> list[float]:
            c = openai.AsyncOpenAI(base_url=s.url + "/v1", api_key=s.keys["acme"], max_retries=0)
            r = await c.embeddings.create(model=edge.space.model, input=t, extra_body={"input_type": it})
            await c.close()
            return list(r.data[0].embedding)

        async def all_of() -> list[list[float]]:
            return list(await asyncio.gather(*(one(t) for t in texts)))

        got = np.array(asyncio.run(all_of()), dtype=np.float32)
        cos = np.sum(got * want, axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
        assert cos.min() >= 0.9999, cos
    res = client.embeddings.create(model=edge.space.model, input=texts)
    assert len(res.data) == 4


@pytest.mark.slow
def test_real_model_named_entities_stay_home_through_the_service(serve: Start) -> None:
    """The PII head reads token states from the batched pass: a name and an address without any
    pattern-shaped identifier are caught on /v1/embeddings and /v1/retrieve alike."""
    from edgeroute.framework.edge.embedder import EdgeEmbedder

    edge = EdgeEmbedder.load(os.environ.get("EDGEROUTE_EDGE_MODEL"))
    if not edge.has_token_states:
        pytest.skip("the model directory has no token-state outputs (graph version < 3)")
    s = serve(edge=edge)
    note = "Patient Maria Lopez lives at 14 Elm Street, Springfield; what is her prognosis?"
    client = RemoteEngine(s.url, s.keys["acme"], "notes")
    client.ingest(
        [Document("a", "Prognosis of early-stage lung cancer after surgery.", sensitivity="public")]
    )
    import httpx

    r = httpx.post(
        s.url + "/v1/embeddings",
        json={"input": note, "model": "cloud"},
        headers=s.headers(),
        timeout=60,
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "privacy.pii", r.text
    result = client.retrieve(note, 3, stakes="high")
    assert result.decision.route.value == "edge" and "privacy.pii" in [
        x.code for x in result.decision.reasons
    ]
    # a public document ingested above may still drain to the cloud in the background: the proof
    # is in what the emulator received, not in how many requests it saw
    assert not any("Maria Lopez" in json.dumps(r) or "Elm Street" in json.dumps(r) for r in s.emu.requests)


def test_remote_engine_raises_input_error_for_a_body_over_the_cap(serve: Start) -> None:
    from edgeroute.framework.documents import Document

    s = serve(max_body_bytes=256 * 1024)
    docs = [Document(f"d{i}", "long text " * 9000) for i in range(5)]  # about 450 KB
    with (
        RemoteEngine(s.url, s.keys["acme"], "notes") as remote,
        pytest.raises(InputError, match="262,144 bytes"),
    ):
        remote.ingest(docs)


@pytest.mark.slow
def test_real_model_a_name_in_prose_stays_home_through_the_service(serve: Start) -> None:
    """The service's detector loads the shipped (retrained) head: a name in plain prose, no pattern."""
    from edgeroute.framework.edge.embedder import EdgeEmbedder

    edge = EdgeEmbedder.load(os.environ.get("EDGEROUTE_EDGE_MODEL"))
    if not edge.has_token_states:
        pytest.skip("the model directory has no token-state outputs (graph version < 3)")
    s = serve(edge=edge)
    prose = "Takuya Takagi scored the winner in the 88th minute."
    r = httpx.post(s.url + "/v1/embeddings", json={"input": prose, "model": "cloud"}, headers=s.headers(), timeout=60)
    assert r.status_code == 403 and r.json()["error"]["code"] == "privacy.pii", r.text
    client = RemoteEngine(s.url, s.keys["acme"], "notes")
    client.ingest([Document("a", "Football matches last ninety minutes.", sensitivity="public")])
    result = client.retrieve(prose, 3, stakes="high")
    assert result.decision.route.value == "edge"
    assert not any("Takagi" in json.dumps(x) or "Takuya" in json.dumps(x) for x in s.emu.requests)
