"""``POST /v1/tools/route``: which of the given tools (or the server's ``--tools`` file) fit a request.

Routers are kept per tenant and tool set (a small LRU), so the tools' example requests are embedded
once, not on every call; the first call on a new set builds its index under a lock.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request

from ...connectors.tools import ToolDecision, ToolRouter
from ..errors import ConfigurationError
from .auth import ServiceDep, TenantDep
from .errors import ApiError
from .keys import Tenant
from .limits import StrictJSONRoute, check_query_length
from .schemas import ToolIn, ToolRouteRequest, ToolRouteResponse
from .service import Service

router = APIRouter(tags=["tools"], route_class=StrictJSONRoute)
_MAX_ROUTERS = 64


def load_tools_file(path: Path) -> list[ToolIn]:
    """A JSON or YAML list of tools (``name``, ``description``, ``examples``, optional ``sensitivity``)."""
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data: Any = yaml.safe_load(text)
        else:
            data = json.loads(text)
        items = data["tools"] if isinstance(data, dict) else data
        return [ToolIn.model_validate(t) for t in items]
    except Exception as exc:
        raise ConfigurationError(
            f"tools file {path} is not a list of tools with name, description and examples ({exc})"
        ) from exc


class _Entry:
    def __init__(self, router: ToolRouter) -> None:
        self.router = router
        self.lock = asyncio.Lock()
        self.built = False


class ToolRouters:
    def __init__(self, service: Service, default: list[ToolIn] | None) -> None:
        self.service = service
        self.default = default
        self._routers: OrderedDict[tuple[str, str], _Entry] = OrderedDict()

    def _entry(self, tenant: Tenant, tools: list[ToolIn]) -> _Entry:
        digest = hashlib.sha256(
            json.dumps([t.model_dump() for t in tools], sort_keys=True).encode()
        ).hexdigest()
        key = (tenant.name, digest)
        entry = self._routers.get(key)
        if entry is None:
            r = ToolRouter(
                self.service.edge,
                policy=self.service.tenant_policy(tenant),
                cloud=self.service.cloud_for(tenant),
                audit=self.service.audit,
            )
            for t in tools:
                r.register(t.name, t.description, t.examples, sensitivity=t.sensitivity)
            entry = self._routers[key] = _Entry(r)
            while len(self._routers) > _MAX_ROUTERS:
                self._routers.popitem(last=False)
        self._routers.move_to_end(key)
        return entry

    async def route(self, tenant: Tenant, req: ToolRouteRequest) -> ToolDecision:
        tools = req.tools if req.tools is not None else self.default
        if not tools:
            raise ApiError(
                400,
                "invalid_request",
                "no tools to route to: send 'tools' in the request, or start the server with --tools FILE",
                param="tools",
            )
        entry = self._entry(tenant, tools)
        args = (req.request, req.k)
        kw: dict[str, Any] = {"sensitivity": req.sensitivity, "stakes": req.stakes}
        if not entry.built:
            async with entry.lock:  # one build of the examples' index, not one per concurrent request
                decision = await entry.router.aroute(*args, **kw)
                entry.built = True
                return decision
        return await entry.router.aroute(*args, **kw)


@router.post("/v1/tools/route", response_model=ToolRouteResponse)
async def route_tools(
    req: ToolRouteRequest, request: Request, service: ServiceDep, tenant: TenantDep
) -> dict[str, Any]:
    """The tool(s) for a request, best first; ``unsure`` (no tools) means: ask the user."""
    check_query_length([req.request], service.config.max_query_chars, "request")
    routers: ToolRouters = request.app.state.tool_routers
    d = await routers.route(tenant, req)
    request.state.route = d.served_by
    return {
        "tools": [{"name": n, "score": s} for n, s in d.tools],
        "unsure": d.unsure,
        "decision": d.decision.to_dict(),
        "served_by": d.served_by,
        "candidates": [{"name": n, "score": s} for n, s in d.candidates],
        "latency_ms": round(d.latency_ms, 3),
    }


__all__ = ["ToolRouters", "load_tools_file", "router"]
