"""Privacy is hard: private and PII content never reaches the cloud client, proven by the emulator's recording."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from router_helpers import CONFIDENTIAL, JPEG, PUBLIC, WITH_PII, EngineFactory, leaked

from edgeroute.framework.documents import Document
from edgeroute.framework.errors import PrivacyViolationError
from edgeroute.framework.parts import Part
from edgeroute.framework.router.guard import PrivacyGuard
from edgeroute.framework.testing.emulator import GeminiEmulator
from edgeroute.policies.config import PolicyConfig

SECRET_IMAGE = Document(
    "conf-img", "board slide", parts=(Part.image(JPEG, "image/jpeg"),), sensitivity="restricted"
)


def test_guard_refuses_registered_text_behind_a_task_prefix_substrings_bytes_and_pii() -> None:
    guard = PrivacyGuard()
    guard.add_text(CONFIDENTIAL.text)
    guard.add_part(Part.image(JPEG, "image/jpeg"))
    for content in (
        [Part.text("title: none | text: " + CONFIDENTIAL.text)],
        [Part.text("task: search result | query: see " + CONFIDENTIAL.text + " now")],
        [Part.text("a caption"), Part.image(JPEG, "image/jpeg")],
        [Part.text("mail me at jane.roe@example.org")],
    ):
        with pytest.raises(PrivacyViolationError, match="Nothing was sent"):
            guard([content])
    guard([[Part.text("task: search result | query: running shoes")]])  # public text passes
    assert guard.refusals == 4


def test_short_private_texts_match_by_hash_only() -> None:
    guard = PrivacyGuard()
    guard.add_text("shoes")
    with pytest.raises(PrivacyViolationError):
        guard([[Part.text("task: search result | query: shoes")]])
    guard([[Part.text("task: search result | query: red shoes")]])


def test_nothing_private_reaches_the_emulator_across_ingest_queries_and_sync(
    make_engine: EngineFactory, emu: GeminiEmulator, tmp_path: Path
) -> None:
    engine = make_engine()
    engine.ingest([*PUBLIC, CONFIDENTIAL, WITH_PII, SECRET_IMAGE])
    private_queries = [
        ("our cost for running shoes per pair", "confidential"),
        ("running shoes margin restricted figures", "restricted"),
        ("shoes returned by jane.roe@example.org", "public"),
        ("card 4111 1111 1111 1111 refund for running shoes", "internal"),
    ]
    for text, level in private_queries:
        for stakes in ("normal", "high"):
            result = engine.retrieve(text, k=5, sensitivity=level, stakes=stakes, deadline_ms=2000)
            assert result.decision.route.value == "edge"
            assert {"privacy.sensitivity", "privacy.pii"} & set(result.decision.codes)
    engine.retrieve("running shoes", k=5, stakes="high")  # a public query does reach the cloud
    engine.sync()
    private = [CONFIDENTIAL.text, WITH_PII.text, "jane.roe@example.org", "4111 1111 1111 1111"]
    private += [t for t, _ in private_queries]
    assert emu.requests, "the public traffic should have reached the emulator"
    assert leaked(emu, private) == []
    recorded = [json.loads(line) for line in Path(emu.record_path or "").read_text().splitlines()]
    image_hashes = {p.get("sha256") for r in recorded for c in r["parts"] for p in c}
    import hashlib

    assert hashlib.sha256(JPEG).hexdigest() not in image_hashes
    assert engine.guard.refusals == 0  # the policy kept everything back; the guard never had to


def test_redact_then_send_happens_only_when_opted_in(make_engine: EngineFactory, emu: GeminiEmulator) -> None:
    query = "running shoes refund for jane.roe@example.org"
    plain = make_engine()
    plain.ingest(PUBLIC)
    result = plain.retrieve(query, stakes="high")
    assert result.decision.route.value == "edge" and "privacy.pii" in result.decision.codes
    assert not any(
        "running shoes refund" in p.get("text", "") for r in emu.requests for c in r["parts"] for p in c
    )

    opted = make_engine(policy=PolicyConfig(redact_then_send=True), collection="docs2")
    opted.ingest(PUBLIC)
    result = opted.retrieve(query, stakes="high")
    assert result.decision.route.value == "hybrid" and result.decision.redact
    assert "privacy.redact_then_send" in result.decision.codes and result.audit["redacted"]
    sent = [p.get("text", "") for r in emu.requests for c in r["parts"] for p in c]
    assert any("running shoes refund for [EMAIL]" in t for t in sent)
    assert leaked(emu, ["jane.roe@example.org"]) == []


def test_a_queued_document_that_the_guard_knows_as_private_is_dropped_not_sent(
    make_engine: EngineFactory, emu: GeminiEmulator
) -> None:
    from edgeroute.framework.cloud.embedder import CloudEmbedder

    engine = make_engine()
    cloud = engine.cloud
    assert isinstance(cloud, CloudEmbedder)
    cloud.offline = True
    public_copy = Document("copy", "Forwarded: " + CONFIDENTIAL.text, sensitivity="public")
    engine.ingest([CONFIDENTIAL, public_copy])  # the copy is queued; the original taught the guard
    cloud.offline = False
    report = engine.sync()
    assert report.refused == 1 and report.written == 0
    assert leaked(emu, [CONFIDENTIAL.text]) == []
