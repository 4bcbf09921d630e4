"""Bind only the tools the router picks: the subset of an agent's tool objects for one request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar

from ...framework.errors import InputError

if TYPE_CHECKING:
    from .router import ToolRouter

_T = TypeVar("_T")


def select_tools(router: ToolRouter, tools: Sequence[_T], request: str, *, k: int = 3) -> list[_T]:
    """The subset of ``tools`` (LangChain ``BaseTool``s, or anything with a ``name``) to bind for ``request``.

    Returns ``[]`` when the router is unsure: ask the user instead of guessing a tool. The decision
    is ``router.last_decision`` in the calling thread. ``llm.bind_tools(select_tools(router, tools, request))``.
    """
    by_name = {str(getattr(t, "name", "")): t for t in tools}
    missing = sorted(set(by_name) - set(router.tool_names))
    if missing:
        raise InputError(
            f"tools {missing} are not registered with the router; "
            "register each with router.register(tool.name, tool.description, examples)"
        )
    decision = router.route(request, k=k)
    return [by_name[n] for n, _ in decision.tools if n in by_name]
