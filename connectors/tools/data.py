"""Tool-routing data sets on disk: the folder layout ``edgeroute bench tools --data DIR`` reads.

``DIR/tools.jsonl``: one ``{"name", "description"}`` per tool, optionally ``"examples": [...]`` (its
registration examples) and ``"sensitivity"``.

``DIR/requests.jsonl``: labelled requests ``{"text", "tool"}`` (``"tool": null`` = out of scope, the
router should ask the user), or ``{"text", "tools": [a, b, ...]}`` for a request that needs several
tools; optional ``"split"``: ``"fit"`` (labelled requests handed to :meth:`ToolRouter.fit`) or ``"test"``
(the default; only measured).

``DIR/shots.jsonl`` (optional): ``{"text", "tool"}`` rows registration examples are drawn from, ``shots``
per tool with a fixed seed; ``"tool": null`` rows are "no tool" examples. Without it, tools use their
``examples``; tools with none get ``shots`` requests drawn from the test requests (removed from the test).
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...framework.errors import ConfigurationError, InputError
from ...policies.sensitivity import SENSITIVITY_LEVELS
from .records import ToolSpec

ToolSpecRow = ToolSpec  # a tools.jsonl row is a tool spec; the old name stays importable

SHIPPED_DATA = Path(__file__).resolve().parent.parent / "data"
"""The labelled set that ships with the package (14 tools; see its README.md)."""

SEED = 0


@dataclass(frozen=True, slots=True)
class LabelledRequest:
    """One request and the tools it needs: () for "no tool", one name, or several for a multi-tool ask."""

    text: str
    tools: tuple[str, ...]
    split: str = "test"

    @property
    def tool(self) -> str | None:
        return self.tools[0] if len(self.tools) == 1 else None

    @property
    def multi(self) -> bool:
        return len(self.tools) > 1


@dataclass(slots=True)
class ToolSet:
    """Tools with their registration examples, "no tool" examples, fit and test requests."""

    path: Path
    tools: list[ToolSpecRow]
    no_tool_examples: list[str]
    fit: list[LabelledRequest] = field(default_factory=list)
    test: list[LabelledRequest] = field(default_factory=list)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{path}:{n} is not valid JSON ({exc.msg}); each line must be one object"
            ) from exc
        if not isinstance(row, dict):
            raise InputError(f"{path}:{n} must be a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def _text(row: dict[str, Any], path: Path, n: int) -> str:
    text = row.get("text", row.get("request"))
    if not isinstance(text, str) or not text.strip():
        raise InputError(f'{path}:{n} needs a non-empty "text"')
    return text


def _request(row: dict[str, Any], names: set[str], path: Path, n: int) -> LabelledRequest:
    text = _text(row, path, n)
    if "tools" in row:
        tools = row["tools"]
        if not isinstance(tools, list) or not all(isinstance(t, str) for t in tools):
            raise InputError(f'{path}:{n}: "tools" must be a list of tool names')
    else:
        tool = row.get("tool")
        if tool is not None and not isinstance(tool, str):
            raise InputError(f'{path}:{n}: "tool" must be a tool name or null')
        tools = [] if tool is None else [tool]
    unknown = sorted(set(tools) - names)
    if unknown:
        raise InputError(f"{path}:{n} names tools {unknown} that tools.jsonl does not define")
    split = row.get("split", "test")
    if split not in ("fit", "test"):
        raise InputError(f"{path}:{n}: split must be 'fit' or 'test', got {split!r}")
    return LabelledRequest(text, tuple(dict.fromkeys(tools)), split)


def load_tool_set(path: str | Path | None = None, *, shots: int | None = None, seed: int = SEED) -> ToolSet:
    """Read a data folder (default: the shipped set) and draw ``shots`` examples per tool (None: all)."""
    base = Path(path) if path is not None else SHIPPED_DATA
    tools_file, requests_file, shots_file = (
        base / "tools.jsonl",
        base / "requests.jsonl",
        base / "shots.jsonl",
    )
    if not tools_file.is_file() or not requests_file.is_file():
        raise ConfigurationError(
            f"no tool-routing data in {base}: it needs tools.jsonl ({{name, description}} per line) and "
            "requests.jsonl ({text, tool} per line, tool null for out of scope); "
            "scripts/convert-intent-benchmarks writes public benchmarks in this layout"
        )
    if shots is not None and shots < 1:
        raise InputError(f"shots must be at least 1, got {shots}")
    specs: dict[str, dict[str, Any]] = {}
    for n, row in enumerate(_jsonl(tools_file), 1):
        name, desc = row.get("name"), row.get("description")
        if not isinstance(name, str) or not name.strip() or not isinstance(desc, str) or not desc.strip():
            raise InputError(f'{tools_file}:{n} needs a non-empty "name" and "description"')
        if name in specs:
            raise InputError(f"{tools_file}:{n}: tool {name!r} is defined twice")
        if row.get("sensitivity", "internal") not in SENSITIVITY_LEVELS:
            raise InputError(f"{tools_file}:{n}: sensitivity must be one of {', '.join(SENSITIVITY_LEVELS)}")
        specs[name] = row
    names = set(specs)
    requests = [_request(r, names, requests_file, n) for n, r in enumerate(_jsonl(requests_file), 1)]
    rng = random.Random(seed)
    pool: dict[str, list[str]] = defaultdict(list)
    no_tool: list[str] = []
    if shots_file.is_file():
        for n, row in enumerate(_jsonl(shots_file), 1):
            req = _request(row, names, shots_file, n)
            if req.tool is None:
                no_tool.append(req.text)
            else:
                pool[req.tool].append(req.text)
    for name, row in specs.items():
        pool[name] = [*row.get("examples", []), *pool.get(name, [])]
    taken: set[str] = set()
    missing = [n for n in specs if not pool[n]]
    if missing:
        # Tools with no examples anywhere get shots drawn from the single-tool test requests.
        by_tool: dict[str, list[LabelledRequest]] = defaultdict(list)
        for r in requests:
            if r.split == "test" and r.tool is not None:
                by_tool[r.tool].append(r)
        for name in missing:
            drawn = rng.sample(by_tool[name], min(shots or 10, len(by_tool[name])))
            pool[name] = [r.text for r in drawn]
            taken.update(r.text for r in drawn)
        unfilled = [n for n in missing if not pool[n]]
        if unfilled:
            raise InputError(f"tools {unfilled[:5]} have no examples and no requests to draw them from")
    tools = []
    for name, row in specs.items():
        examples = pool[name]
        if shots is not None and len(examples) > shots:
            examples = rng.sample(examples, shots)
        tools.append(
            ToolSpecRow(name, row["description"], tuple(examples), row.get("sensitivity", "internal"))
        )
    return ToolSet(
        path=base,
        tools=tools,
        no_tool_examples=no_tool,
        fit=[r for r in requests if r.split == "fit"],
        test=[r for r in requests if r.split == "test" and r.text not in taken],
    )


__all__ = ["SHIPPED_DATA", "LabelledRequest", "ToolSet", "ToolSpecRow", "load_tool_set"]
