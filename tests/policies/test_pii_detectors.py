"""On-device PII and secret detectors: positives, hard negatives, redaction, config, speed, benchmark."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import pytest

from edgeroute.framework.errors import InputError
from edgeroute.framework.eval.bench_pii import BENCH_PII_CONFIG, default_pii_set, measure_pii
from edgeroute.policies.config import PII_DETECTORS, PiiConfig, PolicyConfig, UserPattern
from edgeroute.policies.pii import detect_pii, iban_valid, luhn_valid, redact, shannon_entropy

POSITIVES = [
    ("write to ana.lopez+work@example.co.uk today", "ana.lopez+work@example.co.uk", "email"),
    ("call +44 20 7946 0958 tomorrow", "+44 20 7946 0958", "phone"),
    ("call 0044 20 7946 0123 tomorrow", "0044 20 7946 0123", "phone"),
    ("office (415) 555-0132, ext 4", "(415) 555-0132", "phone"),
    ("mobile 07700 900123", "07700 900123", "phone"),
    ("Paris: 01 23 45 67 89", "01 23 45 67 89", "phone"),
    ("phone: 4155550132", "4155550132", "phone"),
    ("card 4111 1111 1111 1111 exp 12/29", "4111 1111 1111 1111", "payment_card"),
    ("amex 3782-822463-10005", "3782-822463-10005", "payment_card"),
    ("IBAN DE89 3704 0044 0532 0130 00 BIC COBADEFFXXX", "DE89 3704 0044 0532 0130 00", "iban"),
    ("iban gb82west12345698765432", "gb82west12345698765432", "iban"),
    ("ssn 536-22-1234 on file", "536-22-1234", "us_ssn"),
    ("SSN: 536221234", "536221234", "us_ssn"),
    ("NI number AB 12 34 56 C", "AB 12 34 56 C", "uk_nino"),
    ("my SIN is 130 692 544", "130 692 544", "ca_sin"),
    ("from 203.0.113.42 at noon", "203.0.113.42", "ipv4"),
    ("peer 2001:db8::8a2e:370:7334 dropped", "2001:db8::8a2e:370:7334", "ipv6"),
    ("key AKIAZ7QW3RT5YU2IOP4M leaked", "AKIAZ7QW3RT5YU2IOP4M", "aws_access_key_id"),
    # A random body: a repeated unit ("A1b2" * 9) is filler, a placeholder (test_secret_context).
    ("token ghp_7Hq2Lm9XwT4kR8vN3bZ6cY1pJ5sD0fG2aE7u expired", "ghp_7Hq2Lm9XwT4kR8vN3bZ6cY1pJ5sD0fG2aE7u", "github_token"),
    ("AIzaSyD" + "x1Y2z3" * 5 + "ab in maps", "AIzaSyD" + "x1Y2z3" * 5 + "ab", "google_api_key"),
    ("xoxb-482915730264-Qm7Tz2Lk9Wp4Xr1 for slack", "xoxb-482915730264-Qm7Tz2Lk9Wp4Xr1", "slack_token"),
    ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc ok", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "stripe_key"),
    ("OPENAI_API_KEY=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t", "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t", "openai_api_key"),
    (
        "auth eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "jwt",
    ),
    # A body of base64 lines (a header around "anything" or nothing is a fixture: test_secret_rules).
    (
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDAC4AWkdwKYSd8\n"
        "Ks14IReLcYgADhoXk56ZzXI2Lm9XwT4kR8vN3bZ6cY1pJ5sD0fG2aE7uQ\n-----END PRIVATE KEY-----",
        None,
        "private_key",
    ),
    (
        "secret=wJalrXUtnFEMI/K7MDENG/bPxRfiCY7Qz4mK2vLp",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCY7Qz4mK2vLp",
        "high_entropy_string",
    ),
]


@pytest.mark.parametrize(("text", "span", "kind"), POSITIVES, ids=[p[2] + ":" + p[0][:20] for p in POSITIVES])
def test_detects(text: str, span: str | None, kind: str) -> None:
    found = detect_pii(text)
    assert [f.kind for f in found] == [kind], found
    f = found[0]
    assert text[f.start : f.end] == (span if span is not None else text)


HARD_NEGATIVES = [
    "Order ORD-2024-118734 ships 2024-03-15.",
    "Order #48213377 and invoice INV-000123456",
    "Born 15/03/1988, worked 1998-2004, at 12:30:45",
    "ISBN 978-0-306-40615-7 and 0-306-40615-2",
    "Upgrade to v2.14.3, Python 3.11.4, build 10.0.19041.1234, driver version 4.2.1.0",
    "git checkout 3f786850e387550fdab836ed7e6dc881de23001b",
    "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "request 123e4567-e89b-12d3-a456-426614174000",
    "card 4111 1111 1111 1112 is invalid",
    "iban DE88 3704 0044 0532 0130 00 has a bad checksum",
    "test numbers 000-12-3456, 666-45-1234, 912-34-5678, 078-05-1120",
    "NI example QQ 12 34 56 C",
    "MAC 00:1a:2b:3c:4d:5e and std::vector<int> and Foo::Bar::baz",
    "use @dataclass and icon@2x.png",
    "pip install scikit-learn sk-learn-wrapper",
    "call getUserAccountBalanceV2() or ThisIsAVeryLongCamelCaseIdentifier2",
    "tracking 1Z999AA10123456784, ZIP 94105-1234, batch 4155550132",
    "listen on 127.0.0.1:8000 or 0.0.0.0, netmask 255.255.255.0",
    "metadata at 169.254.169.254, link-local 169.254.12.7",
    "coordinates 37.7749, -122.4194 and $12,345,678.90",
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kg",
    "Flight LH 400 departs 13:50 from gate B44",
]


@pytest.mark.parametrize("text", HARD_NEGATIVES)
def test_hard_negatives_are_not_flagged(text: str) -> None:
    assert detect_pii(text) == ()


def test_checksums() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("DE89370400440532013000") and not iban_valid("DE88370400440532013000")
    assert not iban_valid("DE8937040044053201300")  # one digit short for Germany
    assert shannon_entropy("aaaa") == 0.0 and shannon_entropy("abcd") == 2.0


def test_findings_are_sorted_and_do_not_overlap() -> None:
    text = "mail a@example.com, card 4111-1111-1111-1111, ip 10.0.0.7, key AKIAZ7QW3RT5YU2IOP4M"
    found = detect_pii(text)
    assert [f.detector for f in found] == ["email", "payment_card", "ip_address", "api_key"]
    assert all(a.end <= b.start for a, b in itertools.pairwise(found))


def test_redact_replaces_every_span_and_keeps_the_rest() -> None:
    text = "Mail ana@example.com or call +44 20 7946 0958 please"
    out = redact(text, detect_pii(text))
    assert out == "Mail [EMAIL] or call [PHONE] please"
    assert detect_pii(out) == ()


def test_redact_merges_overlaps_and_checks_bounds() -> None:
    from edgeroute.policies.signals import PiiFinding

    text = "0123456789"
    spans = [PiiFinding("a", 1, 5, "x"), PiiFinding("b", 3, 8, "x")]
    assert redact(text, spans) == "0[A]89"
    with pytest.raises(ValueError, match="outside the text"):
        redact("short", [PiiFinding("a", 1, 50, "x")])


def test_user_terms_and_patterns() -> None:
    cfg = PolicyConfig.model_validate(
        {"pii": {"terms": ["Project Falcon"], "patterns": [{"name": "ticket", "regex": r"SEC-\d{4}"}]}}
    )
    text = "project falcon status for SEC-1234, not Project Falconry"
    found = detect_pii(text, cfg)
    assert [(f.kind, text[f.start : f.end]) for f in found] == [
        ("user_term", "project falcon"),
        ("ticket", "SEC-1234"),
    ]
    case = PiiConfig(terms=("Falcon",), terms_ignore_case=False)
    assert detect_pii("falcon", case) == () and len(detect_pii("Falcon", case)) == 1


def test_detector_selection_and_disable() -> None:
    text = "a@example.com 10.1.2.3"
    assert [f.detector for f in detect_pii(text, PiiConfig(detectors=("email",)))] == ["email"]
    assert detect_pii(text, PiiConfig(enabled=False)) == ()
    assert detect_pii("", PiiConfig()) == ()
    with pytest.raises(TypeError, match="str"):
        detect_pii(b"bytes")


def test_entropy_threshold_is_configurable() -> None:
    token = "token Zx9Qw3Er7Ty1Ui5Op8As2Df4"
    assert detect_pii(token)
    assert detect_pii(token, PiiConfig(entropy_threshold=6.0)) == ()
    assert detect_pii(token, PiiConfig(entropy_min_length=40)) == ()


def test_typical_query_takes_under_a_millisecond() -> None:
    text = "What is the refund policy for order 4471 placed by ana@example.com from 203.0.113.9 last week?"
    detect_pii(text)
    runs = 200
    t0 = time.perf_counter()
    for _ in range(runs):
        detect_pii(text)
    assert (time.perf_counter() - t0) / runs < 1e-3


@pytest.mark.parametrize(
    "text",
    [
        "0" * 20000,
        "+1" * 5000,
        "1 " * 10000,
        "a@" + "a" * 20000,
        "a." * 10000 + "@",
        "ab:" * 7000,
        "aZ9" * 10000,
    ],
    ids=["zeros", "plus", "spaced-digits", "at-run", "dot-run", "colons", "base62-run"],
)
def test_pathological_inputs_stay_linear(text: str) -> None:
    t0 = time.perf_counter()
    detect_pii(text)
    assert (
        time.perf_counter() - t0 < 1.0
    )  # about 20 ms each on the dev box; a backtracking regex takes minutes


def test_shipped_labelled_set_and_benchmark() -> None:
    rows = [json.loads(line) for line in default_pii_set().read_text().splitlines()]
    assert len(rows) >= 200
    covered = {s["detector"] for r in rows for s in r["spans"]}
    assert covered == set(PII_DETECTORS)
    assert sum(1 for r in rows if not r["spans"]) >= 80  # hard negatives and plain texts
    report = measure_pii()
    assert report["texts"] == len(rows)
    assert set(report["detectors"]) == set(PII_DETECTORS)
    # Floors, not the measured figures: the set is written by the detectors' author (see docs).
    assert report["overall"]["precision"] >= 0.97
    assert report["overall"]["recall"] >= 0.95


def test_benchmark_on_a_custom_file(tmp_path: Path) -> None:
    p = tmp_path / "set.jsonl"
    rows = [
        {
            "text": "mail a@example.com",
            "spans": [{"start": 5, "end": 18, "kind": "email", "detector": "email"}],
        },
        {"text": "order 2024-03-15", "spans": []},
        {"text": "call me", "spans": [{"start": 0, "end": 4, "kind": "phone", "detector": "phone"}]},
    ]
    p.write_text("\n".join(json.dumps(r) for r in rows))
    report = measure_pii(p, BENCH_PII_CONFIG)
    assert report["detectors"]["email"]["precision"] == 1.0
    assert report["detectors"]["phone"]["recall"] == 0.0
    assert report["overall"]["fn"] == 1 and report["errors"][0]["type"] == "fn"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "does not exist"),
        ("not json", "expected"),
        ('{"text": "abc", "spans": [{"start": 2, "end": 9, "detector": "email"}]}', "inside"),
        ("", "no rows"),
    ],
)
def test_benchmark_bad_files(tmp_path: Path, content: str | None, needle: str) -> None:
    p = tmp_path / "bad.jsonl"
    if content is not None:
        p.write_text(content)
    with pytest.raises(InputError, match=needle):
        measure_pii(p)


def test_user_pattern_validation_is_clear() -> None:
    with pytest.raises(ValueError, match="empty string"):
        UserPattern(name="x", regex="a*")
