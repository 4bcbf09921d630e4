"""Tools from OpenAI / MCP schemas, and the threshold chosen for a target on the registry itself."""

from __future__ import annotations

import numpy as np
import pytest

from edgeroute.connectors.tools import ToolRouter
from edgeroute.connectors.tools.openset import Target, choose, held_out_tool_confidence, trade_off_curve
from edgeroute.connectors.tools.schemas import from_mcp, from_openai, from_schema
from edgeroute.framework.errors import InputError
from edgeroute.framework.testing.hashing import HashingEmbedder

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get current weather information for a location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "City name or zip code"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}

# The tools/list response of the MCP specification (2025-06-18, server/tools.mdx, "Listing Tools"),
# with a second tool added: a JSON-RPC response whose result is {"tools": [...], "nextCursor"}.
MCP_RESPONSE = {
    "jsonrpc": "2.0",
    "id": 1,
    "result": {
        "tools": [
            {
                "name": "get_weather",
                "title": "Weather Information Provider",
                "description": "Get current weather information for a location",
                "inputSchema": {
                    "type": "object",
                    "properties": {"location": {"type": "string", "description": "City name or zip code"}},
                    "required": ["location"],
                },
            },
            {
                "name": "refund_order",
                "description": "Refund or return a purchase",
                "inputSchema": {
                    "type": "object",
                    "properties": {"order_id": {"type": "string", "description": "The order number"}},
                },
                "examples": ["I want a refund", "return these shoes"],
            },
        ],
        "nextCursor": "next-page-cursor",
    },
}

EXAMPLES = {
    "get_weather": ["what's the weather in Paris", "will it rain tomorrow"],
    "refund_order": ["I want a refund", "return these shoes"],
}


def test_openai_schema_text_is_description_and_parameters() -> None:
    (t,) = from_openai([WEATHER], {"get_weather": ["will it rain"]})
    assert t.name == "get_weather"
    assert t.description == (
        "Get current weather information for a location. Parameters: location: City name or zip code; "
        "unit: unit (celsius, fahrenheit)."
    )
    assert t.examples == ("will it rain",)
    flat = from_openai([{"type": "function", **WEATHER["function"]}])[0]  # the Responses API's flat form
    assert flat.description == t.description
    assert flat.examples == ("get weather: Get current weather information for a location",)  # none given


def test_mcp_listing_pages_and_json_rpc_response() -> None:
    tools = from_mcp(MCP_RESPONSE)
    assert [t.name for t in tools] == ["get_weather", "refund_order"]
    assert tools[0].description.startswith("Weather Information Provider. Get current weather")
    assert "Parameters: location: City name or zip code." in tools[0].description
    assert tools[1].examples == ("I want a refund", "return these shoes")  # from the tool's "examples"
    pages = [MCP_RESPONSE["result"], {"tools": [{"name": "ping", "inputSchema": {"type": "object"}}]}]
    assert [t.name for t in from_mcp(pages)] == ["get_weather", "refund_order", "ping"]
    assert from_schema(MCP_RESPONSE["result"]["tools"][0]).name == "get_weather"  # type: ignore[index]


@pytest.mark.parametrize(
    "bad",
    [{"tools": "nope"}, {"tools": [{"description": "no name", "inputSchema": {}}]}, "text"],
)
def test_mcp_listing_errors_say_what_is_wrong(bad: object) -> None:
    with pytest.raises(InputError):
        from_mcp(bad)


def test_openai_rejects_non_function_tools() -> None:
    with pytest.raises(InputError, match="only 'function' tools"):
        from_openai([{"type": "web_search"}])
    with pytest.raises(InputError, match="list of OpenAI tool schemas"):
        from_openai(WEATHER)  # type: ignore[arg-type]


def test_router_from_openai_and_mcp_routes() -> None:
    router = ToolRouter.from_openai_tools([WEATHER], embedder=HashingEmbedder(256), examples=EXAMPLES)
    router.register_schema(MCP_RESPONSE["result"]["tools"][1])  # type: ignore[index]
    assert router.tool_names == ("get_weather", "refund_order")
    assert router.route("will it rain in Paris tomorrow").top == "get_weather"
    mcp = ToolRouter.from_mcp_tools(MCP_RESPONSE, embedder=HashingEmbedder(256), examples=EXAMPLES)
    assert mcp.route("I want a refund for these shoes").top == "refund_order"


