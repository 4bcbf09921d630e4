"""Split a request into clauses at connectives, for requests that need several tools.

"book a flight to Rome and add it to my calendar" -> ["book a flight to Rome", "add it to my calendar"].
The split is deliberately eager ("salt and pepper" splits too): each clause is routed on its own and a
second tool is offered only when every clause is confidently routed to a different tool, so a wrong
split costs one batched embedding, not a wrong answer.
"""

from __future__ import annotations

import re

_CONNECTIVE = re.compile(
    r"""\s*(?:
        ;\s*(?:and\s+)?(?:then\s+|also\s+|after\s+that,?\s+)? |   # "; then", "; after that"
        [.!?]\s+(?:and\s+)?(?:then|also|after\s+that|plus)\b,?\s* | # ". also ..."
        ,?\s+and\s+(?:then|also|after\s+that)\b,?\s* |              # "and then", "and also"
        ,?\s+after\s+that,?\s+ |
        ,\s*then\s+ |
        ,?\s+and\s+ |
        \s+then\s+(?=\w+\s)                                         # "... then add it ..."
    )""",
    re.IGNORECASE | re.VERBOSE,
)
MIN_WORDS = 2
MAX_CLAUSES = 4


def split_clauses(request: str) -> list[str]:
    """The clauses of ``request`` (at least two words each), or ``[request]`` when there is one."""
    parts = [p.strip(" ,.;:!?") for p in _CONNECTIVE.split(request)]
    clauses = [p for p in parts if len(p.split()) >= MIN_WORDS]
    if len(clauses) < 2 or len(clauses) > MAX_CLAUSES:
        return [request]
    return clauses


__all__ = ["split_clauses"]
