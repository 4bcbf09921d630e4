"""The routing rules: precedence table, refusals, document placement, and the privacy property."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest

from edgeroute.policies.config import PolicyConfig
from edgeroute.policies.decision import Route
from edgeroute.policies.rules import (
    REASON_CODES,
    REFUSAL_CODES,
    RoutingRefused,
    decide,
    needs_confidence,
    place_document,
)
from edgeroute.policies.signals import DocumentSignals, PiiFinding, QuerySignals, SignalError

EMAIL = (PiiFinding("email", 0, 10, "email"),)
TEXT = frozenset({"text"})
TEXT_IMAGE = frozenset({"text", "image"})
IMAGE = frozenset({"image"})
DEFAULT = PolicyConfig()
REDACT = PolicyConfig(redact_then_send=True)
TEXT_ONLY = PolicyConfig(on_media_without_cloud="text_only")


def q(**kw: Any) -> QuerySignals:
    kw.setdefault("modalities", TEXT)
    return QuerySignals(**kw)


# (id, signals, config, route, degraded, redact, codes that must appear)
TABLE: list[tuple[str, QuerySignals, PolicyConfig, Route, bool, bool, set[str]]] = [
    ("plain text, before retrieval", q(), DEFAULT, Route.EDGE, False, False, {"confidence.pending"}),
    (
        "confident edge",
        q(edge_top1=0.8, edge_margin=0.1),
        DEFAULT,
        Route.EDGE,
        False,
        False,
        {"confidence.ok"},
    ),
    ("one hit only: margin unknown", q(edge_top1=0.8), DEFAULT, Route.EDGE, False, False, {"confidence.ok"}),
    (
        "low top1 escalates",
        q(edge_top1=0.2, edge_margin=0.3),
        DEFAULT,
        Route.HYBRID,
        False,
        False,
        {"confidence.low_top1"},
    ),
    (
        "low margin escalates",
        q(edge_top1=0.8, edge_margin=0.001),
        DEFAULT,
        Route.HYBRID,
        False,
        False,
        {"confidence.low_margin"},
    ),
    ("high stakes -> hybrid at once", q(stakes="high"), DEFAULT, Route.HYBRID, False, False, {"stakes.high"}),
    (
        "semantic high stakes",
        q(semantic_high_stakes=True),
        DEFAULT,
        Route.HYBRID,
        False,
        False,
        {"stakes.semantic"},
    ),
    (
        "semantic disabled by config",
        q(semantic_high_stakes=True),
        PolicyConfig.model_validate({"semantic": {"enabled": False}}),
        Route.EDGE,
        False,
        False,
        {"confidence.pending"},
    ),
    (
        "public is fine",
        q(sensitivity="public", stakes="high"),
        DEFAULT,
        Route.HYBRID,
        False,
        False,
        {"stakes.high"},
    ),
    (
        "confidential stays home",
        q(sensitivity="confidential", stakes="high"),
        DEFAULT,
        Route.EDGE,
        False,
        False,
        {"privacy.sensitivity"},
    ),
    (
        "restricted stays home even with redact",
        q(sensitivity="restricted", pii=EMAIL, stakes="high"),
        REDACT,
        Route.EDGE,
        False,
        False,
        {"privacy.sensitivity"},
    ),
    (
        "raised ceiling lets confidential out",
        q(sensitivity="confidential", stakes="high"),
        PolicyConfig(cloud_ceiling="confidential"),
        Route.HYBRID,
        False,
        False,
        {"stakes.high"},
    ),
    (
        "lowered ceiling keeps internal home",
        q(edge_top1=0.1),
        PolicyConfig(cloud_ceiling="public"),
        Route.EDGE,
        False,
        False,
        {"privacy.sensitivity"},
    ),
    ("pii stays home", q(pii=EMAIL, stakes="high"), DEFAULT, Route.EDGE, False, False, {"privacy.pii"}),
    (
        "pii with low confidence stays home",
        q(pii=EMAIL, edge_top1=0.0),
        DEFAULT,
        Route.EDGE,
        False,
        False,
        {"privacy.pii"},
    ),
    (
        "redact opt-in sends redacted",
        q(pii=EMAIL, stakes="high"),
        REDACT,
        Route.HYBRID,
        False,
        True,
        {"privacy.redact_then_send", "stakes.high"},
    ),
    (
        "redact opt-in, edge route: nothing to redact",
        q(pii=EMAIL, edge_top1=0.9),
        REDACT,
        Route.EDGE,
        False,
        False,
        {"confidence.ok"},
    ),
    (
        "circuit open, wanted hybrid: degraded",
        q(stakes="high", cloud_state="open"),
        DEFAULT,
        Route.EDGE,
        True,
        False,
        {"stakes.high", "cloud.unavailable"},
    ),
    (
        "offline, confident edge: not degraded",
        q(edge_top1=0.9, cloud_state="offline"),
        DEFAULT,
        Route.EDGE,
        False,
        False,
        {"confidence.ok"},
    ),
    (
        "offline, low confidence: degraded",
        q(edge_top1=0.1, cloud_state="offline"),
        DEFAULT,
        Route.EDGE,
        True,
        False,
        {"confidence.low_top1", "cloud.unavailable"},
    ),
    (
        "no cloud configured",
        q(stakes="high", cloud_state="absent"),
        DEFAULT,
        Route.EDGE,
        True,
        False,
        {"cloud.unavailable"},
    ),
    (
        "half-open lets a probe through",
        q(stakes="high", cloud_state="half_open"),
        DEFAULT,
        Route.HYBRID,
        False,
        False,
        {"stakes.high"},
    ),
    ("budget spent", q(stakes="high", budget_left=0.0), DEFAULT, Route.EDGE, True, False, {"budget.spent"}),
    (
        "budget under reserve",
        q(stakes="high", budget_left=5.0),
        PolicyConfig.model_validate({"budget": {"reserve": 10}}),
        Route.EDGE,
        True,
        False,
        {"budget.spent"},
    ),
    ("budget left", q(stakes="high", budget_left=0.5), DEFAULT, Route.HYBRID, False, False, {"stakes.high"}),
    (
        "deadline below floor",
        q(stakes="high", deadline_ms=20),
        PolicyConfig.model_validate({"hedging": {"skip_cloud_below_ms": 50}}),
        Route.EDGE,
        True,
        False,
        {"deadline.too_short"},
    ),
    (
        "private + offline: privacy, not degraded",
        q(sensitivity="restricted", stakes="high", cloud_state="offline"),
        DEFAULT,
        Route.EDGE,
        False,
        False,
        {"privacy.sensitivity"},
    ),
    (
        "image query -> cloud",
        q(modalities=TEXT_IMAGE),
        DEFAULT,
        Route.CLOUD,
        False,
        False,
        {"modality.cloud_required"},
    ),
    (
        "image-only query -> cloud",
        q(modalities=IMAGE),
        DEFAULT,
        Route.CLOUD,
        False,
        False,
        {"modality.cloud_required"},
    ),
    (
        "image + high stakes -> hybrid",
        q(modalities=TEXT_IMAGE, stakes="high"),
        DEFAULT,
        Route.HYBRID,
        False,
        False,
        {"modality.cloud_required", "stakes.high"},
    ),
    (
        "image query, multimodal edge model",
        q(modalities=TEXT_IMAGE, edge_modalities=TEXT_IMAGE),
        DEFAULT,
        Route.EDGE,
        False,
        False,
        {"confidence.pending"},
    ),
    (
        "image + pii + redact opt-in",
        q(modalities=TEXT_IMAGE, pii=EMAIL),
        REDACT,
        Route.CLOUD,
        False,
        True,
        {"privacy.redact_then_send", "modality.cloud_required"},
    ),
    (
        "image, cloud offline, text_only",
        q(modalities=TEXT_IMAGE, cloud_state="offline"),
        TEXT_ONLY,
        Route.EDGE,
        True,
        False,
        {"cloud.unavailable", "modality.text_only"},
    ),
    (
        "image, private, text_only",
        q(modalities=TEXT_IMAGE, sensitivity="confidential"),
        TEXT_ONLY,
        Route.EDGE,
        True,
        False,
        {"privacy.sensitivity", "modality.text_only"},
    ),
    (
        "image, pii, text_only",
        q(modalities=TEXT_IMAGE, pii=EMAIL),
        TEXT_ONLY,
        Route.EDGE,
        True,
        False,
        {"privacy.pii", "modality.text_only"},
    ),
]


@pytest.mark.parametrize(("signals", "config", "route", "degraded", "redact", "codes"),
                         [t[1:] for t in TABLE], ids=[t[0] for t in TABLE])  # fmt: skip
def test_decision_table(
    signals: QuerySignals, config: PolicyConfig, route: Route, degraded: bool, redact: bool, codes: set[str]
) -> None:
    d = decide(signals, config)
    assert d.route is route
    assert d.degraded is degraded
    assert d.redact is redact
    assert codes <= set(d.codes), d.codes
    for reason in d.reasons:
        assert reason.code in REASON_CODES
        assert len(reason.message) > 20


REFUSALS = [
    (
        "image, private",
        q(modalities=TEXT_IMAGE, sensitivity="confidential"),
        DEFAULT,
        "modality.cloud_not_allowed",
    ),
    ("image, pii, no opt-in", q(modalities=TEXT_IMAGE, pii=EMAIL), DEFAULT, "modality.cloud_not_allowed"),
    (
        "image, circuit open",
        q(modalities=TEXT_IMAGE, cloud_state="open"),
        DEFAULT,
        "modality.cloud_unavailable",
    ),
    ("image, budget spent", q(modalities=IMAGE, budget_left=0), DEFAULT, "modality.cloud_unavailable"),
    (
        "image only, text_only configured",
        q(modalities=IMAGE, cloud_state="offline"),
        TEXT_ONLY,
        "modality.no_edge_parts",
    ),
]


@pytest.mark.parametrize(
    ("signals", "config", "code"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_refusals_name_the_cause_and_the_fix(signals: QuerySignals, config: PolicyConfig, code: str) -> None:
    with pytest.raises(RoutingRefused) as info:
        decide(signals, config)
    assert info.value.code == code
    assert info.value.code in REFUSAL_CODES
    assert "image" in info.value.message


def test_two_call_contract() -> None:
    first = decide(q(), DEFAULT)
    assert needs_confidence(first)
    second = decide(q(edge_top1=0.1, edge_margin=0.0), DEFAULT)
    assert not needs_confidence(second) and second.route is Route.HYBRID
    # Outcomes other than "pending" are final: confidence cannot change them.
    for sig in (q(stakes="high"), q(sensitivity="restricted"), q(modalities=TEXT_IMAGE)):
        before = decide(sig, DEFAULT)
        assert not needs_confidence(before)
        after = decide(dataclasses.replace(sig, edge_top1=0.99, edge_margin=0.5), DEFAULT)
        assert after.route is before.route


SENS = ("public", "internal", "confidential", "restricted")
STATES = ("closed", "half_open", "open", "offline", "absent")
MODS = (TEXT, TEXT_IMAGE, IMAGE, frozenset({"text", "pdf", "audio"}))
CONFIGS = [
    PolicyConfig(cloud_ceiling=c, redact_then_send=r, on_media_without_cloud=m)
    for c, r, m in itertools.product(SENS, (False, True), ("error", "text_only"))
]


def test_no_decision_ever_routes_private_or_pii_to_the_cloud() -> None:
    checked = 0
    for cfg, sens, pii, mods, state, stakes, sem, top1, budget in itertools.product(
        CONFIGS,
        SENS,
        ((), EMAIL),
        MODS,
        STATES,
        ("normal", "high"),
        (False, True),
        (None, 0.0, 0.9),
        (None, 0.0, 1.0),
    ):
        sig = QuerySignals(
            modalities=mods, pii=pii, sensitivity=sens, stakes=stakes, edge_top1=top1, edge_margin=None,
            cloud_state=state, budget_left=budget, semantic_high_stakes=sem,
        )  # fmt: skip
        try:
            d = decide(sig, cfg)
        except RoutingRefused:
            checked += 1
            continue
        checked += 1
        over_ceiling = SENS.index(sens) > SENS.index(cfg.cloud_ceiling)
        if over_ceiling or (pii and not cfg.redact_then_send):
            assert not d.uses_cloud, (sig, cfg, d)
        if d.uses_cloud and pii:
            assert d.redact and "privacy.redact_then_send" in d.codes
        if d.redact:
            assert cfg.redact_then_send and pii and d.uses_cloud
        if d.uses_cloud:
            assert state in ("closed", "half_open") and (budget is None or budget > 0)
        if d.degraded:
            assert d.route is Route.EDGE
    assert checked == len(CONFIGS) * 4 * 2 * 4 * 5 * 2 * 2 * 3 * 3


def test_every_code_is_documented() -> None:
    import pathlib

    doc = (pathlib.Path(__file__).parents[2] / "docs" / "policies.md").read_text()
    for code in (*REASON_CODES, *REFUSAL_CODES):
        assert f"`{code}`" in doc, code


PLACEMENTS = [
    ("internal text", DocumentSignals("internal", (), TEXT), DEFAULT, True, True),
    ("public text", DocumentSignals("public", (), TEXT), DEFAULT, True, True),
    ("confidential text", DocumentSignals("confidential", (), TEXT), DEFAULT, True, False),
    ("pii text", DocumentSignals("public", EMAIL, TEXT), DEFAULT, True, False),
    (
        "pii text, redact opt-in does not apply to documents",
        DocumentSignals("public", EMAIL, TEXT),
        REDACT,
        True,
        False,
    ),
    ("image + text", DocumentSignals("internal", (), TEXT_IMAGE), DEFAULT, True, True),
    ("image only", DocumentSignals("internal", (), IMAGE), DEFAULT, False, True),
    (
        "private image + text: text at the edge",
        DocumentSignals("restricted", (), TEXT_IMAGE),
        DEFAULT,
        True,
        False,
    ),
    (
        "image, multimodal edge",
        DocumentSignals("internal", (), IMAGE, edge_modalities=TEXT_IMAGE),
        DEFAULT,
        True,
        True,
    ),
]


@pytest.mark.parametrize(("signals", "config", "edge", "cloud"), [p[1:] for p in PLACEMENTS],
                         ids=[p[0] for p in PLACEMENTS])  # fmt: skip
def test_place_document(signals: DocumentSignals, config: PolicyConfig, edge: bool, cloud: bool) -> None:
    placement = place_document(signals, config)
    assert (placement.edge, placement.cloud) == (edge, cloud)
    assert placement.reasons and all(r.code in REASON_CODES for r in placement.reasons)


def test_private_media_only_document_is_refused() -> None:
    with pytest.raises(RoutingRefused) as info:
        place_document(DocumentSignals("restricted", (), IMAGE), DEFAULT)
    assert info.value.code == "placement.nowhere"


def test_no_placement_ever_puts_private_or_pii_in_the_cloud() -> None:
    for cfg, sens, pii, mods in itertools.product(CONFIGS, SENS, ((), EMAIL), MODS):
        try:
            p = place_document(DocumentSignals(sens, pii, mods), cfg)
        except RoutingRefused:
            continue
        if pii or SENS.index(sens) > SENS.index(cfg.cloud_ceiling):
            assert not p.cloud
        assert p.edge == ("text" in mods)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"modalities": frozenset()}, "empty"),
        ({"modalities": frozenset({"hologram"})}, "unknown modality"),
        ({"modalities": TEXT, "sensitivity": "secret"}, "unknown sensitivity"),
        ({"modalities": TEXT, "stakes": "urgent"}, "unknown stakes"),
        ({"modalities": TEXT, "cloud_state": "sleepy"}, "unknown cloud_state"),
        ({"modalities": TEXT, "deadline_ms": 0}, "deadline_ms"),
        ({"modalities": TEXT, "edge_margin": -0.1}, "edge_margin"),
        ({"modalities": {"text"}}, "frozenset"),
    ],
)
def test_bad_signals_are_rejected_clearly(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(SignalError, match=needle):
        QuerySignals(**kwargs)


def test_bad_finding_span() -> None:
    with pytest.raises(SignalError, match="start < end"):
        PiiFinding("email", 5, 5, "email")
