"""Documents going in and hits coming out."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .digest import sha256_chunks
from .parts import Part

if TYPE_CHECKING:  # annotations only: importing a Document must not load the policy package
    from ..policies.sensitivity import Sensitivity

IndexSide = Literal["edge", "cloud"]
MetadataValue = str | int | float | bool


@dataclass(frozen=True, slots=True)
class Document:
    """A unit of retrieval. ``parts`` carries media (images, PDF ...) for the cloud index; ``text``
    is what the edge index embeds (for a multimodal document: its caption or extracted text)."""

    id: str
    text: str
    title: str | None = None
    metadata: dict[str, MetadataValue] = field(default_factory=dict)
    sensitivity: Sensitivity = "internal"
    parts: tuple[Part, ...] = ()

    @property
    def is_multimodal(self) -> bool:
        return any(not p.is_text for p in self.parts)

    def content_hash(self) -> str:
        """Changes whenever anything that is embedded changes."""
        head = json.dumps([self.title, self.text], ensure_ascii=False).encode()
        return sha256_chunks([head, *(p.content_hash().encode() for p in self.parts)])


@dataclass(frozen=True, slots=True)
class Hit:
    """One retrieved document, saying where it came from."""

    id: str
    text: str
    score: float
    rank: int
    index: IndexSide | Literal["hybrid"]
    space: str
    metadata: dict[str, Any] = field(default_factory=dict)
    title: str | None = None


@dataclass(frozen=True, slots=True)
class RetrievalResult:
    """What the engine returns for one query: the hits, the decision that produced them, and its audit record.

    ``decision`` is an :class:`edgeroute.policies.decision.RouteDecision`; ``audit`` is the record written
    to the audit log (a plain dict: route, reasons, spaces, latency per stage, cloud tokens/bytes/cost ...).
    """

    hits: list[Hit]
    decision: Any
    audit: dict[str, Any] = field(default_factory=dict)

    @property
    def degraded(self) -> bool:
        return bool(getattr(self.decision, "degraded", False))
