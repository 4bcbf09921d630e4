"""The pattern layer: library-validated identifiers and gitleaks-derived secret rules, with look-alikes."""

from __future__ import annotations

import itertools

import pytest

from edgeroute.framework.pii import PiiDetector
from edgeroute.policies.config import PiiConfig

DETECT = PiiDetector(PiiConfig(entities={"enabled": False}))


def kinds(text: str) -> list[tuple[str, str]]:
    return [(f.kind, text[f.start : f.end]) for f in DETECT.detect(text)]


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("call +44 20 7946 0958 tomorrow", "phone", "+44 20 7946 0958"),
        ("mi móvil es 612 345 678", "phone", "612 345 678"),
        ("Rufen Sie 030 12345678 an", "phone", "030 12345678"),
        ("tel. 0412 345 678 (AU)", "phone", "0412 345 678"),
        ("IBAN ES91 2100 0418 4502 0005 1332 por favor", "iban", "ES91 2100 0418 4502 0005 1332"),
        ("pay NO9386011117947 now", "iban", "NO9386011117947"),
        ("DNI 47976934S", "es_dni", "47976934S"),
        ("NIE X1234567L", "es_nie", "X1234567L"),
        ("CF RSSMRA85T10A562S", "it_codice_fiscale", "RSSMRA85T10A562S"),
        ("CPF 390.533.447-05", "br_cpf", "390.533.447-05"),
        (
            'TOKEN = "ghp_UI0hGB56FCnZIyFe5PMKDEOrMzZd5QWOVqFq"',
            "github_token",
            "ghp_UI0hGB56FCnZIyFe5PMKDEOrMzZd5QWOVqFq",
        ),
        ("npm_a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7r8", "npm_token", "npm_a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7r8"),
        ("export DB_PASSWORD=hU7kLp2Qz9xW3vB8", "generic_secret", "hU7kLp2Qz9xW3vB8"),
    ],
)
def test_structured_identifiers_and_secrets_are_found(text: str, kind: str, value: str) -> None:
    found = kinds(text)
    assert any(v == value for _, v in found), found
    assert any(k == kind or v == value for k, v in found)


@pytest.mark.parametrize(
    "text",
    [
        "The 2012 Olympic Games were held in London.",
        "BP 150/90, reviewed on 12/03/2024.",
        "Invoice totals for March were 4,310 pounds.",
        "version: 3.11.4-alpine",
        "sha256: a3dd1b0c51b3bbda0e73e6d3eb4a7a91fae7d662fcc5389ae540d8b4d4f467f8",
        'request_id = "0b6c2a2e-9d6f-4d0a-8b1e-2f3c4d5e6f70"',
        "API_KEY=YOUR_API_KEY_HERE",
        "password: ${DB_PASSWORD}",
        "token: ${{ secrets.GITHUB_TOKEN }}",
        "const TOKEN_EXPIRY_SECONDS = 3600;",
        'key_name = "user_profile_settings"',
        "Order 1234567 shipped in 3 boxes.",
        "Order 912345678 shipped in 3 boxes.",
    ],
)
def test_look_alikes_are_not_flagged(text: str) -> None:
    assert kinds(text) == []


def test_offsets_are_code_points_and_findings_never_overlap() -> None:
    text = "🙂 naïve — mail jane.roe@example.org or call +33 1 91 38 90 90; card 4111 1111 1111 1111"
    found = DETECT.detect(text)
    assert [text[f.start : f.end] for f in found] == [
        "jane.roe@example.org",
        "+33 1 91 38 90 90",
        "4111 1111 1111 1111",
    ]
    assert all(a.end <= b.start for a, b in itertools.pairwise(found))
    assert all(f.score == 1.0 for f in found)


def test_phone_regions_come_from_the_policy() -> None:
    only_us = PiiDetector(PiiConfig(phone_regions=("US",), entities={"enabled": False}))
    assert only_us.detect("mi móvil es 612 345 678") == ()
    assert DETECT.detect("mi móvil es 612 345 678")


@pytest.mark.parametrize(
    "text",
    [
        "В 1942 - 1945 гг.",
        "Pendant la guerre de Sécession (1861 - 1865), le canal occupe une position stratégique.",
        'Durante la llamada " Belle Époque " (1890 - 1910), que se caracterizaba por la riqueza.',
        "He served in both wars, 1914-1918 and 1939-1945.",
        "the 1914/18 war",
    ],
)
def test_year_ranges_in_prose_are_not_phones(text: str) -> None:
    # Valid as phone numbers in several default regions, but a period of years in prose.
    assert kinds(text) == []


def test_a_year_shaped_number_after_a_phone_word_is_still_a_phone() -> None:
    assert kinds("tel 1942 - 1945") == [("phone", "1942 - 1945")]
    assert kinds("call 030 1942 1945") == [("phone", "030 1942 1945")]


def test_disabled_detection_finds_nothing() -> None:
    assert PiiDetector(PiiConfig(enabled=False)).detect("jane.roe@example.org") == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("server at 192.168.0.1 port 8080", [("ipv4", "192.168.0.1")]),
        ("gateway 172.16.254.1 is down", [("ipv4", "172.16.254.1")]),
        ("curl http://169.254.169.254/latest/meta-data/", []),  # link-local: nobody's host
        ("upgrade to 10.15.7.1234 now", []),
        ("build 2024.10.15.1 is out", []),
    ],
)
def test_ip_addresses_and_dotted_versions_are_not_phones(text: str, expected: list[tuple[str, str]]) -> None:
    # Each is a valid phone number in some default region once its dots are dropped.
    assert kinds(text) == expected


def test_dotted_phones_keep_their_reading() -> None:
    assert kinds("Paris: 01.23.45.67.89") == [("phone", "01.23.45.67.89")]
    assert kinds("office (US) 555.123.4567") == [("phone", "555.123.4567")]
    assert kinds("tel 2024.10.15.1") == [("phone", "2024.10.15.1")]  # a version shape after a phone word
