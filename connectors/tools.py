"""Agent tool routing: pick the tool(s) for a request on-device, or say "no tool / ask the user".

A :class:`ToolRouter` embeds each registered tool's description and example requests with the
edge embedder, and scores a request against them (mean of the nearest examples per tool, via
:class:`edgeroute.policies.semantic.SemanticRoutes`; "no tool" examples compete as negatives).
:meth:`ToolRouter.fit` picks the score threshold and margin on labelled requests. Below them the
edge is unsure, and the routing policy decides, exactly as for a retrieval, whether the request may
be escalated to the cloud embedder: never when it contains PII, is marked above the cloud ceiling,
or looks like a request for a tool whose domain is above the ceiling. Every decision is audited.

Framework adapters: :func:`select_tools` (LangChain) here, and
:func:`edgeroute.connectors.llamaindex.tool_object_retriever` (LlamaIndex).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np

from ..framework.embedder import Embedder, Vectors
from ..framework.errors import CloudError, ConfigurationError, InputError
from ..framework.router.audit import text_sha256
from ..policies.config import ConfidenceConfig, PolicyConfig
from ..policies.decision import SENSITIVITY_LEVELS, Reason, Route, RouteDecision, Sensitivity, Stakes
from ..policies.pii import detect_pii
from ..policies.rules import decide
from ..policies.semantic import SemanticRoutes
from ..policies.signals import CloudState, QuerySignals, sensitivity_rank

__all__ = ["AuditSink", "ToolDecision", "ToolFit", "ToolRouter", "ToolSpec", "select_tools"]

_NEGATIVE = (
    "\x00no-tool"  # a label no tool can be named, so a tool called "normal" is not taken for negatives
)


class AuditSink(Protocol):
    """Anything with ``write(record)``, such as :class:`edgeroute.framework.router.audit.AuditLog`."""

    def write(self, record: Mapping[str, Any]) -> Any: ...


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One registered tool: what it does, how users ask for it, and how sensitive its domain is."""

    name: str
    description: str
    examples: tuple[str, ...]
    sensitivity: Sensitivity = "internal"


@dataclass(frozen=True, slots=True)
class ToolDecision:
    """The answer for one request.

    ``tools`` are the tools to offer, best first, as ``(name, score)``; empty exactly when
    ``unsure`` (then ask the user). ``candidates`` ranks every considered tool whatever the outcome.
    ``served_by`` is ``"edge"`` or ``"cloud"`` (escalated); ``decision`` is the policy's
    :class:`~edgeroute.policies.decision.RouteDecision`; ``audit`` is the record written to the log.
    """

    tools: list[tuple[str, float]]
    unsure: bool
    decision: RouteDecision
    latency_ms: float
    candidates: list[tuple[str, float]] = field(default_factory=list)
    served_by: str = "edge"
    audit: dict[str, Any] = field(default_factory=dict)

    @property
    def top(self) -> str | None:
        """The chosen tool's name, or None for "no tool / ask the user"."""
        return self.tools[0][0] if self.tools else None


@dataclass(frozen=True, slots=True)
class ToolFit:
    """Fitted thresholds and the figures they reach on the labelled requests they were fitted on."""

    threshold: float
    min_margin: float
    accuracy: float
    top1_accuracy: float
    requests: int
    cloud_threshold: float | None = None
    cloud_min_margin: float | None = None


@dataclass(slots=True)
class _Index:
    """Example vectors of one embedding side (edge or cloud) over a set of tools."""

    routes: SemanticRoutes
    names: tuple[str, ...]


_MARGINS = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08)


def _ranked(names: Sequence[str], scores: np.ndarray[Any, Any]) -> list[tuple[str, float]]:
    order = np.argsort(-scores, kind="stable")
    return [(names[i], float(scores[i])) for i in order]


def _top_and_margin(cands: list[tuple[str, float]], negative: float | None) -> tuple[float, float]:
    """Best score, and its lead over the runner-up tool or the best "no tool" example, whichever is nearer."""
    top = cands[0][1] if cands else -1.0
    rivals = [s for _, s in cands[1:2]]
    if negative is not None:
        rivals.append(negative)
    margin = top - max(rivals) if rivals else 1.0
    return top, max(0.0, margin)


