"""Agent tool routing: pick the tool(s) for a request on-device, or say "no tool / ask the user".

``ToolRouter`` (:mod:`.router`) registers tools, fits a linear head and nearest-example scores on
EmbeddingGemma vectors of their examples (:mod:`.fitting`) with a "no tool" threshold
(:mod:`.openset`), reads requests (:mod:`.reading`) and routes them under the routing policy's
privacy rules (:mod:`.privacy`); :mod:`.records` holds what it takes and gives; :mod:`.encoding`
turns texts into cached vectors; :mod:`.clauses` splits multi-tool requests; :mod:`.data` reads
tool-routing data sets and :mod:`.bench` measures them (``edgeroute bench tools``).
"""

from __future__ import annotations

from .router import AuditSink, ToolDecision, ToolFit, ToolRouter, ToolSpec, select_tools

__all__ = ["AuditSink", "ToolDecision", "ToolFit", "ToolRouter", "ToolSpec", "select_tools"]
