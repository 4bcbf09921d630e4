"""Adapters for LangChain (``edgeroute.connectors.langchain``), LlamaIndex (``edgeroute.connectors.llamaindex``)
and agent tool routing (``edgeroute.connectors.tools``).

The framework adapters need their extras (``pip install 'edgeroute[langchain]'`` or ``'edgeroute[llamaindex]'``)
and are imported from their modules; tool routing needs neither and is re-exported here.
"""

from __future__ import annotations

from .tools import ToolDecision, ToolRouter

__all__ = ["ToolDecision", "ToolRouter"]