def _fit_grid(
    rows: list[tuple[list[tuple[str, float]], float | None]], labels: Sequence[str | None]
) -> tuple[float, float, float]:
    """(threshold, margin, accuracy) maximising accuracy, where an unsure answer is right for no-tool labels."""
    best = (-1.0, 0.0, 0.0)  # accuracy, threshold, margin
    tops = sorted({round(_top_and_margin(c, n)[0], 6) for c, n in rows})
    thresholds = [-1.0, *tops]
    for margin in _MARGINS:
        for t in thresholds:
            right = 0
            for (cands, neg), label in zip(rows, labels, strict=True):
                top, lead = _top_and_margin(cands, neg)
                sure = top >= t and lead >= margin
                right += (cands[0][0] == label) if sure else (label is None)
            acc = right / len(rows)
            # Ties go to the higher threshold: with equal accuracy, the cautious answer is better.
            if acc > best[0] or (acc == best[0] and t > best[1]):
                best = (acc, t, margin)
    return best[1], best[2], best[0]


class ToolRouter:
    """Routes requests to registered tools on-device; escalates ambiguous ones when the policy allows.

    ``embedder`` is the edge embedder (EmbeddingGemma, or ``HashingEmbedder`` in tests); ``cloud``
    an optional second embedder (``CloudEmbedder``) for escalation; ``policy`` the routing policy
    (its privacy rules apply; its confidence thresholds are replaced by the fitted ones); ``audit``
    an :class:`~edgeroute.framework.router.audit.AuditLog` (or anything with ``write``). ``top_k`` is how
    many nearest examples per tool are averaged into its score; ``spread`` how far below the best
    tool's score another tool may be and still be offered with it (up to ``k`` tools).
    """

    def __init__(
        self,
        embedder: Embedder,
        *,
        policy: PolicyConfig | None = None,
        cloud: Embedder | None = None,
        audit: AuditSink | None = None,
        top_k: int = 2,
        threshold: float = 0.5,
        min_margin: float = 0.02,
        spread: float = 0.05,
    ) -> None:
        if not isinstance(embedder, Embedder):
            raise ConfigurationError(
                f"embedder must implement edgeroute's Embedder protocol, got {type(embedder).__name__}"
            )
        if cloud is not None and not isinstance(cloud, Embedder):
            raise ConfigurationError(f"cloud must be an edgeroute Embedder, got {type(cloud).__name__}")
        if top_k < 1:
            raise InputError(f"top_k must be at least 1, got {top_k}")
        if spread < 0:
            raise InputError(f"spread must be >= 0, got {spread}")
        self.embedder = embedder
        self.cloud = cloud
        self.policy = policy or PolicyConfig()
        self.audit = audit
        self.top_k = top_k
        self.threshold = threshold
        self.min_margin = min_margin
        self.spread = spread
        self.cloud_threshold = threshold
        self.cloud_min_margin = min_margin
        self._tools: dict[str, ToolSpec] = {}
        self._no_tool: list[str] = []
        self._edge: _Index | None = None
        self._cloud: _Index | None = None
        self.fitted: ToolFit | None = None
        self.last_decision: ToolDecision | None = None

    # -- registration ----------------------------------------------------------------------

    @property
    def tool_names(self) -> tuple[str, ...]:
        return tuple(self._tools)

    @property
    def tools(self) -> tuple[ToolSpec, ...]:
        return tuple(self._tools.values())

    def register(
        self, name: str, description: str, examples: Sequence[str], *, sensitivity: Sensitivity = "internal"
    ) -> ToolSpec:
        """Add a tool. ``examples`` are requests users would make for it (at least one; 5-10 is better)."""
        if not isinstance(name, str) or not name.strip():
            raise InputError("a tool needs a non-empty name")
        if name in self._tools:
            raise InputError(f"tool {name!r} is already registered; tool names must be unique")
        if not isinstance(description, str) or not description.strip():
            raise InputError(f"tool {name!r} needs a non-empty description of what it does")
        if isinstance(examples, str):
            raise InputError(f"examples of tool {name!r} must be a list of requests, not one string")
        items = tuple(examples)
        if not items or any(not isinstance(e, str) or not e.strip() for e in items):
            raise InputError(
                f"tool {name!r} needs at least one example request, each a non-empty string "
                "(for example ['refund my last order'])"
            )
        if sensitivity not in SENSITIVITY_LEVELS:
            raise InputError(
                f"unknown sensitivity {sensitivity!r}; use one of {', '.join(SENSITIVITY_LEVELS)}"
            )
        spec = ToolSpec(name, description, items, sensitivity)
        self._tools[name] = spec
        self._edge = self._cloud = None
        return spec

    def add_no_tool_examples(self, examples: Sequence[str]) -> None:
        """Requests that should get no tool (small talk, out-of-scope asks); they compete with the tools."""
        if isinstance(examples, str) or any(not isinstance(e, str) or not e.strip() for e in examples):
            raise InputError("no-tool examples must be a list of non-empty strings")
        self._no_tool.extend(examples)
        self._edge = self._cloud = None

    # -- indexes ---------------------------------------------------------------------------

    def _texts(self, names: Sequence[str]) -> tuple[list[str], list[str | None]]:
        texts: list[str] = []
        labels: list[str | None] = []
        for n in names:
            spec = self._tools[n]
            for t in (spec.description, *spec.examples):
                texts.append(t)
                labels.append(n)
        texts.extend(self._no_tool)
        labels.extend([None] * len(self._no_tool))
        return texts, labels

    def _build(self, names: Sequence[str], vecs: Vectors, labels: Sequence[str | None]) -> _Index:
        routes = SemanticRoutes.from_labelled(vecs, labels, negative_label=_NEGATIVE, top_k=self.top_k)
        return _Index(routes, tuple(names))

    def _cloud_names(self) -> list[str]:
        # A tool whose domain is above the cloud ceiling never has its examples sent to the cloud.
        ceiling = sensitivity_rank(self.policy.cloud_ceiling)
        return [n for n, s in self._tools.items() if sensitivity_rank(s.sensitivity) <= ceiling]

    def _require_tools(self) -> None:
        if not self._tools:
            raise ConfigurationError("no tools registered; call router.register(name, description, examples)")

    def _edge_index(self) -> _Index:
        self._require_tools()
        if self._edge is None:
            texts, labels = self._texts(list(self._tools))
            self._edge = self._build(list(self._tools), self.embedder.embed_queries(texts), labels)
        return self._edge

    async def _aedge_index(self) -> _Index:
        self._require_tools()
        if self._edge is None:
            texts, labels = self._texts(list(self._tools))
            self._edge = self._build(list(self._tools), await self.embedder.aembed_queries(texts), labels)
        return self._edge

    def _cloud_index(self, cloud: Embedder) -> _Index | None:
        names = self._cloud_names()
        if self._cloud is None and names:
            texts, labels = self._texts(names)
            self._cloud = self._build(names, cloud.embed_queries(texts), labels)
        return self._cloud

    async def _acloud_index(self, cloud: Embedder) -> _Index | None:
        names = self._cloud_names()
        if self._cloud is None and names:
            texts, labels = self._texts(names)
            self._cloud = self._build(names, await cloud.aembed_queries(texts), labels)
        return self._cloud

    @staticmethod
    def _score(index: _Index, vecs: Vectors) -> list[tuple[list[tuple[str, float]], float | None]]:
        per_route, neg = index.routes.scores(vecs)
        return [
            (_ranked(index.routes.names, per_route[i]), None if neg is None else float(neg[i]))
            for i in range(per_route.shape[0])
        ]

    # -- fitting ---------------------------------------------------------------------------

    def _labelled(self, labelled: Sequence[tuple[str, str | None]]) -> tuple[list[str], list[str | None]]:
        if not labelled:
            raise InputError("fit needs labelled requests: a list of (request, tool name or None)")
        texts = [r for r, _ in labelled]
        labels = [t for _, t in labelled]
        unknown = sorted({t for t in labels if t is not None and t not in self._tools})
        if unknown:
            raise InputError(f"labels {unknown} name no registered tool; registered: {list(self._tools)}")
        return texts, labels

    def fit(self, labelled: Sequence[tuple[str, str | None]]) -> ToolFit:
        """Choose the threshold and margin that maximise decision accuracy on ``labelled``.

        A label of None means "no tool": the right answer for it is unsure. With a cloud embedder
        the cloud-side thresholds are fitted too, on the requests the policy lets leave the device.
        """
        texts, labels = self._labelled(labelled)
        rows = self._score(self._edge_index(), self.embedder.embed_queries(texts))
        self.threshold, self.min_margin, acc = _fit_grid(rows, labels)
        top1 = [c[0][0] == label for (c, _), label in zip(rows, labels, strict=True) if label is not None]
        cloud_t: float | None = None
        cloud_m: float | None = None
        if self.cloud is not None:
            index = self._cloud_index(self.cloud)
            allowed = [i for i, t in enumerate(texts) if self._may_leave(t, labels[i])]
            if index is not None and allowed:
                sub = [texts[i] for i in allowed]
                sub_labels = [labels[i] if labels[i] in index.names else None for i in allowed]
                cloud_rows = self._score(index, self.cloud.embed_queries(sub))
                cloud_t, cloud_m, _ = _fit_grid(cloud_rows, sub_labels)
                self.cloud_threshold, self.cloud_min_margin = cloud_t, cloud_m
        self.fitted = ToolFit(
            threshold=self.threshold,
            min_margin=self.min_margin,
            accuracy=acc,
            top1_accuracy=sum(top1) / len(top1) if top1 else 0.0,
            requests=len(texts),
            cloud_threshold=cloud_t,
            cloud_min_margin=cloud_m,
        )
        return self.fitted

    def _may_leave(self, text: str, label: str | None) -> bool:
        if detect_pii(text, self.policy):
            return False
        if label is None:
            return True
        return sensitivity_rank(self._tools[label].sensitivity) <= sensitivity_rank(self.policy.cloud_ceiling)

    # -- routing ---------------------------------------------------------------------------

    def _cloud_state(self) -> CloudState:
        if self.cloud is None:
            return "absent"
        if getattr(self.cloud, "offline", False):
            return "offline"
        state = getattr(self.cloud, "breaker_state", "closed")
        if state == "open":
            return "open"
        return "half_open" if state == "half_open" else "closed"

    def _plan(
        self,
        request: str,
        cands: list[tuple[str, float]],
        negative: float | None,
        sensitivity: Sensitivity,
        stakes: Stakes,
        k: int,
    ) -> RouteDecision:
        # A request that looks like one for a private tool is as private as that tool's domain:
        # the best candidate, and any other that would be offered with it.
        near = cands[:1] + [(n, sc) for n, sc in cands[1:k] if sc >= self.threshold]
        level = max([sensitivity, *(self._tools[n].sensitivity for n, _ in near)], key=sensitivity_rank)
        top, margin = _top_and_margin(cands, negative)
        signals = QuerySignals(
            modalities=frozenset({"text"}),
            pii=detect_pii(request, self.policy),
            sensitivity=level,
            stakes=stakes,
            edge_top1=top,
            edge_margin=margin,
            cloud_state=self._cloud_state(),
        )
        config = self.policy.model_copy(
            update={
                "confidence": ConfidenceConfig(
                    min_top1=max(-1.0, min(1.0, self.threshold)), min_margin=self.min_margin
                )
            }
        )
        decision = decide(signals, config)
        if decision.redact:
            # Tool routing never redacts-and-sends: a PII request is routed at the edge only.
            return RouteDecision(Route.EDGE, (*decision.reasons,), degraded=False)
        return decision

    def _choose(
        self, cands: list[tuple[str, float]], negative: float | None, threshold: float, margin: float, k: int
    ) -> list[tuple[str, float]]:
        top, lead = _top_and_margin(cands, negative)
        if not cands or top < threshold or lead < margin:
            return []
        # Runners-up are offered too only when nearly as good as the best: a near tie, not a long tail.
        return [(n, s) for n, s in cands[:k] if s >= threshold and top - s <= self.spread]

    def _check(self, request: str, k: int, sensitivity: str, stakes: str) -> None:
        if not isinstance(request, str) or not request.strip():
            raise InputError("the request must be a non-empty string")
        if not isinstance(k, int) or k < 1:
            raise InputError(f"k must be a positive integer, got {k!r}")
        if sensitivity not in SENSITIVITY_LEVELS:
            raise InputError(
                f"unknown sensitivity {sensitivity!r}; use one of {', '.join(SENSITIVITY_LEVELS)}"
            )
        if stakes not in ("normal", "high"):
            raise InputError(f"unknown stakes {stakes!r}; use 'normal' or 'high'")

    def _finish(
        self,
        request: str,
        t0: float,
        edge: tuple[list[tuple[str, float]], float | None],
        decision: RouteDecision,
        cloud: tuple[list[tuple[str, float]], float | None] | None,
        cloud_error: str | None,
        k: int,
    ) -> ToolDecision:
        if cloud is not None:
            chosen = self._choose(*cloud, self.cloud_threshold, self.cloud_min_margin, k)
            cands, served = cloud[0], "cloud"
        else:
            chosen = self._choose(*edge, self.threshold, self.min_margin, k)
            cands, served = edge[0], "edge"
        if cloud_error is not None:
            decision = RouteDecision(
                Route.EDGE,
                (*decision.reasons, Reason("cloud.unavailable", f"{cloud_error}; answered at the edge")),
                degraded=True,
            )
        latency = (time.perf_counter() - t0) * 1000
        record: dict[str, Any] = {
            "type": "query",
            "kind": "tool_routing",
            "query_sha256": text_sha256(request),
            "route": decision.route.value,
            "reasons": list(decision.codes),
            "degraded": decision.degraded,
            "served_by": served,
            "tools": [n for n, _ in chosen],
            "unsure": not chosen,
            "top_score": cands[0][1] if cands else None,
            "latency_ms": {"total": round(latency, 3)},
        }
        if self.audit is not None:
            query_fields: Callable[[str], dict[str, Any]] | None = getattr(self.audit, "query_fields", None)
            if query_fields is not None:
                record.update(query_fields(request))
            self.audit.write(record)
        self.last_decision = ToolDecision(
            tools=chosen,
            unsure=not chosen,
            decision=decision,
            latency_ms=latency,
            candidates=cands,
            served_by=served,
            audit=record,
        )
        return self.last_decision

    def route(
        self, request: str, k: int = 3, *, sensitivity: Sensitivity = "internal", stakes: Stakes = "normal"
    ) -> ToolDecision:
        """The tool(s) for ``request``, or an unsure decision with no tools ("ask the user")."""
        self._check(request, k, sensitivity, stakes)
        t0 = time.perf_counter()
        edge = self._score(self._edge_index(), self.embedder.embed_queries([request]))[0]
        decision = self._plan(request, *edge, sensitivity, stakes, k)
        cloud = None
        error = None
        if decision.uses_cloud and self.cloud is not None:
            try:
                index = self._cloud_index(self.cloud)
                if index is not None:
                    cloud = self._score(index, self.cloud.embed_queries([request]))[0]
            except CloudError as exc:
                error = f"the cloud embedder failed ({type(exc).__name__})"
        return self._finish(request, t0, edge, decision, cloud, error, k)

    async def aroute(
        self, request: str, k: int = 3, *, sensitivity: Sensitivity = "internal", stakes: Stakes = "normal"
    ) -> ToolDecision:
        """The async twin of :meth:`route`; embedding runs off the event loop."""
        self._check(request, k, sensitivity, stakes)
        t0 = time.perf_counter()
        edge = self._score(await self._aedge_index(), await self.embedder.aembed_queries([request]))[0]
        decision = self._plan(request, *edge, sensitivity, stakes, k)
        cloud = None
        error = None
        if decision.uses_cloud and self.cloud is not None:
            try:
                index = await self._acloud_index(self.cloud)
                if index is not None:
                    cloud = self._score(index, await self.cloud.aembed_queries([request]))[0]
            except CloudError as exc:
                error = f"the cloud embedder failed ({type(exc).__name__})"
        return self._finish(request, t0, edge, decision, cloud, error, k)

    async def aroute_many(self, requests: Sequence[str], k: int = 3) -> list[ToolDecision]:
        """Route several requests concurrently."""
        return list(await asyncio.gather(*(self.aroute(r, k) for r in requests)))


_T = TypeVar("_T")


def select_tools(router: ToolRouter, tools: Sequence[_T], request: str, *, k: int = 3) -> list[_T]:
    """The subset of ``tools`` (LangChain ``BaseTool``s, or anything with a ``name``) to bind for ``request``.

    Returns ``[]`` when the router is unsure: ask the user instead of guessing a tool.
    ``llm.bind_tools(select_tools(router, tools, request))``.
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