def _registry(**kwargs: object) -> ToolRouter:
    router = ToolRouter(HashingEmbedder(256), **kwargs)  # type: ignore[arg-type]
    router.register(
        "weather", "Weather forecast for a city", ["weather in Paris", "will it rain", "is it sunny"]
    )
    router.register(
        "refund", "Refund or return a purchase", ["I want a refund", "return my shoes", "money back"]
    )
    router.register("payslip", "Salary and payslips", ["show my payslip", "what is my salary", "pay slip"])
    router.add_no_tool_examples(["tell me a joke", "hello there", "how are you"])
    return router


def test_fit_reports_target_trade_off_and_moves_with_the_target() -> None:
    router = _registry()
    fit = router.fit()
    assert fit.target == "max_false_reject=0.05"
    assert fit.calibrated_on.startswith("held-out folds of the registered examples")
    assert 0.0 <= fit.expected_in_scope <= 1.0 and fit.expected_out_of_scope_recall is not None
    assert fit.trade_off and all(
        a.threshold < b.threshold for a, b in zip(fit.trade_off, fit.trade_off[1:], strict=False)
    )
    strict = router.fit(max_false_reject=0.3)
    assert strict.threshold >= fit.threshold and strict.target == "max_false_reject=0.3"
    loose = router.fit(min_in_scope=0.0)
    assert loose.target == "min_in_scope=0" and loose.threshold >= strict.threshold  # highest reaching it
    assert _registry(min_out_of_scope=0.9).fit().target == "min_out_of_scope=0.9"


def test_target_errors() -> None:
    with pytest.raises(InputError, match="exactly one"):
        _registry(max_false_reject=0.05, min_in_scope=0.9)
    with pytest.raises(InputError, match="between 0 and 1"):
        _registry(max_false_reject=1.5)
    with pytest.raises(InputError, match="not both"):
        _registry(threshold=0.5, min_in_scope=0.9)


def test_choose_meets_each_target_on_its_rows() -> None:
    rng = np.random.default_rng(0)
    conf = np.concatenate([rng.uniform(0.5, 1.0, 200), rng.uniform(0.0, 0.7, 100)]).astype(np.float32)
    in_scope = np.arange(300) < 200
    right = in_scope & (rng.uniform(size=300) < 0.9)
    got = choose(conf, right, in_scope, target=Target(max_false_reject=0.1))
    refused = ((conf < got.threshold) & right).sum() / right.sum()
    assert refused <= 0.1 + 1e-9 and got.false_reject == pytest.approx(refused)
    got = choose(conf, right, in_scope, target=Target(min_in_scope=0.8))
    assert ((conf >= got.threshold) & right).sum() / 200 >= 0.8
    got = choose(conf, right, in_scope, target=Target(min_out_of_scope=0.9))
    assert got.out_of_scope_recall is not None and got.out_of_scope_recall >= 0.9
    curve = trade_off_curve(conf, right, in_scope)
    assert [p.in_scope for p in curve] == sorted((p.in_scope for p in curve), reverse=True)


def test_held_out_tools_score_as_out_of_scope_rows() -> None:
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(6, 32))
    x = np.concatenate([c + 0.1 * rng.normal(size=(5, 32)) for c in centres]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = [f"t{i}" for i in range(6) for _ in range(5)]
    conf = held_out_tool_confidence("nearest", x, labels)
    assert conf.shape == (30,)  # every example scored once, by a scorer that never saw its tool
    same_tool = held_out_tool_confidence("nearest", x, labels, groups=1)
    assert same_tool.shape == (0,)  # one group would leave no tool to fit on


def test_bench_calibrates_on_the_registry_when_asked() -> None:
    from edgeroute.connectors.bench_tools import measure_tool_routing

    out = measure_tool_routing(HashingEmbedder(256), timed=2, calibrate="registry", max_false_reject=0.1)
    assert out["calibrated_on"].startswith("held-out folds of the registered examples")
    assert out["fit_requests"] == 0 and out["target"] == "max_false_reject=0.1"
    assert 0.0 <= out["fit_embed_seconds"] <= out["fit_seconds"]
    with pytest.raises(ValueError, match="calibrate"):
        measure_tool_routing(HashingEmbedder(256), timed=1, calibrate="labels")
