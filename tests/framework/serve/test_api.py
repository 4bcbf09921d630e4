"""The service's endpoints over real HTTP: auth, tenants, embeddings, retrieval, ingest, errors, metrics."""

from __future__ import annotations

import base64
import concurrent.futures
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from conftest import Served

from edgeroute.framework.router.engine import HybridEngine
from edgeroute.framework.serve.keys import Tenant
from edgeroute.framework.testing.hashing import HashingEmbedder

Start = Callable[..., Served]

DOCS = [
    {"id": "shoes", "text": "Cushioned running shoes for long distances and trail races."},
    {"id": "coffee", "text": "Espresso machines need descaling every two months."},
    {"id": "bikes", "text": "Mountain bikes with full suspension handle rocky descents."},
]


def post(s: Served, path: str, body: dict[str, Any], tenant: str = "acme") -> httpx.Response:
    return httpx.post(s.url + path, json=body, headers=s.headers(tenant), timeout=30)


def error_code(r: httpx.Response) -> str:
    body = r.json()
    assert set(body["error"]) >= {"code", "message", "type", "param"}, body
    return str(body["error"]["code"])


def test_health_ready_and_openapi(serve: Start) -> None:
    s = serve()
    assert httpx.get(s.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(s.url + "/readyz").json()
    assert ready["status"] == "ready" and ready["store"] == "ok" and ready["model_loaded"]
    assert ready["breaker"] == "closed" and ready["outbox_depth"] == 0
    spec = httpx.get(s.url + "/openapi.json").json()
    assert {"/v1/embeddings", "/v1/retrieve", "/v1/documents", "/v1/tools/route", "/v1/models"} <= set(
        spec["paths"]
    )
    assert httpx.get(s.url + "/docs").status_code == 200


def test_missing_or_unknown_key_is_401(serve: Start) -> None:
    s = serve()
    body = {"input": "hello", "model": "edge"}
    r = httpx.post(s.url + "/v1/embeddings", json=body)
    assert r.status_code == 401 and error_code(r) == "unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"
    r = httpx.post(
        s.url + "/v1/embeddings", json=body, headers={"Authorization": "Bearer er-000000000000-" + "x" * 43}
    )
    assert r.status_code == 401
    wrong_secret = s.keys["acme"][:-4] + "AAAA"
    r = httpx.post(s.url + "/v1/embeddings", json=body, headers={"Authorization": f"Bearer {wrong_secret}"})
    assert r.status_code == 401


def test_revoked_key_stops_working_without_restart(serve: Start) -> None:
    s = serve()
    assert post(s, "/v1/embeddings", {"input": "hi", "model": "edge"}).status_code == 200
    s.keystore.revoke(s.keys["acme"])
    s.service.keys._checked = 0.0  # skip the one-second re-read interval
    r = post(s, "/v1/embeddings", {"input": "hi", "model": "edge"})
    assert r.status_code == 401


def test_edge_embeddings_match_the_embedder_and_encode_base64(serve: Start) -> None:
    s = serve()
    texts = ["running shoes", "espresso machine"]
    r = post(s, "/v1/embeddings", {"input": texts, "model": s.service.edge_model})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and body["model"] == s.service.edge_model
    assert body["usage"]["prompt_tokens"] > 0
    got = np.array([d["embedding"] for d in body["data"]], dtype=np.float32)
    want = HashingEmbedder(128).embed_documents(texts)
    np.testing.assert_allclose(got, want, atol=1e-6)
    r = post(
        s,
        "/v1/embeddings",
        {"input": texts[0], "model": "edge", "encoding_format": "base64", "input_type": "query"},
    )
    vec = np.frombuffer(base64.b64decode(r.json()["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(vec, HashingEmbedder(128).embed_queries(texts[:1])[0], atol=1e-6)
    r = post(s, "/v1/embeddings", {"input": texts, "model": "edge", "dimensions": 64})
    assert len(r.json()["data"][0]["embedding"]) == 64


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"input": [], "model": "edge"}, 400, "invalid_request"),
        ({"input": ["ok", " "], "model": "edge"}, 400, "invalid_request"),
        ({"input": [[1, 2, 3]], "model": "edge"}, 400, "invalid_request"),
        ({"input": "x", "model": "edge", "encoding_format": "int8"}, 400, "invalid_request"),
        ({"input": "x", "model": "edge", "dimensions": 4096}, 400, "invalid_request"),
        ({"input": "x", "model": "text-embedding-3-small"}, 404, "model_not_found"),
        ({"model": "edge"}, 400, "invalid_request"),
    ],
)
def test_bad_embedding_requests_get_one_error_shape(
    serve: Start, body: dict[str, Any], status: int, code: str
) -> None:
    s = serve()
    r = post(s, "/v1/embeddings", body)
    assert r.status_code == status, r.text
    assert error_code(r) == code


