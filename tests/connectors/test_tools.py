"""Agent tool routing: ToolRouter, its fit, escalation rules, audit, and the framework adapters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langchain_core.tools import tool
from llama_index.core.tools import FunctionTool

from edgeroute.connectors.bench_tools import load_tool_data, measure_tool_routing
from edgeroute.connectors.langchain import select_tools
from edgeroute.connectors.llamaindex import tool_object_retriever
from edgeroute.connectors.tools import ToolRouter
from edgeroute.framework.cloud.embedder import CloudEmbedder
from edgeroute.framework.errors import ConfigurationError, InputError
from edgeroute.framework.router.audit import AuditLog
from edgeroute.framework.testing.emulator import GeminiEmulator
from edgeroute.framework.testing.hashing import HashingEmbedder

MODEL = Path.home() / ".cache" / "edgeroute" / "models" / "embeddinggemma-300m"


def _router(**kwargs: object) -> ToolRouter:
    r = ToolRouter(HashingEmbedder(256), **kwargs)  # type: ignore[arg-type]
    r.register(
        "weather", "Weather forecast for a city", ["what's the weather in Paris", "will it rain tomorrow"]
    )
    r.register(
        "refund", "Refund or return a purchase", ["I want a refund", "return these shoes for money back"]
    )
    r.register(
        "patient_chart",
        "Look up a patient's medical record",
        ["show the patient's lab results", "patient medication list"],
        sensitivity="restricted",
    )
    r.add_no_tool_examples(["tell me a joke", "hello there"])
    return r


def test_clear_requests_route_and_nonsense_is_unsure() -> None:
    r = _router(threshold=0.3, min_margin=0.0)
    d = r.route("will it rain in Paris tomorrow")
    assert d.top == "weather" and not d.unsure and d.served_by == "edge"
    assert d.decision.route.value == "edge" and d.latency_ms > 0
    assert r.route("I want a refund for these shoes").top == "refund"
    nonsense = r.route("zxqv blorp")
    assert nonsense.unsure and nonsense.tools == [] and nonsense.top is None
    assert nonsense.candidates  # the ranking is still reported


def test_fit_picks_thresholds_on_labelled_requests() -> None:
    r = _router()
    labelled = [
        ("is it raining in Rome", "weather"),
        ("weather tomorrow in Oslo", "weather"),
        ("refund my order please", "refund"),
        ("I want to return shoes", "refund"),
        ("patient lab results for bed 3", "patient_chart"),
        ("tell me a funny joke", None),
        ("hello", None),
    ]
    fit = r.fit(labelled)
    assert fit.requests == 7 and 0.0 <= fit.accuracy <= 1.0
    assert r.threshold == fit.threshold
    with pytest.raises(InputError, match="name no registered tool"):
        r.fit([("x", "nope")])


def test_registration_errors_are_clear() -> None:
    r = ToolRouter(HashingEmbedder())
    with pytest.raises(ConfigurationError, match="no tools registered"):
        r.route("hello")
    with pytest.raises(InputError, match="at least one example"):
        r.register("a", "does a", [])
    with pytest.raises(InputError, match="not one string"):
        r.register("a", "does a", "one string")
    with pytest.raises(InputError, match="description"):
        r.register("a", " ", ["x"])
    r.register("a", "does a", ["do a"])
    with pytest.raises(InputError, match="already registered"):
        r.register("a", "does a", ["do a"])
    with pytest.raises(InputError, match="unknown sensitivity"):
        r.register("b", "does b", ["do b"], sensitivity="secret")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="non-empty"):
        r.route("  ")
    with pytest.raises(ConfigurationError, match="Embedder protocol"):
        ToolRouter(object())  # type: ignore[arg-type]


def test_ambiguous_request_escalates_to_cloud(emulator: GeminiEmulator) -> None:
    cloud = CloudEmbedder(base_url=emulator.base_url, api_key="test-key", dims=256)
    audit = AuditLog(None)
    r = _router(cloud=cloud, audit=audit, threshold=0.99, min_margin=0.0)
    before = emulator.request_count
    d = r.route("will it rain in Paris tomorrow")
    assert d.decision.route.value == "hybrid" and "confidence.low_top1" in d.decision.codes
    assert d.served_by == "cloud" and emulator.request_count > before
    rec = audit.tail(1)[0]
    assert rec["kind"] == "tool_routing" and rec["served_by"] == "cloud"
    assert "query_text" not in rec and len(rec["query_sha256"]) == 64


def test_private_requests_never_reach_the_cloud(emulator: GeminiEmulator) -> None:
    cloud = CloudEmbedder(base_url=emulator.base_url, api_key="test-key", dims=256)
    r = _router(cloud=cloud, threshold=0.99, min_margin=0.0)
    r.route("will it rain tomorrow")  # builds the cloud-side index once
    sent = len(emulator.requests)
    pii = r.route("refund the order for jane.doe@example.com")
    assert "privacy.pii" in pii.decision.codes and pii.served_by == "edge"
    marked = r.route("will it rain tomorrow", sensitivity="restricted")
    assert "privacy.sensitivity" in marked.decision.codes and marked.served_by == "edge"
    chart = r.route("show the patient's lab results and medication", k=1)
    assert chart.candidates[0][0] == "patient_chart" and chart.served_by == "edge"
    assert len(emulator.requests) == sent
    assert all("lab results" not in json.dumps(req) for req in emulator.requests)


def test_cloud_failure_degrades_to_edge(emulator: GeminiEmulator) -> None:
    cloud = CloudEmbedder(base_url=emulator.base_url, api_key="test-key", dims=256, offline=True)
    d = _router(cloud=cloud, threshold=0.99).route("will it rain tomorrow")
    assert d.served_by == "edge" and d.decision.degraded and "cloud.unavailable" in d.decision.codes


async def test_aroute_matches_route() -> None:
    r = _router(threshold=0.3, min_margin=0.0)
    a = await r.aroute("will it rain in Paris tomorrow")
    s = r.route("will it rain in Paris tomorrow")
    assert a.top == s.top == "weather" and a.tools[0][1] == pytest.approx(s.tools[0][1])
    many = await r.aroute_many(["I want a refund", "zxqv blorp"])
    assert many[0].top == "refund" and many[1].unsure


def test_langchain_select_tools() -> None:
    @tool
    def weather(city: str) -> str:
        """Weather forecast for a city."""
        return f"sunny in {city}"

    @tool
    def refund(order_id: str) -> str:
        """Refund or return a purchase."""
        return f"refunded {order_id}"

    r = _router(threshold=0.3, min_margin=0.0)
    assert [t.name for t in select_tools(r, [weather, refund], "will it rain in Paris tomorrow", k=1)] == [
        "weather"
    ]
    assert select_tools(r, [weather, refund], "zxqv blorp") == []
    assert r.last_decision is not None and r.last_decision.unsure

    @tool
    def unknown(x: str) -> str:
        """Not registered."""
        return x

    with pytest.raises(InputError, match="not registered"):
        select_tools(r, [unknown], "hi")


async def test_llamaindex_object_retriever() -> None:
    def weather(city: str) -> str:
        """Weather forecast for a city."""
        return city

    def refund(order_id: str) -> str:
        """Refund or return a purchase."""
        return order_id

    tools = [FunctionTool.from_defaults(fn=weather), FunctionTool.from_defaults(fn=refund)]
    r = _router(threshold=0.3, min_margin=0.0)
    retriever = tool_object_retriever(r, tools, k=1)
    assert [t.metadata.name for t in retriever.retrieve("I want a refund for these shoes")] == ["refund"]
    assert retriever.retrieve("zxqv blorp") == []
    assert [t.metadata.name for t in await retriever.aretrieve("will it rain tomorrow")] == ["weather"]


def test_labelled_set_shape() -> None:
    spec, rows = load_tool_data()
    assert len(spec["tools"]) >= 12 and len(rows) >= 300
    assert sum(r["tool"] is None for r in rows) >= 30
    names = {t["name"] for t in spec["tools"]}
    assert {r["tool"] for r in rows} - {None} == names
    assert {r["split"] for r in rows} == {"fit", "test"}


def test_measure_tool_routing_figures() -> None:
    out = measure_tool_routing(HashingEmbedder(256))
    for key in ("top1_accuracy", "accuracy_at_threshold", "latency_p50_ms", "coverage", "threshold"):
        assert key in out
    assert out["test_requests"] == 160 and out["top1_accuracy"] > 0.4


@pytest.mark.slow
def test_real_model_routes_tools_accurately() -> None:
    from edgeroute.framework.edge.embedder import EdgeEmbedder

    if not (MODEL / "manifest.json").is_file():
        pytest.fail(f"the exported EmbeddingGemma model is missing at {MODEL}; run `edgeroute model export`")
    out = measure_tool_routing(EdgeEmbedder.load(MODEL))
    assert out["top1_accuracy"] >= 0.9 and out["accuracy_at_threshold"] >= 0.85
