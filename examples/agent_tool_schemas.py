"""Route over the tools an agent already holds: OpenAI function schemas and an MCP server's tools/list.

python examples/agent_tool_schemas.py "what's the weather in Oslo?"

The router reads each tool's description and its parameters' descriptions; example requests (a few
per tool) make it much better, and ``fit`` says what the chosen threshold is expected to reach on this
registry (in scope / out of scope) and the trade-off, so you can ask for another target.
"""

from __future__ import annotations

from _common import edge_embedder, parser

from edgeroute.connectors.tools import ToolRouter

REQUESTS = [
    "what's the weather in Oslo this weekend?",
    "send an email to the finance team about the Q3 report",
    "find the quarterly revenue spreadsheet",
    "tell me a joke about penguins",
]

# OpenAI Chat Completions tools, as passed to client.chat.completions.create(tools=...).
OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather and forecast for a location.",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {"type": "string", "description": "City name or zip code"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["location"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "send_email",
            "description": "Send an email to one or more recipients.",
            "parameters": {
                "type": "object",
                "properties": {
                    "to": {"type": "string", "description": "Recipient e-mail addresses"},
                    "subject": {"type": "string", "description": "Subject line"},
                    "body": {"type": "string", "description": "Message text"},
                },
            },
        },
    },
]

# An MCP tools/list result, in the shape of the MCP specification (2025-06-18, server/tools.mdx,
# "Listing Tools"): {"tools": [{"name", "title"?, "description", "inputSchema"}], "nextCursor"?}.
MCP_TOOLS_LIST = {
    "tools": [
        {
            "name": "search_files",
            "title": "File search",
            "description": "Search the user's documents and spreadsheets by name or content.",
            "inputSchema": {
                "type": "object",
                "properties": {"query": {"type": "string", "description": "Words to look for"}},
                "required": ["query"],
            },
        },
        {
            "name": "create_event",
            "description": "Create a calendar event.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "title": {"type": "string", "description": "Event title"},
                    "start": {"type": "string", "description": "Start date and time"},
                },
            },
        },
    ],
    "nextCursor": "page-2",
}

EXAMPLES = {
    "get_weather": ["will it rain tomorrow", "weather in Paris", "how hot is it in Rome today"],
    "send_email": ["email my manager that I'm late", "send a message to Anna", "write an email to the team"],
    "search_files": [
        "find my tax documents",
        "where is the budget spreadsheet",
        "search my files for the lease",
    ],
    "create_event": ["add a meeting on Monday at 10", "put lunch with Sam in my calendar", "schedule a call"],
}


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("request", nargs="*", help="requests to route (default: a built-in mix)")
    a = p.parse_args()
    edge = edge_embedder(a.edge, a.model_dir)
    # One router over both kinds: the OpenAI tools first, then the MCP server's.
    router = ToolRouter.from_openai_tools(OPENAI_TOOLS, embedder=edge, examples=EXAMPLES)
    for tool in MCP_TOOLS_LIST["tools"]:
        router.register_schema(tool, EXAMPLES[tool["name"]])
    router.add_no_tool_examples(["tell me a joke", "hello", "what is the meaning of life"])
    for spec in router.tools:
        print(f"{spec.name}: {spec.description}")
    fit = router.fit(max_false_reject=0.05)
    oos = fit.expected_out_of_scope_recall
    print(
        f"fit: target {fit.target} on {fit.calibrated_on}: expected in scope {fit.expected_in_scope:.2f}, "
        f"out of scope {'n/a' if oos is None else f'{oos:.2f}'}, threshold {fit.threshold:.3f}"
    )
    for point in fit.trade_off:
        print(f"  refuse {point.false_reject:.0%} of right answers -> in scope {point.in_scope:.2f}")
    mcp_only = ToolRouter.from_mcp_tools(MCP_TOOLS_LIST, embedder=edge, examples=EXAMPLES)
    print(f"from the MCP listing alone: {list(mcp_only.tool_names)}")
    for request in a.request or REQUESTS:
        d = router.route(request)
        print(f"{request!r} -> {d.top if d.top else 'no tool: ask the user'}")


if __name__ == "__main__":
    main()