def test_cloud_model_refuses_pii_and_private_input_with_403(serve: Start) -> None:
    s = serve()
    cloud = s.service.cloud_model
    secret = "reach me at jane.roe@example.org about the refund"
    r = post(s, "/v1/embeddings", {"input": ["fine text", secret], "model": cloud})
    assert r.status_code == 403 and error_code(r) == "privacy.pii"
    assert "email" in r.json()["error"]["message"] and "jane.roe" not in r.json()["error"]["message"]
    r = post(s, "/v1/embeddings", {"input": "margin sheet", "model": cloud, "sensitivity": "confidential"})
    assert r.status_code == 403 and error_code(r) == "privacy.sensitivity"
    assert s.emu.request_count == 0  # nothing was forwarded


def test_cloud_model_serves_at_the_edge_only_when_asked_and_says_so(serve: Start) -> None:
    s = serve()
    secret = "reach me at jane.roe@example.org about the refund"
    r = post(s, "/v1/embeddings", {"input": secret, "model": "cloud", "on_private": "edge"})
    assert r.status_code == 200
    body = r.json()
    assert body["model"] == s.service.edge_model
    assert body["routing"]["served_by"] == "edge" and body["routing"]["reasons"][0]["code"] == "privacy.pii"
    assert s.emu.request_count == 0


def test_cloud_model_embeds_allowed_input_in_the_cloud(serve: Start) -> None:
    s = serve()
    r = post(s, "/v1/embeddings", {"input": ["public product text"], "model": s.service.cloud_model})
    assert r.status_code == 200, r.text
    assert r.json()["model"] == s.service.cloud_model and len(r.json()["data"][0]["embedding"]) == 256
    assert s.emu.request_count == 1
    assert "routing" not in r.json()


def test_a_lone_retrieval_skips_the_batch_windows_and_is_audited_in_full(serve: Start) -> None:
    # Windows of 1 s (the longest allowed): a lone request that waited out either batcher's would take
    # over 1 s, so that is the bound, all the slack a loaded machine can have.
    s = serve(max_wait_ms=1000)
    post(s, "/v1/documents", {"collection": "notes", "documents": DOCS, "sensitivity": "public"})
    t0 = time.perf_counter()
    r = post(s, "/v1/retrieve", {"collection": "notes", "query": "trail running shoes", "k": 2})
    assert time.perf_counter() - t0 < 1.0, "a lone request waited for the batch window"
    assert r.status_code == 200 and r.json()["hits"][0]["id"] == "shoes"
    # The count drops in the middleware after the body is sent, so the client can read first.
    deadline = time.perf_counter() + 5
    while s.service.in_flight and time.perf_counter() < deadline:
        time.sleep(0.01)
    assert s.service.in_flight == 0
    # Two at once still share the model call, and each gets its own answer and audit record.
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(
            pool.map(
                lambda q: post(s, "/v1/retrieve", {"collection": "notes", "query": q, "k": 1}),
                ["trail running shoes", "espresso machine"],
            )
        )
    assert [a.json()["hits"][0]["id"] for a in answers] == ["shoes", "coffee"]
    records = [rec for rec in s.service.audit.records() if rec.get("type") == "query"]
    assert len(records) == 3
    for rec in records:
        assert {"query_sha256", "route", "reasons", "hits", "latency_ms", "spaces", "time"} <= set(rec)
        assert {"edge_embed", "edge_search", "total"} <= set(rec["latency_ms"])
    assert s.service.in_flight == 0


def test_models_lists_what_the_key_may_use(serve: Start) -> None:
    s = serve(tenants={"acme": {}, "globex": {"allow_cloud": False}})
    ids = [m["id"] for m in httpx.get(s.url + "/v1/models", headers=s.headers("acme")).json()["data"]]
    assert ids == [s.service.edge_model, s.service.cloud_model]
    ids = [m["id"] for m in httpx.get(s.url + "/v1/models", headers=s.headers("globex")).json()["data"]]
    assert ids == [s.service.edge_model]
    r = post(s, "/v1/embeddings", {"input": "x", "model": s.service.cloud_model}, tenant="globex")
    assert r.status_code == 404 and error_code(r) == "model_not_found"


