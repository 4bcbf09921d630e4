"""gitleaks' provider rules as ported: they find their tokens, the keyword gate loses nothing, allowlisted
public values and placeholders are never flagged."""

from __future__ import annotations

import json
from importlib import resources

from edgeroute.framework.pii.patterns import pattern_spans
from edgeroute.framework.pii.ported_rules import find_ported, known_public_values, ported_rules
from edgeroute.policies.config import PiiConfig


def _dev_texts() -> list[str]:
    path = resources.files("edgeroute.framework.eval").joinpath("data", "secrets_dev.jsonl")
    return [
        json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def test_rules_load_and_each_has_keywords() -> None:
    rules, global_allow, _ = ported_rules()
    assert len(rules) > 200 and global_allow
    assert all(r.keywords for r in rules)
    assert "generic-api-key" not in {r.id for r in rules}  # edgeroute's own generic rule has context


def test_a_provider_token_is_found_by_its_rule() -> None:
    text = 'adafruit_io_key = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"'
    found = list(find_ported(text))
    assert ("adafruit_api_key", text.index("a1b2"), text.index("a1b2") + 32) in found


def test_the_keyword_gate_drops_only_rules_whose_keyword_is_absent() -> None:
    # As in gitleaks, a rule applies only where one of its keywords occurs (sourcegraph's rule matches any
    # 40-hex string by its regex alone); the gate must drop nothing else.
    keywords = {r.kind: r.keywords for r in ported_rules()[0]}
    for text in _dev_texts():
        gated = set(find_ported(text))
        for kind, _start, _end in set(find_ported(text, gate=False)) - gated:
            assert not any(k in text.lower() for k in keywords[kind]), (kind, text)


def test_allowlisted_public_values_and_placeholders_are_not_flagged() -> None:
    public = sorted(known_public_values())
    assert "AIzaSyDSb51JiIcB6OJpwwMicseKRhhrOq1cS7g" in public
    for value in public[:5]:
        assert pattern_spans(f"key: {value}", PiiConfig(), ("US",)) == [], value
    assert list(find_ported("hf_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")) == []
