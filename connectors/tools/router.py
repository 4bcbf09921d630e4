"""Agent tool routing: pick the tool(s) for a request on-device, or say "no tool / ask the user".

A :class:`ToolRouter` embeds each registered tool's description and example requests with the edge
embedder (EmbeddingGemma's classification prompt). A linear head on those vectors ranks the tools
for a request and the cosine of the chosen tool's nearest examples is its confidence, "no tool"
examples competing (:mod:`.fitting`); a decision is one query embedding and two small products.
When the confidence is below the fitted threshold (:mod:`.openset`) the edge is unsure, and the
routing policy decides, exactly as for a retrieval, whether the request may be escalated to the
cloud embedder: never when it contains PII, is marked above the cloud ceiling, or looks like a
request for a tool whose domain is above the ceiling (:mod:`.privacy`; a private tool's examples
never reach the cloud either). Requests with several clauses ("book a flight and add it to my
calendar") get one tool per clause (:mod:`.reading`). Every decision is audited.

The core is async (:meth:`ToolRouter.aroute`, :meth:`ToolRouter.aroute_many`, :meth:`ToolRouter.afit`);
the sync methods run it through :func:`edgeroute.framework.aio.run_sync`.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ...framework.aio import run_sync, syncify
from ...framework.digest import sha256_text
from ...framework.embedder import Embedder
from ...framework.errors import CloudError, ConfigurationError, InputError
from ...framework.pii import PiiDetector
from ...framework.store.cache import EmbeddingCache
from ...policies.config import PolicyConfig
from ...policies.decision import Reason, Route, RouteDecision, Stakes
from ...policies.sensitivity import Sensitivity, SensitivityError, above_ceiling, check_sensitivity
from .calibration import Calibrated, calibrate, check_labelled
from .clauses import split_clauses
from .encoding import DEFAULT_PROMPT, TextEncoder
from .fitting import METHODS, NO_TOOL
from .openset import DEFAULT_TARGET, Target, target_from
from .privacy import Findings, PiiCheck, default_detector, may_leave, plan
from .reading import Choice, FittedModel, read
from .records import AuditSink, ToolDecision, ToolFit, ToolSpec, checked_spec
from .schemas import from_mcp, from_openai, from_schema
from .selection import select_tools

logger = logging.getLogger(__name__)

__all__ = ["AuditSink", "ToolDecision", "ToolFit", "ToolRouter", "ToolSpec", "select_tools"]

DEFAULT_DIMS = 768
"""Matryoshka dims of the routing vectors; chosen by measurement (docs/tool-routing.md)."""

DEFAULT_METHOD = "head+nearest"
"""How tools are scored (:data:`~.fitting.METHODS`): the linear head ranks, the nearest examples' cosine
is the confidence; chosen by measurement (docs/tool-routing.md)."""


class ToolRouter:
    """Routes requests to registered tools on-device; escalates ambiguous ones when the policy allows.

    ``embedder`` is the edge embedder (EmbeddingGemma, or ``HashingEmbedder`` in tests); ``cloud``
    an optional second embedder (``CloudEmbedder``) for escalation; ``policy`` the routing policy
    (its privacy rules apply; its confidence thresholds are replaced by the router's); ``audit`` an
    :class:`~edgeroute.framework.router.audit.AuditLog` (or anything with ``write``); ``cache`` an
    :class:`~edgeroute.framework.store.cache.EmbeddingCache` for example and request vectors (default:
    a private in-memory one). ``prompt`` and ``dims`` choose the routing vectors (defaults measured).
    ``method`` how tools are scored (:data:`DEFAULT_METHOD`, ``"nearest"`` or ``"head"``).
    ``threshold`` fixes the confidence below which the router is unsure (default: fitted);
    ``min_margin`` the lead the best tool's confidence needs over the runner-up's; ``spread`` how far
    below the best tool's score a runner-up may be and still be offered with it (up to ``k``);
    ``multi_tool`` whether requests of several clauses get one tool per clause. ``pii_detector``
    replaces the on-device :class:`~edgeroute.framework.pii.PiiDetector` (default: one on ``embedder``
    when it is EmbeddingGemma with token states, else the pattern layer alone). Instead of a number,
    the threshold can be asked for by what it should reach on this registry (at most one):
    ``max_false_reject`` (refuse at most this share of the requests the ranking gets right; the
    default is :data:`~.openset.MAX_FALSE_REJECT`), ``min_in_scope`` (answer at least this share of
    in-scope requests with the right tool) or ``min_out_of_scope`` (refuse at least this share of
    no-tool requests); :meth:`fit` reports the trade-off it expects.
    """

    def __init__(
        self,
        embedder: Embedder,
        *,
        policy: PolicyConfig | None = None,
        cloud: Embedder | None = None,
        audit: AuditSink | None = None,
        cache: EmbeddingCache | None = None,
        prompt: str | None = DEFAULT_PROMPT,
        dims: int | None = DEFAULT_DIMS,
        method: str = DEFAULT_METHOD,
        threshold: float | None = None,
        min_margin: float = 0.0,
        spread: float = 0.05,
        multi_tool: bool = True,
        pii_detector: PiiDetector | None = None,
        max_false_reject: float | None = None,
        min_in_scope: float | None = None,
        min_out_of_scope: float | None = None,
    ) -> None:
        if not isinstance(embedder, Embedder):
            raise ConfigurationError(
                f"embedder must implement edgeroute's Embedder protocol, got {type(embedder).__name__}"
            )
        if cloud is not None and not isinstance(cloud, Embedder):
            raise ConfigurationError(f"cloud must be an edgeroute Embedder, got {type(cloud).__name__}")
        if method not in METHODS:
            raise InputError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
        if threshold is not None and not -1.0 <= threshold <= 1.0:
            raise InputError(f"threshold is a score between -1 and 1, got {threshold}")
        if not 0.0 <= min_margin <= 2.0:
            raise InputError(f"min_margin must be between 0 and 2, got {min_margin}")
        if spread < 0:
            raise InputError(f"spread must be >= 0, got {spread}")
        self.target = target_from(max_false_reject, min_in_scope, min_out_of_scope)
        if self.target is not None and threshold is not None:
            raise InputError("give either a threshold or a target (max_false_reject, min_in_scope, ...), not both")
        full = embedder.space_for(None).dims
        self.embedder = embedder
        self.cloud = cloud
        self.policy = policy or PolicyConfig()
        self.pii = PiiCheck(
            self.policy, pii_detector if pii_detector is not None else default_detector(embedder, self.policy)
        )
        self.audit = audit
        self.cache = cache if cache is not None else EmbeddingCache(None, 32 * 1024**2)
        self.encoder = TextEncoder(
            embedder, prompt=prompt, dims=min(dims, full) if dims else None, cache=self.cache
        )
        self.cloud_encoder = TextEncoder(cloud, prompt=None, cache=self.cache) if cloud is not None else None
        self.method = method
        self.fixed_threshold = threshold
        self.threshold = threshold if threshold is not None else 0.5
        self.cloud_threshold = self.threshold
        self.min_margin = min_margin
        self.cloud_min_margin = min_margin
        self.spread = spread
        self.multi_tool = multi_tool
        self.fitted: ToolFit | None = None
        self._tools: dict[str, ToolSpec] = {}
        self._no_tool: list[str] = []
        self._version = 0
        self._edge: FittedModel | None = None
        self._cloud: FittedModel | None = None
        # One in-flight fit per side and event loop: concurrent first requests share it.
        self._pending: dict[tuple[str, int], asyncio.Task[FittedModel | None]] = {}
        self._last: contextvars.ContextVar[ToolDecision | None] = contextvars.ContextVar(
            f"edgeroute_tool_decision_{id(self)}", default=None
        )

    # -- registration ----------------------------------------------------------------------

    @property
    def tool_names(self) -> tuple[str, ...]:
        return tuple(self._tools)

    @property
    def tools(self) -> tuple[ToolSpec, ...]:
        return tuple(self._tools.values())

    @property
    def last_decision(self) -> ToolDecision | None:
        """The last decision made *in this thread or asyncio task* (None before any).

        Kept for callers of :func:`select_tools`, which returns tools, not the decision. It lives in a
        context variable, so concurrent requests never see each other's decision; prefer the
        :class:`ToolDecision` that :meth:`route` returns.
        """
        return self._last.get()

    def register(
        self, name: str, description: str, examples: Sequence[str], *, sensitivity: Sensitivity = "internal"
    ) -> ToolSpec:
        """Add a tool. ``examples`` are requests users would make for it (at least one; 10 is better)."""
        if isinstance(name, str) and name in self._tools:
            raise InputError(f"tool {name!r} is already registered; tool names must be unique")
        spec = checked_spec(name, description, examples, sensitivity)
        self._tools[name] = spec
        self._changed()
        return spec

    def add_no_tool_examples(self, examples: Sequence[str]) -> None:
        """Requests that should get no tool (small talk, out-of-scope asks); they compete with the tools."""
        if isinstance(examples, str) or any(not isinstance(e, str) or not e.strip() for e in examples):
            raise InputError("no-tool examples must be a list of non-empty strings")
        self._no_tool.extend(examples)
        self._changed()

    def register_schema(
        self,
        schema: Mapping[str, Any],
        examples: Sequence[str] | None = None,
        *,
        sensitivity: Sensitivity = "internal",
    ) -> ToolSpec:
        """Add a tool from an OpenAI function schema or an MCP tool (:mod:`.schemas`): its description and
        its parameters' descriptions are its text; ``examples`` (or the schema's ``"examples"``) its requests."""
        tool = from_schema(schema, examples)
        return self.register(tool.name, tool.description, tool.examples, sensitivity=sensitivity)

    @classmethod
    def from_openai_tools(
        cls,
        tools: Sequence[Mapping[str, Any]],
        *,
        embedder: Embedder,
        examples: Mapping[str, Sequence[str]] | None = None,
        **options: Any,
    ) -> ToolRouter:
        """A router over OpenAI tools (``{"type": "function", "function": {"name", "description",
        "parameters"}}``); ``examples`` maps tool names to example requests; ``options`` go to the constructor."""
        router = cls(embedder, **options)
        for t in from_openai(tools, examples):
            router.register(t.name, t.description, t.examples)
        return router

    @classmethod
    def from_mcp_tools(
        cls,
        listing: Any,
        *,
        embedder: Embedder,
        examples: Mapping[str, Sequence[str]] | None = None,
        **options: Any,
    ) -> ToolRouter:
        """A router over an MCP server's ``tools/list`` result (``{"tools": [{"name", "description",
        "inputSchema"}], "nextCursor"?}``, its JSON-RPC response, or a list of pages)."""
        router = cls(embedder, **options)
        for t in from_mcp(listing, examples):
            router.register(t.name, t.description, t.examples)
        return router

    def _changed(self) -> None:
        self._version += 1
        self._edge = self._cloud = None
        self.fitted = None

    # -- fitting ---------------------------------------------------------------------------

    def _training_set(self, names: Sequence[str]) -> tuple[list[str], list[str], list[bool]]:
        """Texts, their tool (or NO_TOOL), and which are descriptions (never held out in folds)."""
        texts: list[str] = []
        labels: list[str] = []
        is_description: list[bool] = []
        for n in names:
            spec = self._tools[n]
            for i, t in enumerate((spec.description, *spec.examples)):
                texts.append(t)
                labels.append(n)
                is_description.append(i == 0)
        texts.extend(self._no_tool)
        labels.extend([NO_TOOL] * len(self._no_tool))
        is_description.extend([False] * len(self._no_tool))
        return texts, labels, is_description

    async def _without_pii(
        self, texts: list[str], labels: list[str], is_description: list[bool]
    ) -> tuple[list[str], list[str], list[bool]]:
        """The training texts that may reach the cloud embedder: those in which no layer finds PII (the
        others still train the edge side)."""
        found = await self.pii.afull(texts)
        keep = [i for i, f in enumerate(found) if not f]
        if len(keep) < len(texts):
            logger.info(
                "tool router: %d of %d training texts hold PII and stay on the device",
                len(texts) - len(keep),
                len(texts),
            )
        return [texts[i] for i in keep], [labels[i] for i in keep], [is_description[i] for i in keep]

    def _cloud_names(self) -> list[str]:
        # A tool whose domain is above the cloud ceiling never has its examples sent to the cloud.
        ceiling = self.policy.cloud_ceiling
        return [n for n, s in self._tools.items() if not above_ceiling(s.sensitivity, ceiling)]

    async def _afit_side(
        self,
        encoder: TextEncoder,
        names: Sequence[str],
        labelled: tuple[list[str], list[str | None]],
        fixed: float | None,
        target: Target | None = None,
    ) -> tuple[FittedModel, Calibrated, float]:
        """Fit one side's scorer and threshold; returns it, what it reaches, and the embedding seconds."""
        version = self._version
        texts, labels, is_description = self._training_set(names)
        if encoder is self.cloud_encoder:
            texts, labels, is_description = await self._without_pii(texts, labels, is_description)
        req_texts, req_labels = labelled
        # One embedding call for the examples and the labelled requests (misses only; the rest is cached).
        t0 = time.perf_counter()
        vecs = await encoder.aencode([*texts, *req_texts])
        embed_seconds = time.perf_counter() - t0
        ex_vecs, req_vecs = vecs[: len(texts)], vecs[len(texts) :]
        got = calibrate(
            self.method,
            ex_vecs,
            labels,
            is_description,
            names,
            (req_vecs, req_labels) if req_texts else None,
            fixed=fixed,
            target=target if target is not None else self.target,
        )
        return FittedModel(got.scorer, got.threshold, version), got, embed_seconds

    async def afit(
        self,
        labelled: Sequence[tuple[str, str | None]] | None = None,
        *,
        max_false_reject: float | None = None,
        min_in_scope: float | None = None,
        min_out_of_scope: float | None = None,
    ) -> ToolFit:
        """Fit the scorer on the registered examples and choose the "no tool" threshold (:mod:`.calibration`).

        ``labelled``: optional ``(request, tool name or None)`` pairs held out from the examples to choose
        the threshold on; without them, held-out folds of the registered and no-tool examples. The
        threshold meets the target given here, else the constructor's, else refuses at most
        :data:`~.openset.MAX_FALSE_REJECT` of the right answers (a constructor's threshold is kept); the
        :class:`ToolFit` says what it is expected to reach and the trade-off curve. With a cloud
        embedder the cloud side is fitted too, on the tools and requests allowed to leave the device.
        """
        self._require_tools()
        target = target_from(max_false_reject, min_in_scope, min_out_of_scope)
        if target is not None and self.fixed_threshold is not None:
            raise InputError("this router has a fixed threshold; a target cannot move it")
        if target is not None:
            self.target = target
        t0 = time.perf_counter()
        texts, labels = check_labelled(labelled, self._tools)
        model, got, embed_s = await self._afit_side(
            self.encoder, list(self._tools), (texts, labels), self.fixed_threshold
        )
        self._edge = model
        self.threshold = model.threshold
        cloud_t: float | None = None
        if self.cloud_encoder is not None and self._cloud_names():
            # Only labelled requests without PII (every layer, entities too) and not for a private tool.
            found = await self.pii.afull(texts)
            allowed = [i for i, f in enumerate(found) if may_leave(labels[i], f, self._tools, self.policy)]
            cloud, _, _ = await self._afit_side(
                self.cloud_encoder,
                self._cloud_names(),
                ([texts[i] for i in allowed], [labels[i] for i in allowed]),
                self.fixed_threshold,
            )
            self._cloud = cloud
            self.cloud_threshold = cloud_t = cloud.threshold
        seconds = time.perf_counter() - t0
        self.fitted = ToolFit(
            threshold=model.threshold,
            min_margin=self.min_margin,
            accuracy=got.accuracy,
            top1_accuracy=got.top1,
            requests=len(texts),
            cloud_threshold=cloud_t,
            cloud_min_margin=self.min_margin if cloud_t is not None else None,
            temperature=getattr(model.scorer, "temperature", 1.0),
            examples=sum(len(s.examples) + 1 for s in self._tools.values()) + len(self._no_tool),
            seconds=seconds,
            method=self.method,
            target="fixed threshold" if self.fixed_threshold is not None else (self.target or DEFAULT_TARGET).describe(),
            calibrated_on=got.calibrated_on,
            expected_in_scope=got.expected.in_scope,
            expected_false_reject=got.expected.false_reject,
            expected_out_of_scope_recall=got.expected.out_of_scope_recall,
            trade_off=got.curve,
            embed_seconds=embed_s,
        )
        return self.fitted

    def fit(
        self,
        labelled: Sequence[tuple[str, str | None]] | None = None,
        *,
        max_false_reject: float | None = None,
        min_in_scope: float | None = None,
        min_out_of_scope: float | None = None,
    ) -> ToolFit:
        """:meth:`afit` for sync callers."""
        return run_sync(
            self.afit(
                labelled,
                max_false_reject=max_false_reject,
                min_in_scope=min_in_scope,
                min_out_of_scope=min_out_of_scope,
            )
        )

    def _require_tools(self) -> None:
        if not self._tools:
            raise ConfigurationError("no tools registered; call router.register(name, description, examples)")

    async def _amodel(self, side: str) -> FittedModel | None:
        """The fitted model of ``side``, fitting it (without labelled requests) on first use, once."""
        current = self._edge if side == "edge" else self._cloud
        if current is not None and current.version == self._version:
            return current
        loop = asyncio.get_running_loop()
        key = (side, id(loop))
        task = self._pending.get(key)
        if task is None or task.done():
            task = loop.create_task(self._afit_lazily(side))
            self._pending[key] = task
        try:
            return await asyncio.shield(task)
        finally:
            if task.done() and self._pending.get(key) is task:
                del self._pending[key]

    async def _afit_lazily(self, side: str) -> FittedModel | None:
        self._require_tools()
        if side == "edge":
            model, _, _ = await self._afit_side(
                self.encoder, list(self._tools), ([], []), self.fixed_threshold
            )
            self._edge = model
            if self.fixed_threshold is None:
                self.threshold = model.threshold
            return model
        names = self._cloud_names()
        if self.cloud_encoder is None or not names:
            return None
        model, _, _ = await self._afit_side(self.cloud_encoder, names, ([], []), self.fixed_threshold)
        self._cloud = model
        self.cloud_threshold = model.threshold
        return model

    # -- routing ---------------------------------------------------------------------------

    def _check(self, requests: Sequence[str], k: int, sensitivity: str, stakes: str) -> None:
        for request in requests:
            if not isinstance(request, str) or not request.strip():
                raise InputError("the request must be a non-empty string")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InputError(f"k must be a positive integer, got {k!r}")
        try:
            check_sensitivity(sensitivity)
        except SensitivityError as exc:
            raise InputError(str(exc)) from exc
        if stakes not in ("normal", "high"):
            raise InputError(f"unknown stakes {stakes!r}; use 'normal' or 'high'")

    async def _aread_all(
        self, model: FittedModel, encoder: TextEncoder, requests: Sequence[str], k: int
    ) -> list[Choice]:
        """Each request's choice; every text (requests and their clauses) embedded in one call."""
        parts = [split_clauses(r) if self.multi_tool else [r] for r in requests]
        texts = list(dict.fromkeys([*requests, *(c for p in parts if len(p) > 1 for c in p)]))
        vecs = await encoder.aencode(texts)
        at = {t: i for i, t in enumerate(texts)}
        return [
            read(
                model,
                vecs[at[r]],
                vecs[[at[c] for c in p]] if len(p) > 1 else None,
                k,
                min_margin=self.min_margin,
                spread=self.spread,
            )
            for r, p in zip(requests, parts, strict=True)
        ]

    def _plan(self, edge: Choice, pii: Findings, sensitivity: Sensitivity, stakes: Stakes) -> RouteDecision:
        return plan(
            edge,
            pii,
            tools=self._tools,
            policy=self.policy,
            cloud=self.cloud,
            sensitivity=sensitivity,
            stakes=stakes,
            threshold=self.threshold,
            min_margin=self.min_margin,
        )

    async def _aplans(
        self, requests: Sequence[str], edge: list[Choice], sensitivity: Sensitivity, stakes: Stakes
    ) -> list[RouteDecision]:
        """Each request's plan: on the pattern layer's findings, then, for the requests it would send
        to the cloud, on every layer's (one batched detector pass), so PII the patterns miss stays."""
        pii = [self.pii.patterns(r) for r in requests]
        plans = [self._plan(e, f, sensitivity, stakes) for e, f in zip(edge, pii, strict=True)]
        leaving = [i for i, d in enumerate(plans) if d.uses_cloud]
        if leaving and self.pii.detector is not None:
            found = await self.pii.afull([requests[i] for i in leaving])
            for i, f in zip(leaving, found, strict=True):
                if f:
                    plans[i] = self._plan(edge[i], f, sensitivity, stakes)
        return plans

    async def _aroute(
        self, requests: Sequence[str], k: int, sensitivity: Sensitivity, stakes: Stakes
    ) -> list[ToolDecision]:
        self._check(requests, k, sensitivity, stakes)
        self._require_tools()
        t0 = time.perf_counter()
        model = await self._amodel("edge")
        assert model is not None
        edge = await self._aread_all(model, self.encoder, requests, k)
        plans = await self._aplans(requests, edge, sensitivity, stakes)
        cloud: list[Choice | None] = [None] * len(requests)
        errors: list[str | None] = [None] * len(requests)
        wanted = [i for i, d in enumerate(plans) if d.uses_cloud and self.cloud_encoder is not None]
        if wanted and self.cloud_encoder is not None:
            try:
                cloud_model = await self._amodel("cloud")
                if cloud_model is not None:
                    read = await self._aread_all(
                        cloud_model, self.cloud_encoder, [requests[i] for i in wanted], k
                    )
                    for i, c in zip(wanted, read, strict=True):
                        cloud[i] = c
            except CloudError as exc:
                for i in wanted:
                    errors[i] = f"the cloud embedder failed ({type(exc).__name__})"
        latency = (time.perf_counter() - t0) * 1000
        return [
            self._finish(requests[i], latency, edge[i], plans[i], cloud[i], errors[i])
            for i in range(len(requests))
        ]

    def _finish(
        self,
        request: str,
        latency: float,
        edge: Choice,
        decision: RouteDecision,
        cloud: Choice | None,
        cloud_error: str | None,
    ) -> ToolDecision:
        chosen, served = (cloud, "cloud") if cloud is not None else (edge, "edge")
        if cloud_error is not None:
            decision = RouteDecision(
                Route.EDGE,
                (*decision.reasons, Reason("cloud.unavailable", f"{cloud_error}; answered at the edge")),
                degraded=True,
            )
        record: dict[str, Any] = {
            "type": "query",
            "kind": "tool_routing",
            "query_sha256": sha256_text(request),
            "route": decision.route.value,
            "reasons": list(decision.codes),
            "degraded": decision.degraded,
            "served_by": served,
            "tools": [n for n, _ in chosen.tools],
            "unsure": not chosen.tools,
            "top_score": chosen.candidates[0][1] if chosen.candidates else None,
            "latency_ms": {"total": round(latency, 3)},
        }
        if self.audit is not None:
            query_fields: Callable[[str], dict[str, Any]] | None = getattr(self.audit, "query_fields", None)
            if query_fields is not None:
                record.update(query_fields(request))
            self.audit.write(record)
        return ToolDecision(
            tools=chosen.tools,
            unsure=not chosen.tools,
            decision=decision,
            latency_ms=latency,
            candidates=chosen.candidates,
            served_by=served,
            audit=record,
        )

    async def aroute(
        self, request: str, k: int = 3, *, sensitivity: Sensitivity = "internal", stakes: Stakes = "normal"
    ) -> ToolDecision:
        """The tool(s) for ``request``, or an unsure decision with no tools ("ask the user")."""
        (decision,) = await self._aroute([request], k, sensitivity, stakes)
        self._last.set(decision)
        return decision

    async def aroute_many(
        self,
        requests: Sequence[str],
        k: int = 3,
        *,
        sensitivity: Sensitivity = "internal",
        stakes: Stakes = "normal",
    ) -> list[ToolDecision]:
        """Route several requests: one embedding call for all of them (and one cloud call for the escalated)."""
        if isinstance(requests, str):
            raise InputError("requests must be a list of strings, not one string; use aroute for one")
        return await self._aroute(list(requests), k, sensitivity, stakes) if requests else []

    def route(
        self, request: str, k: int = 3, *, sensitivity: Sensitivity = "internal", stakes: Stakes = "normal"
    ) -> ToolDecision:
        """:meth:`aroute` for sync callers (also sets :attr:`last_decision` in the calling thread)."""
        decision = run_sync(self.aroute(request, k, sensitivity=sensitivity, stakes=stakes))
        self._last.set(decision)
        return decision

    route_many = syncify(aroute_many)