def test_ingest_then_retrieve_answers_like_query_json(serve: Start) -> None:
    s = serve()
    r = post(s, "/v1/documents", {"collection": "notes", "documents": DOCS, "sensitivity": "public"})
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["documents"] == 3 and report["edge_written"] == 3
    r = post(s, "/v1/retrieve", {"collection": "notes", "query": "trail running shoes", "k": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"decision", "hits", "audit"}
    assert body["hits"][0]["id"] == "shoes" and len(body["hits"]) == 2
    assert set(body["hits"][0]) >= {"id", "text", "score", "rank", "index", "space", "metadata", "title"}
    assert body["decision"]["route"] in ("edge", "cloud", "hybrid")
    assert body["audit"]["collection"] == "notes" and "query_sha256" in body["audit"]
    # Re-sending the same documents writes nothing: a client may retry after a replica died.
    again = post(
        s, "/v1/documents", {"collection": "notes", "documents": DOCS, "sensitivity": "public"}
    ).json()
    assert again["edge_written"] == 0 and again["edge_unchanged"] == 3


def test_high_stakes_retrieval_uses_the_cloud_and_pii_query_stays_home(serve: Start) -> None:
    s = serve()
    post(s, "/v1/documents", {"collection": "notes", "documents": DOCS, "sensitivity": "public"})
    r = post(
        s, "/v1/retrieve", {"collection": "notes", "query": "bikes for rocky descents", "stakes": "high"}
    )
    assert r.json()["decision"]["route"] == "hybrid"
    before = s.emu.request_count
    r = post(
        s,
        "/v1/retrieve",
        {"collection": "notes", "query": "shoes for jane.roe@example.org", "stakes": "high"},
    )
    d = r.json()["decision"]
    assert d["route"] == "edge" and "privacy.pii" in [x["code"] for x in d["reasons"]]
    assert s.emu.request_count == before


def test_tenants_are_isolated_both_ways(serve: Start) -> None:
    s = serve()
    post(s, "/v1/documents", {"collection": "notes", "documents": DOCS[:1]}, tenant="acme")
    post(s, "/v1/documents", {"collection": "plans", "documents": DOCS[1:]}, tenant="globex")
    # each sees its own
    assert post(s, "/v1/retrieve", {"collection": "notes", "query": "shoes"}, "acme").status_code == 200
    assert post(s, "/v1/retrieve", {"collection": "plans", "query": "coffee"}, "globex").status_code == 200
    # and the other's is not there, exactly like a collection that does not exist
    for tenant, col in (("globex", "notes"), ("acme", "plans")):
        r = post(s, "/v1/retrieve", {"collection": col, "query": "anything"}, tenant)
        missing = post(s, "/v1/retrieve", {"collection": "never-made", "query": "anything"}, tenant)
        assert r.status_code == missing.status_code == 404
        assert r.json()["error"] == {**missing.json()["error"], "message": r.json()["error"]["message"]}
        assert col not in r.text or "not found" in r.text
        assert "acme__" not in r.text and "globex__" not in r.text
    # naming the other tenant's namespace only reaches one's own
    r = post(s, "/v1/retrieve", {"collection": "globex__plans", "query": "coffee"}, "acme")
    assert r.status_code == 404
    # the store holds both, namespaced
    names = s.service.store.list_collections()
    assert "acme__notes.edge" in names and "globex__plans.edge" in names


def test_rate_limit_is_429_with_retry_after(serve: Start) -> None:
    s = serve(tenants={"acme": {"rate_per_s": 0.5, "burst": 2}, "globex": {}})
    codes = [post(s, "/v1/embeddings", {"input": "x", "model": "edge"}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    r = post(s, "/v1/embeddings", {"input": "x", "model": "edge"})
    assert r.status_code == 429 and error_code(r) == "rate_limited"
    assert int(r.headers["retry-after"]) >= 1
    # other tenants are not affected
    assert post(s, "/v1/embeddings", {"input": "x", "model": "edge"}, "globex").status_code == 200


def test_tenant_ceiling_and_budget(serve: Start) -> None:
    s = serve(tenants={"acme": {"cloud_ceiling": "public"}, "globex": {"budget_usd": 0.0}})
    r = post(s, "/v1/embeddings", {"input": "plain text", "model": "cloud"}, "acme")  # internal > public
    assert r.status_code == 403 and error_code(r) == "privacy.sensitivity"
    r = post(s, "/v1/embeddings", {"input": "plain text", "model": "cloud", "sensitivity": "public"}, "acme")
    assert r.status_code == 200
    # spend is kept per tenant in a ledger beside the outbox (shared by the host's replicas, kept on restart)
    assert (s.service.settings.outbox_path.parent / "spend" / "acme.sqlite").is_file()
    assert s.service.spend(Tenant("acme", cloud_ceiling="public")) > 0
    r = post(s, "/v1/embeddings", {"input": "plain text", "model": "cloud"}, "globex")
    assert r.status_code == 403 and error_code(r) == "budget.exhausted"


def test_delete_is_501_until_the_engine_can_delete(serve: Start) -> None:
    s = serve()
    post(s, "/v1/documents", {"collection": "notes", "documents": DOCS})
    r = httpx.request(
        "DELETE", s.url + "/v1/documents", json={"collection": "notes", "ids": ["shoes"]}, headers=s.headers()
    )
    if hasattr(HybridEngine, "adelete"):
        assert r.status_code == 200, r.text
    else:
        assert r.status_code == 501 and error_code(r) == "not_implemented"


def test_tool_routing(serve: Start) -> None:
    s = serve()
    tools = [
        {
            "name": "refund",
            "description": "Refund an order",
            "examples": ["refund my order", "I want my money back"],
        },
        {
            "name": "weather",
            "description": "Weather forecast",
            "examples": ["weather tomorrow", "will it rain"],
        },
    ]
    r = post(s, "/v1/tools/route", {"request": "please refund my order", "tools": tools})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["candidates"][0]["name"] == "refund" and body["served_by"] == "edge"
    r = post(s, "/v1/tools/route", {"request": "refund"})
    assert r.status_code == 400 and error_code(r) == "invalid_request"


def test_unknown_fields_and_paths(serve: Start) -> None:
    s = serve()
    r = post(s, "/v1/retrieve", {"collection": "notes", "query": "x", "bogus": 1})
    assert r.status_code == 400 and error_code(r) == "invalid_request"
    r = httpx.get(s.url + "/v2/nothing")
    assert r.status_code == 404 and error_code(r) == "not_found"


def test_metrics_report_requests_latency_cloud_outbox_breaker(serve: Start) -> None:
    s = serve()
    post(s, "/v1/documents", {"collection": "notes", "documents": DOCS, "sensitivity": "public"})
    post(s, "/v1/retrieve", {"collection": "notes", "query": "shoes", "stakes": "high"})
    post(s, "/v1/embeddings", {"input": "x", "model": "edge"})
    text = httpx.get(s.url + "/metrics").text
    assert 'edgeroute_requests_total{endpoint="/v1/retrieve",route="hybrid",status="200"} 1.0' in text
    assert 'edgeroute_request_seconds_bucket{endpoint="/v1/embeddings",le="0.5",route="edge"}' in text
    assert 'edgeroute_cloud_calls_total{tenant="acme"}' in text
    assert 'edgeroute_cloud_spend_usd{tenant="acme"}' in text
    assert "edgeroute_outbox_depth 0.0" in text
    assert 'edgeroute_breaker_state{state="closed"} 1.0' in text


def test_no_raw_text_reaches_any_log(serve: Start, caplog: pytest.LogCaptureFixture) -> None:
    s = serve()
    marker = "zebracorn-7781"
    caplog.set_level(logging.DEBUG)
    docs = [{"id": "m1", "text": f"The {marker} memo about jane.roe@example.org", "title": f"{marker} title"}]
    post(s, "/v1/documents", {"collection": "notes", "documents": docs})
    post(s, "/v1/retrieve", {"collection": "notes", "query": f"what is {marker}?"})
    post(s, "/v1/retrieve", {"collection": "nope", "query": f"{marker} again"})
    post(s, "/v1/embeddings", {"input": [f"{marker} jane.roe@example.org"], "model": "cloud"})
    post(s, "/v1/embeddings", {"input": [f"{marker}", ""], "model": "edge"})
    post(s, "/v1/retrieve", {"collection": "notes", "query": {"bad": marker}})
    post(
        s,
        "/v1/tools/route",
        {"request": f"{marker} refund", "tools": [{"name": "t", "description": "d", "examples": ["x"]}]},
    )
    assert any("/v1/retrieve" in r.getMessage() for r in caplog.records)  # the access log is there
    leaked = [
        r.getMessage() for r in caplog.records if marker in r.getMessage() or "jane.roe" in r.getMessage()
    ]
    assert leaked == []


def test_changed_tenant_limits_apply_without_restart(serve: Start) -> None:
    s = serve()
    post(s, "/v1/documents", {"collection": "notes", "documents": DOCS, "sensitivity": "public"})
    assert post(s, "/v1/embeddings", {"input": "plain text", "model": "cloud"}).status_code == 200
    hybrid = post(s, "/v1/retrieve", {"collection": "notes", "query": "bikes", "stakes": "high"}).json()
    assert hybrid["decision"]["route"] == "hybrid"
    s.keystore.set_tenant(Tenant("acme", cloud_ceiling="public"))
    s.service.keys._checked = 0.0  # skip the one-second re-read interval
    r = post(s, "/v1/embeddings", {"input": "plain text", "model": "cloud"})
    assert r.status_code == 403 and error_code(r) == "privacy.sensitivity"
    kept = post(s, "/v1/retrieve", {"collection": "notes", "query": "bikes", "stakes": "high"}).json()
    assert kept["decision"]["route"] == "edge"
    assert "privacy.sensitivity" in [x["code"] for x in kept["decision"]["reasons"]]
