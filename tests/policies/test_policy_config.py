"""Policy configuration: defaults, TOML/YAML parsing, clear errors, and the policy file loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeroute.framework.errors import ConfigurationError
from edgeroute.framework.router.policy_files import default_policy_path, load_policy_file
from edgeroute.policies.config import PolicyConfig, PolicyConfigError, parse_policy_config

TOML = """
cloud_ceiling = "confidential"
redact_then_send = true
on_media_without_cloud = "text_only"
[confidence]
min_top1 = 0.5
min_margin = 0.05
[budget]
reserve = 2.5
[hedging]
enabled = false
skip_cloud_below_ms = 80
[pii]
detectors = ["email", "api_key", "user_terms"]
terms = ["Project Falcon"]
entropy_threshold = 4.0
[[pii.patterns]]
name = "employee_id"
regex = '\\bEMP-\\d{6}\\b'
[semantic]
min_margin = 0.02
[semantic.thresholds]
medical = 0.31
"""

YAML = """
cloud_ceiling: confidential
redact_then_send: true
on_media_without_cloud: text_only
confidence: {min_top1: 0.5, min_margin: 0.05}
budget: {reserve: 2.5}
hedging: {enabled: false, skip_cloud_below_ms: 80}
pii:
  detectors: [email, api_key, user_terms]
  terms: [Project Falcon]
  entropy_threshold: 4.0
  patterns:
    - name: employee_id
      regex: '\\bEMP-\\d{6}\\b'
semantic:
  min_margin: 0.02
  thresholds: {medical: 0.31}
"""


def test_defaults_are_the_safe_choice() -> None:
    c = PolicyConfig()
    assert c.cloud_ceiling == "internal"
    assert c.redact_then_send is False
    assert c.on_media_without_cloud == "error"
    assert c.pii.enabled and len(c.pii.detectors) == 11


def test_shipped_default_file_equals_the_defaults() -> None:
    assert load_policy_file(default_policy_path()) == PolicyConfig()


def test_toml_and_yaml_parse_to_the_same_config() -> None:
    a = parse_policy_config(TOML, "toml")
    b = parse_policy_config(YAML, "yaml")
    assert a == b
    assert a.cloud_ceiling == "confidential" and a.confidence.min_margin == 0.05
    assert a.pii.patterns[0].name == "employee_id" and a.semantic.thresholds == {"medical": 0.31}


def test_policy_table_is_unwrapped_and_empty_is_default() -> None:
    assert parse_policy_config('[policy]\ncloud_ceiling = "public"\n', "toml").cloud_ceiling == "public"
    assert parse_policy_config("", "yaml") == PolicyConfig()


def test_config_is_frozen() -> None:
    c = PolicyConfig()
    with pytest.raises(ValueError, match="frozen"):
        c.cloud_ceiling = "restricted"


@pytest.mark.parametrize(
    ("text", "fmt", "needles"),
    [
        ('cloud_ceiling = "secret"', "toml", ["`cloud_ceiling`", "'secret'", "'public'", "'restricted'"]),
        ("colud_ceiling = 'public'", "toml", ["unknown key `colud_ceiling`", "cloud_ceiling"]),
        ("[pii]\nentropy = 3", "toml", ["unknown key `pii.entropy`", "entropy_threshold"]),
        ('[pii]\ndetectors = ["email", "dna"]', "toml", ["`pii.detectors`", "'dna'", "allowed:", "iban"]),
        ("[confidence]\nmin_top1 = 1.5", "toml", ["`confidence.min_top1`", "1.5", "less than or equal to 1"]),
        ("on_media_without_cloud: drop", "yaml", ["`on_media_without_cloud`", "'error'", "'text_only'"]),
        (
            "pii:\n  patterns:\n    - {name: x, regex: '('}",
            "yaml",
            ["`pii.patterns[0].regex`", "regular expression"],
        ),
        ("pii:\n  patterns:\n    - {name: x, regex: 'a?'}", "yaml", ["empty string"]),
        ("pii:\n  terms: ['  ']", "yaml", ["`pii.terms`", "empty term"]),
        ("semantic:\n  thresholds: {legal: 7}", "yaml", ["[-1, 2]"]),
        ("budget:\n  reserve: -1", "yaml", ["`budget.reserve`", "greater than or equal to 0"]),
        ("version = 2", "toml", ["`version`", "1"]),
        ("a = ", "toml", ["not valid TOML"]),
        ("a: [1, 2", "yaml", ["not valid YAML"]),
        ("- 1\n- 2", "yaml", ["must be a mapping"]),
    ],
)
def test_errors_name_key_value_and_what_is_allowed(text: str, fmt: str, needles: list[str]) -> None:
    with pytest.raises(PolicyConfigError) as info:
        parse_policy_config(text, fmt)
    for needle in needles:
        assert needle in str(info.value), str(info.value)


def test_unknown_format() -> None:
    with pytest.raises(PolicyConfigError, match="'toml' or 'yaml'"):
        parse_policy_config("", "json")


def test_load_policy_file_toml_and_yaml(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text(TOML)
    (tmp_path / "p.yml").write_text(YAML)
    assert load_policy_file(tmp_path / "p.toml") == load_policy_file(str(tmp_path / "p.yml"))


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("missing.toml", None, "does not exist"),
        ("p.json", "{}", "unknown extension"),
        ("p.toml", 'cloud_ceiling = "nope"', "`cloud_ceiling`"),
        ("p.yaml", "pii: [", "not valid YAML"),
        ("p.toml", b"\xff\xfe\x00", "cannot be read"),
    ],
)
def test_load_policy_file_errors_name_the_file(
    tmp_path: Path, name: str, content: str | bytes | None, needle: str
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConfigurationError) as info:
        load_policy_file(path)
    assert str(path) in str(info.value) and needle in str(info.value)
