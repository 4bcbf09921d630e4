"""A query as the engine takes it: parsed, validated (before any I/O), redacted for the cloud."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from ...policies.decision import Sensitivity, Stakes
from ...policies.pii import redact
from ...policies.signals import PiiFinding, QuerySignals, SignalError
from ..cloud.media import validate_content
from ..errors import InputError
from ..parts import Part


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    """``text``: the text parts joined, what the edge embeds ("" for a media-only query);
    ``parts``: what the cloud embeds, as one interleaved input."""

    text: str
    parts: tuple[Part, ...]

    @property
    def modalities(self) -> frozenset[str]:
        return frozenset(p.modality for p in self.parts)

    @property
    def identity(self) -> str:
        """What the audit log hashes: the text, or the parts' content hashes for a media-only query."""
        return self.text or " ".join(p.content_hash() for p in self.parts)

    def text_parts(self) -> list[str]:
        """The text of every text part, in order (what :meth:`redacted` needs findings for)."""
        return [p.text_value for p in self.parts if p.is_text and p.text_value]

    def redacted(
        self, findings: Sequence[PiiFinding], part_findings: Sequence[tuple[PiiFinding, ...]]
    ) -> ParsedQuery:
        """The query with PII replaced by placeholders in the joined text and in every text part;
        ``part_findings[i]`` are the findings of ``text_parts()[i]``."""
        found = iter(part_findings)
        return ParsedQuery(
            redact(self.text, tuple(findings)),
            tuple(
                Part.text(redact(p.text_value, next(found))) if p.is_text and p.text_value else p
                for p in self.parts
            ),
        )


def parse_query(query: str | Sequence[Part]) -> ParsedQuery:
    """Validate a query (text, or parts for one interleaved input) before anything is computed."""
    if isinstance(query, str):
        if not query.strip():
            raise InputError("the query is empty; pass some text or a list of Parts")
        return ParsedQuery(query, (Part.text(query),))
    items: Sequence[object] = [query] if isinstance(query, Part) else query
    if not isinstance(items, Sequence):
        raise InputError(f"a query is a str or a list of Parts, got {type(query).__name__}")
    bad = next((i for i, p in enumerate(items) if not isinstance(p, Part)), None)
    if bad is not None:
        raise InputError(
            f"query part {bad} is a {type(items[bad]).__name__}; use Part.text(...), Part.image(...)"
        )
    parts = tuple(p for p in items if isinstance(p, Part))
    validate_content(parts)  # 7 images, a fake PNG, a long video: refused before any I/O
    text = " ".join(p.text_value for p in parts if p.text_value is not None)
    return ParsedQuery(text, parts)


def check_call(k: int, sensitivity: str, stakes: str, deadline_ms: float | None) -> None:
    """Refuse a bad ``k``, sensitivity, stakes or deadline with :class:`InputError`."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}")
    if deadline_ms is not None and not math.isfinite(deadline_ms):
        raise InputError(
            f"deadline_ms must be a finite number of milliseconds, got {deadline_ms}; leave it unset "
            "for the policy's default"
        )
    try:
        QuerySignals(
            frozenset({"text"}),
            sensitivity=cast(Sensitivity, sensitivity),
            stakes=cast(Stakes, stakes),
            deadline_ms=deadline_ms,
        )
    except SignalError as exc:
        raise InputError(str(exc)) from None


__all__ = ["ParsedQuery", "check_call", "parse_query"]
