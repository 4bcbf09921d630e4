"""Agent tool routing: pick tools on-device, ask the user when unsure, escalate only what may leave.

python examples/agent_tools.py "will it rain in Lisbon tomorrow?"
"""

from __future__ import annotations

from _common import cloud_embedder, edge_embedder, parser
from langchain_core.tools import tool

from edgeroute.connectors.langchain import select_tools
from edgeroute.connectors.tools import ToolRouter
from edgeroute.connectors.tools.data import load_tool_set
from edgeroute.framework.router.audit import AuditLog

REQUESTS = [
    "will it rain in Lisbon tomorrow?",
    "book a flight to Rome on Friday and then put it in my calendar",
    "I was charged twice, please refund one",
    "show my latest payslip",
    "refund the order for jane.doe@example.com",
    "tell me something interesting",
]


@tool
def weather_forecast(city: str) -> str:
    """Get the current weather and the forecast for a city or place."""
    return f"Sunny in {city}."


@tool
def refund_request(order_id: str) -> str:
    """Start a return or refund for a purchased item, or check a refund."""
    return f"Refund started for {order_id}."


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("request", nargs="*", help="requests to route (default: a built-in mix)")
    args = p.parse_args()
    data = load_tool_set()  # the shipped 14-tool set (edgeroute/connectors/data)
    audit = AuditLog(None)
    with cloud_embedder(args.emulator) as (cloud, _emu):
        router = ToolRouter(edge_embedder(args.edge, args.model_dir), cloud=cloud, audit=audit)
        for t in data.tools:
            router.register(t.name, t.description, t.examples, sensitivity=t.sensitivity)
        router.add_no_tool_examples(data.no_tool_examples)
        fit = router.fit([(r.text, r.tool) for r in data.fit])
        print(f"fitted threshold {fit.threshold:.3f} (fit accuracy {fit.accuracy:.2f}, {fit.seconds:.1f} s)")
        decisions = router.route_many(args.request or REQUESTS, k=2)  # one embedding call for all
        for request, d in zip(args.request or REQUESTS, decisions, strict=True):
            answer = ", ".join(f"{n} ({s:.2f})" for n, s in d.tools) or "no tool: ask the user to clarify"
            print(
                f"\n{request!r}\n  -> {answer}\n  served by {d.served_by}; route {d.decision.route.value} "
                f"{list(d.decision.codes)}; {d.latency_ms:.1f} ms"
            )
        bound = select_tools(router, [weather_forecast, refund_request], "is it going to snow in Denver?")
        print("\nLangChain tools to bind:", [t.name for t in bound])
        print("audit:", audit.summary().routes)


if __name__ == "__main__":
    main()
