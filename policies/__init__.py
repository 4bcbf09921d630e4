"""Pure routing logic: signals -> RouteDecision, PII/secret detectors, semantic routes. No I/O."""

from __future__ import annotations

from .config import PolicyConfig, PolicyConfigError, parse_policy_config
from .decision import Reason, Route, RouteDecision
from .pii import detect_pii, redact
from .rules import DocumentPlacement, RoutingRefused, decide, place_document
from .semantic import RouteMatch, SemanticRoutes, fit_thresholds
from .signals import DocumentSignals, PiiFinding, QuerySignals

__all__ = [
    "DocumentPlacement",
    "DocumentSignals",
    "PiiFinding",
    "PolicyConfig",
    "PolicyConfigError",
    "QuerySignals",
    "Reason",
    "Route",
    "RouteDecision",
    "RouteMatch",
    "RoutingRefused",
    "SemanticRoutes",
    "decide",
    "detect_pii",
    "fit_thresholds",
    "parse_policy_config",
    "place_document",
    "redact",
]
