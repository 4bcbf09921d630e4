"""Tools in the formats agents already hold them: OpenAI function schemas and MCP ``tools/list`` results.

A schema becomes a registered tool's text: its description, then its parameters' descriptions
("Parameters: city: City name or zip code; unit: ..."), because a request names what it wants *and*
the things it gives (a city, an order number) and the parameters say which. Examples come from the
caller (``examples={name: [...]}``) or from an ``"examples"`` list in the tool's dict (not part of
either format: a place for them; one mapping may serve several listings, so names it has that a
listing lacks are ignored); a tool with none gets one, its name and first sentence, and the
fit's trade-off will say how little that buys. Pure data handling, no I/O.

Shapes accepted:

* OpenAI: ``{"type": "function", "function": {"name", "description", "parameters"}}`` (the Chat
  Completions tool), or the flat ``{"type": "function", "name", "description", "parameters"}`` of the
  Responses API; ``parameters`` is a JSON Schema object.
* MCP (specification 2025-06-18, server/tools.mdx, "Listing Tools"): the ``tools/list`` result
  ``{"tools": [{"name", "title"?, "description"?, "inputSchema", "outputSchema"?, "annotations"?}],
  "nextCursor"?}``, the whole JSON-RPC response around it (``{"jsonrpc", "id", "result": {...}}``), or
  a list of such pages (pagination: one page per ``nextCursor``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...framework.errors import InputError

MAX_PARAMETERS = 12
"""Parameters described in a tool's text; beyond that they add length, not meaning."""


@dataclass(frozen=True, slots=True)
class SchemaTool:
    """A tool read from a schema: its name, its text (description and parameters) and its examples."""

    name: str
    description: str
    examples: tuple[str, ...]


def _humanize(name: str) -> str:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return re.sub(r"[_\-.]+", " ", spaced).strip().lower()


def parameter_text(schema: Mapping[str, Any] | None) -> str:
    """``"city: City name or zip code; unit: celsius or fahrenheit"`` from a JSON Schema object's properties."""
    if not isinstance(schema, Mapping):
        return ""
    props = schema.get("properties")
    if not isinstance(props, Mapping):
        return ""
    parts = []
    for name, spec in list(props.items())[:MAX_PARAMETERS]:
        desc = spec.get("description") if isinstance(spec, Mapping) else None
        enum = spec.get("enum") if isinstance(spec, Mapping) else None
        text = str(desc).strip().rstrip(".") if desc else _humanize(str(name))
        if isinstance(enum, list) and enum and len(enum) <= 8:
            text += f" ({', '.join(str(e) for e in enum)})"
        parts.append(f"{name}: {text}")
    return "; ".join(parts)


def tool_text(
    name: str, description: str | None, parameters: Mapping[str, Any] | None, title: str | None = None
) -> str:
    """A tool's routing text: title or description, then its parameters."""
    head = (description or "").strip()
    if title and title.strip() and title.strip().lower() not in head.lower():
        head = f"{title.strip()}. {head}" if head else title.strip()
    if not head:
        head = _humanize(name)
    params = parameter_text(parameters)
    if params:
        head = f"{head.rstrip('.')}. Parameters: {params}."
    return head


def _examples(
    name: str, raw: Mapping[str, Any], given: Mapping[str, Sequence[str]] | None, text: str
) -> tuple[str, ...]:
    found: Any = (given or {}).get(name, raw.get("examples"))
    if isinstance(found, str):
        raise InputError(f"examples of tool {name!r} must be a list of requests, not one string")
    items = tuple(e for e in (found or ()) if isinstance(e, str) and e.strip())
    if items:
        return items
    first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0].rstrip(".")
    return (f"{_humanize(name)}: {first}",)


def _name(raw: Mapping[str, Any], where: str) -> str:
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"{where} has no name; every tool needs a non-empty 'name'")
    return name


def from_openai(
    tools: Sequence[Mapping[str, Any]], examples: Mapping[str, Sequence[str]] | None = None
) -> list[SchemaTool]:
    """Tools from OpenAI function schemas (``{"type": "function", "function": {...}}`` or the flat form)."""
    if isinstance(tools, Mapping):
        raise InputError("give a list of OpenAI tool schemas, e.g. [{'type': 'function', 'function': {...}}]")
    out = []
    for i, t in enumerate(tools):
        if not isinstance(t, Mapping):
            raise InputError(f"tool {i} is a {type(t).__name__}, not an OpenAI tool schema (a dict)")
        if t.get("type", "function") != "function":
            raise InputError(f"tool {i} has type {t.get('type')!r}; only 'function' tools can be routed to")
        fn = t.get("function", t)
        if not isinstance(fn, Mapping):
            raise InputError(f"tool {i}: 'function' must be an object with name, description, parameters")
        name = _name(fn, f"tool {i}")
        text = tool_text(name, fn.get("description"), fn.get("parameters"))
        out.append(SchemaTool(name, text, _examples(name, {**t, **fn}, examples, text)))
    return out


def _mcp_pages(listing: Any) -> list[Mapping[str, Any]]:
    if isinstance(listing, Mapping) and "result" in listing and "tools" not in listing:
        listing = listing["result"]  # the whole JSON-RPC response
    if isinstance(listing, Mapping):
        return [listing]
    if isinstance(listing, Sequence) and not isinstance(listing, str | bytes):
        return [p for page in listing for p in _mcp_pages(page)]
    raise InputError("an MCP tools/list result is an object with a 'tools' list (or a list of such pages)")


def from_mcp(listing: Any, examples: Mapping[str, Sequence[str]] | None = None) -> list[SchemaTool]:
    """Tools from an MCP ``tools/list`` result (or its JSON-RPC response, or a list of pages)."""
    out = []
    for page in _mcp_pages(listing):
        tools = page.get("tools")
        if not isinstance(tools, list):
            raise InputError(
                "an MCP tools/list result needs a 'tools' list: {'tools': [{'name', 'inputSchema', ...}]}"
            )
        for i, t in enumerate(tools):
            if not isinstance(t, Mapping):
                raise InputError(f"MCP tool {i} is a {type(t).__name__}, not an object")
            name = _name(t, f"MCP tool {i}")
            title = t.get("title") or (t.get("annotations") or {}).get("title")
            text = tool_text(name, t.get("description"), t.get("inputSchema"), title)
            out.append(SchemaTool(name, text, _examples(name, t, examples, text)))
    return out


def from_schema(schema: Mapping[str, Any], examples: Sequence[str] | None = None) -> SchemaTool:
    """One tool from either format: an OpenAI function schema or one MCP tool (has ``inputSchema``)."""
    if not isinstance(schema, Mapping):
        raise InputError("a tool schema is a dict (an OpenAI function schema or an MCP tool)")
    given = None
    if examples is not None:
        name = schema.get("name") or (schema.get("function") or {}).get("name")
        given = {str(name): examples}
    if "inputSchema" in schema:
        return from_mcp({"tools": [schema]}, given)[0]
    return from_openai([schema], given)[0]


__all__ = ["SchemaTool", "from_mcp", "from_openai", "from_schema", "parameter_text", "tool_text"]
