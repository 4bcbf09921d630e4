"""On-device PII and secret detectors: regular expressions plus checksums, no network, no model.

Each detector yields candidate spans from a precompiled regex and keeps only those that pass a
validity check (Luhn for cards and Canadian SINs, mod-97 for IBANs, SSA rules for US SSNs,
``ipaddress`` for IPs, character-class and entropy tests for unknown secrets), so ids, dates,
versions and hashes are not flagged. Overlapping findings keep the one from the more specific
detector (the order of :data:`~edgeroute.policies.config.PII_DETECTORS`).
"""

from __future__ import annotations

import bisect
import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import NamedTuple

from .config import PII_DETECTORS, PiiConfig, PolicyConfig, UserPattern
from .secret_context import is_cut_short, is_identifier, is_placeholder, jwt_is_valid, key_is_allowlisted
from .signals import PiiFinding

_Span = tuple[str, int, int]  # (kind, start, end)


class _Settings(NamedTuple):
    detectors: tuple[str, ...]
    terms: tuple[str, ...]
    terms_ignore_case: bool
    patterns: tuple[UserPattern, ...]
    entropy_threshold: float
    entropy_min_length: int
_Detector = Callable[[str], Iterator[_Span]]

# --- helpers -------------------------------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    """True when the digit string passes the Luhn checksum."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(compact: str) -> bool:
    """True when an IBAN without spaces has its country's length and a valid mod-97 checksum."""
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def shannon_entropy(s: str) -> float:
    """Bits per character of ``s`` under its own character distribution."""
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values()) if n else 0.0


# IBAN lengths per country (SWIFT registry), for the countries most users meet.
_IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AT": 20, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "CH": 21,
    "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LI": 21,
    "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MT": 31, "MU": 30,
    "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VA": 22,
    "XK": 20,
}  # fmt: skip

_FILE_EXTENSIONS = frozenset(
    [
        "png",
        "jpg",
        "jpeg",
        "gif",
        "svg",
        "webp",
        "bmp",
        "ico",
        "css",
        "js",
        "ts",
        "tsx",
        "jsx",
        "py",
        "json",
        "yaml",
        "yml",
        "toml",
        "md",
        "txt",
        "pdf",
        "zip",
    ]
)

# --- detectors -----------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.+%-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,63})@"
    r"((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,24}))(?![\w-])"
)


def _emails(text: str) -> Iterator[_Span]:
    for m in _EMAIL.finditer(text):
        if m.group(2).lower() in _FILE_EXTENSIONS:  # icon@2x.png, not an address
            continue
        yield "email", m.start(), m.end()


_PHONE_INTL = re.compile(r"(?<![\w+])(?:\+|00)[1-9]\d{0,2}(?:[ .-]?\(?\d{1,5}\)?){2,6}(?![\w-]|\.\d)")
_PHONE_NANP = re.compile(
    r"(?<![\w+-])(?:1[ .-])?(?:\([2-9]\d{2}\)[ ]?|[2-9]\d{2}[ .-])[2-9]\d{2}[ .-]\d{4}(?![\w-]|\.\d)"
)
_PHONE_NATIONAL = re.compile(  # trunk prefix 0: UK 020 7946 0958, FR 01 23 45 67 89, DE 030 1234567
    r"(?<![\w+-])\(?0[1-9]\d{0,3}\)?(?:[ /.-]\d{2,8}){1,4}(?![\w-]|\.\d)"
)
_PHONE_BARE = re.compile(r"(?<![\w+-])\d{10,11}(?![\w-])")
_PHONE_CONTEXT = re.compile(r"(?i)\b(?:phone|tel|telephone|call|mobile|cell|fax|whatsapp|sms|text me|ring)\b")


_SSN_SHAPE = re.compile(r"\d{3}-\d{2}-\d{4}")
_PREV_TOKEN = re.compile(r"(\S+)\s+$")


def _continues_digit_groups(text: str, start: int) -> bool:
    """True when the previous word holds digits: the match is the tail of a longer code (an IBAN, an id)."""
    m = _PREV_TOKEN.search(text, max(0, start - 40), start)
    return m is not None and any(c.isdigit() for c in m.group(1))


def _digit_count(s: str) -> int:
    return sum(ch.isdigit() for ch in s)


def _phones(text: str) -> Iterator[_Span]:
    for m in _PHONE_INTL.finditer(text):
        if m.group().startswith("00") and _continues_digit_groups(text, m.start()):
            continue
        digits = _digit_count(m.group()) - (2 if m.group().startswith("00") else 0)
        if 8 <= digits <= 15:  # E.164 bounds
            yield "phone", m.start(), m.end()
    for m in _PHONE_NANP.finditer(text):
        yield "phone", m.start(), m.end()
    for m in _PHONE_NATIONAL.finditer(text):
        s = m.group()
        if _SSN_SHAPE.fullmatch(s) or _continues_digit_groups(text, m.start()):
            continue
        groups = re.findall(r"\d+", s)
        # dates (01-02-2024, 05.06.21) and short codes look alike; real numbers have 9-11 digits
        if 9 <= _digit_count(s) <= 11 and not (
            len(groups) == 3 and len(groups[-1]) in (2, 4) and len(s) <= 10
        ):
            yield "phone", m.start(), m.end()
    for m in _PHONE_BARE.finditer(text):
        if _PHONE_CONTEXT.search(text, max(0, m.start() - 30), m.start()):
            yield "phone", m.start(), m.end()


_CARD = re.compile(r"(?<![\w.-])\d(?:[ -]?\d){12,18}(?![\w-]|\.\d)")
_CARD_PREFIX = re.compile(
    r"^(?:4|5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)|3[47]|3(?:0[0-5]|[68])|6(?:011|5|4[4-9])|35)"
)


def _cards(text: str) -> Iterator[_Span]:
    for m in _CARD.finditer(text):
        raw = m.group()
        digits = raw.replace(" ", "").replace("-", "")
        if not 13 <= len(digits) <= 19 or not _CARD_PREFIX.match(digits):
            continue
        seps = {c for c in raw if not c.isdigit()}
        if len(seps) > 1 or not luhn_valid(digits):  # mixed separators: a list of numbers, not a card
            continue
        yield "payment_card", m.start(), m.end()


_IBAN = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{2})(\d{2})((?:[ ]?[A-Za-z0-9]){10,30})")


def _ibans(text: str) -> Iterator[_Span]:
    for m in _IBAN.finditer(text):
        want = _IBAN_LENGTHS.get(m.group(1).upper())
        if want is None:
            continue
        # The regex may run into a following code word; cut the span at the country's length.
        count, end = 0, m.start()
        for i in range(m.start(), m.end()):
            if text[i] != " ":
                count += 1
                if count == want:
                    end = i + 1
                    break
        if count != want or (end < len(text) and text[end].isalnum()):
            continue
        if iban_valid(text[m.start() : end].replace(" ", "").upper()):
            yield "iban", m.start(), end


_SSN = re.compile(r"(?<![\w-])(?!000|666|9\d\d)(\d{3})([- ])(?!00)\d{2}\2(?!0000)\d{4}(?![\w-])")
_SSN_BARE = re.compile(r"(?<![\w-])(?!000|666|9\d\d)\d{3}(?!00)\d{2}(?!0000)\d{4}(?![\w-])")
_SSN_CONTEXT = re.compile(r"(?i)\b(?:ssn|social security|ss#|soc\.? sec)")
_SSN_ADVERTISED = frozenset({"078051120", "219099999", "123456789"})  # published in ads and samples
_NINO = re.compile(
    r"(?<![A-Za-z0-9])(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
    r"[ ]?\d{2}[ ]?\d{2}[ ]?\d{2}[ ]?[A-D](?![A-Za-z0-9])"
)
_NINO_LOWER = re.compile(r"(?<![A-Za-z0-9])[a-z]{2}\d{6}[a-d](?![A-Za-z0-9])")
_SIN = re.compile(r"(?<![\w-])([1-79]\d{2})([- ])\d{3}\2\d{3}(?![\w-])")
_SIN_CONTEXT = re.compile(r"(?i)\b(?:sin|social insurance)\b")


def _national_ids(text: str) -> Iterator[_Span]:
    for m in _SSN.finditer(text):
        if re.sub(r"\D", "", m.group()) not in _SSN_ADVERTISED:
            yield "us_ssn", m.start(), m.end()
    for m in _SSN_BARE.finditer(text):
        if m.group() not in _SSN_ADVERTISED and _SSN_CONTEXT.search(text, max(0, m.start() - 30), m.start()):
            yield "us_ssn", m.start(), m.end()
    for m in _NINO.finditer(text):
        yield "uk_nino", m.start(), m.end()
    for m in _NINO_LOWER.finditer(text):  # typed in lower case: same rules once upper-cased
        if _NINO.fullmatch(m.group().upper()):
            yield "uk_nino", m.start(), m.end()
    for m in _SIN.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        # Luhn alone passes one in ten random 9-digit groups; also require the words nearby.
        if luhn_valid(digits) and _SIN_CONTEXT.search(text, max(0, m.start() - 40), m.start()):
            yield "ca_sin", m.start(), m.end()


_IPV4 = re.compile(
    r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w]|\.\d)"
)
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])"
)
_VERSION_CONTEXT = re.compile(r"(?i)\b(?:version|ver\.?|build|release|firmware|v)\s*$")
# Addresses that name nobody's host: unspecified, loopback, broadcast, and link-local 169.254.0.0/16
# (self-assigned, and 169.254.169.254 is every cloud's metadata endpoint, a constant of code and config).
_IPV4_NOT_PERSONAL = re.compile(
    r"^(?:0\.0\.0\.0|127\.\d+\.\d+\.\d+|255\.\d+\.\d+\.\d+|169\.254\.\d+\.\d+)$"
)


def _ips(text: str) -> Iterator[_Span]:
    for m in _IPV4.finditer(text):
        if _IPV4_NOT_PERSONAL.match(m.group()) or _VERSION_CONTEXT.search(
            text, max(0, m.start() - 12), m.start()
        ):
            continue
        yield "ipv4", m.start(), m.end()
    for m in _IPV6.finditer(text):
        s = m.group()
        if not any(c.isdigit() for c in s) or s.count(":") < 2 or len(s) < 6:
            continue
        try:
            addr = ipaddress.IPv6Address(s)
        except ValueError:
            continue
        if not (addr.is_loopback or addr.is_unspecified):
            yield "ipv6", m.start(), m.end()


_TOKEN_END = r"(?![A-Za-z0-9_-])"
_API_KEYS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("aws_access_key_id", re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}(?![A-Za-z0-9])")),
    ("github_token", re.compile(r"(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{36,255}" + _TOKEN_END)),
    ("github_token", re.compile(r"(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{22,255}" + _TOKEN_END)),
    ("google_api_key", re.compile(r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}" + _TOKEN_END)),
    ("slack_token", re.compile(r"(?<![A-Za-z0-9_-])xox[abposr]-[A-Za-z0-9-]{10,250}" + _TOKEN_END)),
    (
        "slack_webhook",
        re.compile(r"https://hooks\.slack\.com/services/T[A-Z0-9]++/B[A-Z0-9]++/[A-Za-z0-9]{16,}+"),
    ),
    ("stripe_key", re.compile(r"(?<![A-Za-z0-9_])(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,247}" + _TOKEN_END)),
    (
        "openai_api_key",
        # Anthropic keys (sk-ant-...) have an exact shape: gitleaks' two rules judge them, not this one.
        re.compile(r"(?<![A-Za-z0-9_-])sk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}+"),
    ),
    (
        "jwt",
        re.compile(
            r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}+\.eyJ[A-Za-z0-9_-]{8,}+\.[A-Za-z0-9_-]{8,}+" + _TOKEN_END
        ),
    ),
)


def _api_keys(text: str) -> Iterator[_Span]:
    for kind, rx in _API_KEYS:
        for m in rx.finditer(text):
            s = m.group()
            if is_placeholder(s) or is_identifier(s):  # ghp_xxxx..., AKIAIOSFODNN7EXAMPLE, xoxb-my-bot-token
                continue
            if kind == "jwt" and not jwt_is_valid(s):  # header and payload must be base64url JSON
                continue
            if is_cut_short(text, m.start(), m.end()):  # xoxp-123-...-#####, ops_eyJz...
                continue
            if kind == "openai_api_key" and not (re.search(r"\d", s) and re.search(r"[A-Za-z]{2}", s[3:])):
                continue  # "sk-learn-compatible-wrapper" is prose, keys mix digits in
            yield kind, m.start(), m.end()


# The body is bounded (a 16384-bit RSA key is about 12,600 characters of PEM), so a header without its
# END line costs one bounded scan; the rest of the text is then flagged, as a key cut short may be.
_PEM = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]++ ){0,8}PRIVATE KEY(?: BLOCK)?)-----(?:.{0,20000}?-----END \1-----|.*+\Z)", re.S
)


_KEY_BODY_CHARS = re.compile(r"[A-Za-z0-9+/]{16}")
_KEY_BODY_MIN = 4
"""Runs of 16 base64 characters a key's body holds at least (a 256-bit EC key has over 8): a header
with ``anything`` or nothing between it and its END line is a fixture, not a key."""


def _private_keys(text: str) -> Iterator[_Span]:
    for m in _PEM.finditer(text):
        body = text[m.end(1) + 5 : m.end()]
        if len(_KEY_BODY_CHARS.findall(body[:400])) < _KEY_BODY_MIN:
            continue
        yield "private_key", m.start(), m.end()


# Possessive: a run is read once (no class character follows it, so giving some back never helps).
_ENTROPY_CANDIDATE = re.compile(r"[A-Za-z0-9+/_-]{8,}+={0,2}+")
_LOWER_RUN = re.compile(r"[a-z]{3,}+")


_KEY_BEFORE = re.compile(r"([\w.-]{1,50})[\"']?\s{0,3}(?::{1,2}=?|=>?|\?=)\s{0,3}[\"'`]?$")
# An HTML form field, ``name="authenticity_token" value="..."``: its name is the key.
_HTML_KEY = re.compile(r"name=[\"']([\w.-]{1,50})[\"'][^<>\"']{0,40}?value=[\"']$")
_PUBLIC_BLOCK = re.compile(r"-----BEGIN (?:PGP PUBLIC KEY BLOCK|PUBLIC KEY|RSA PUBLIC KEY|CERTIFICATE)-----")
_PUBLIC_END = re.compile(r"-----END (?:PGP PUBLIC KEY BLOCK|PUBLIC KEY|RSA PUBLIC KEY|CERTIFICATE)-----")


# Words that say a secret follows. A random-looking string with none of them in the 80 characters before
# it is flagged only when it is long and very random (a pasted token alone on a line).
_SECRET_WORDS = re.compile(
    r"(?i)pass(?:word|wd|phrase)?|pwd|secret|token|api[_ -]?key|apikey|access[_ -]?key|auth|bearer|"
    r"credential|private|session|cookie|signing|client[_ -]?key|\bkey\b|_key|key[_=:]"
)
_ALONE_MIN_LENGTH = 40
_ALONE_MIN_ENTROPY = 4.8


# Without a secret word, a string counts only as a pasted token: delimited like a value, not a piece of
# something longer (a part of a dotted token, a signed URL, an ``a~b`` or ``x@y`` identity, a URL's query).
_ALONE_BEFORE = frozenset(" \t\r\n\"'`=:([{,>")
_ALONE_AFTER = frozenset(" \t\r\n\"'`;,)]}<")
_IN_URL = re.compile(r"://[^\s\"'<>]*+$")


def _stands_alone(text: str, start: int, end: int) -> bool:
    if start and text[start - 1] not in _ALONE_BEFORE:
        return False
    if end < len(text) and text[end] not in _ALONE_AFTER:
        return False
    return _IN_URL.search(text, max(0, start - 200), start) is None


def _public_blocks(text: str) -> list[tuple[int, int]]:
    """Spans of public keys and certificates (one pass; a block without END runs to the text's end)."""
    out: list[tuple[int, int]] = []
    pos = 0
    while (b := _PUBLIC_BLOCK.search(text, pos)) is not None:
        e = _PUBLIC_END.search(text, b.end())
        end = e.end() if e is not None else len(text)
        out.append((b.end(), end))
        pos = end
    return out


def _benign_context(text: str, start: int, blocks: list[tuple[int, int]]) -> bool:
    """The string's place says it is no secret: a URL path segment, the body of a public key or
    certificate, or the value of a key that holds none (``public_key``, ``csrf-token``, ``commit``)."""
    if start and (text[start - 1] == "/" or (text[start - 1] in ".@" and "/" in text[start : start + 64])):
        return True  # a URL's path (the class holds "/", so a candidate may start at "com/...")
    for m in (_KEY_BEFORE.search(text, max(0, start - 60), start), _HTML_KEY.search(text, max(0, start - 120), start)):
        if m is not None and key_is_allowlisted(m.group(1)):
            return True
    i = bisect.bisect_right(blocks, (start, len(text) + 1)) - 1
    return i >= 0 and blocks[i][0] <= start < blocks[i][1]


def _high_entropy(threshold: float, min_length: int) -> _Detector:
    def detect(text: str) -> Iterator[_Span]:
        blocks = _public_blocks(text) if "-----BEGIN" in text else []
        for m in _ENTROPY_CANDIDATE.finditer(text):
            s = m.group().rstrip("=")
            if len(s) < min_length or text.endswith("base64,", 0, m.start()):  # inline media, not a secret
                continue
            lower, upper, digit = (any(f(c) for c in s) for f in (str.islower, str.isupper, str.isdigit))
            # Hex digests and UUIDs (one letter case) and CamelCase words (no digits) are not secrets.
            if not (lower and upper and digit) or shannon_entropy(s) < threshold:
                continue
            # Random text rarely holds long lower-case runs; identifiers made of words do.
            if sum(len(w) for w in _LOWER_RUN.findall(s)) > 0.5 * len(s):
                continue
            if is_placeholder(s) or is_identifier(s) or _benign_context(text, m.start(), blocks):
                continue
            if is_cut_short(text, m.start(), m.start() + len(s)):
                continue
            if not _SECRET_WORDS.search(text, max(0, m.start() - 80), m.start()) and (
                len(s) < _ALONE_MIN_LENGTH
                or shannon_entropy(s) < _ALONE_MIN_ENTROPY
                or not _stands_alone(text, m.start(), m.end())
            ):
                continue
            yield "high_entropy_string", m.start(), m.start() + len(s)

    return detect


def _user_terms(terms: tuple[str, ...], ignore_case: bool) -> _Detector:
    # Longest first so "Project Falcon X" wins over "Project Falcon"; \b only where the term has a word edge.
    parts = []
    for t in sorted(terms, key=len, reverse=True):
        left = r"\b" if re.match(r"\w", t) else ""
        right = r"\b" if re.search(r"\w$", t) else ""
        parts.append(left + re.escape(t) + right)
    rx = re.compile("|".join(parts), re.IGNORECASE if ignore_case else 0)

    def detect(text: str) -> Iterator[_Span]:
        for m in rx.finditer(text):
            yield "user_term", m.start(), m.end()

    return detect


def _user_patterns(patterns: tuple[UserPattern, ...]) -> _Detector:
    compiled = [(p.name, re.compile(p.regex, re.IGNORECASE if p.ignore_case else 0)) for p in patterns]

    def detect(text: str) -> Iterator[_Span]:
        for name, rx in compiled:
            for m in rx.finditer(text):
                if m.end() > m.start():
                    yield name, m.start(), m.end()

    return detect


_FIXED: dict[str, _Detector] = {
    "email": _emails,
    "phone": _phones,
    "payment_card": _cards,
    "iban": _ibans,
    "national_id": _national_ids,
    "ip_address": _ips,
    "api_key": _api_keys,
    "private_key": _private_keys,
}

# Overlaps go to the more specific detector: a PEM block beats the entropy of its body, a card
# beats the phone regex, an API key beats the entropy test.
_PRIORITY = (
    "private_key",
    "api_key",
    "user_patterns",
    "user_terms",
    "email",
    "iban",
    "payment_card",
    "national_id",
    "ip_address",
    "phone",
    "high_entropy",
)
assert set(_PRIORITY) == set(PII_DETECTORS)


# The pattern settings of a PiiConfig, hashable (the config itself holds dicts: entity thresholds).
_Key = tuple[tuple[str, ...], tuple[str, ...], bool, tuple[UserPattern, ...], float, int]


def _key(config: PiiConfig) -> _Key:
    return (
        config.detectors,
        config.terms,
        config.terms_ignore_case,
        config.patterns,
        config.entropy_threshold,
        config.entropy_min_length,
    )


def _compile(config: PiiConfig) -> tuple[tuple[str, _Detector], ...]:
    return _compile_key(_key(config))


@lru_cache(maxsize=64)
def _compile_key(key: _Key) -> tuple[tuple[str, _Detector], ...]:
    config = _Settings(*key)
    enabled = set(config.detectors)
    out: list[tuple[str, _Detector]] = []
    for name in _PRIORITY:
        if name not in enabled:
            continue
        if name in _FIXED:
            out.append((name, _FIXED[name]))
        elif name == "high_entropy":
            out.append((name, _high_entropy(config.entropy_threshold, config.entropy_min_length)))
        elif name == "user_terms" and config.terms:
            out.append((name, _user_terms(config.terms, config.terms_ignore_case)))
        elif name == "user_patterns" and config.patterns:
            out.append((name, _user_patterns(config.patterns)))
    return tuple(out)


def detect_pii(text: str, config: PolicyConfig | PiiConfig | None = None) -> tuple[PiiFinding, ...]:
    """Find PII and secrets in ``text``; findings are sorted by position and never overlap.

    ``config`` may be the whole :class:`PolicyConfig`, its ``pii`` section, or None for defaults.
    """
    if not isinstance(text, str):
        raise TypeError(f"detect_pii needs a str, got {type(text).__name__}")
    pii = config.pii if isinstance(config, PolicyConfig) else (config or _DEFAULT)
    if not pii.enabled or not text:
        return ()
    # Kept spans never overlap, so sorted by start they are sorted by end too: only the last kept
    # span starting before a candidate's end can overlap it.
    starts: list[int] = []
    ends: list[int] = []
    found: list[PiiFinding] = []
    for name, detector in _compile(pii):
        for kind, start, end in detector(text):
            i = bisect.bisect_left(starts, end)
            if i and ends[i - 1] > start:
                continue
            starts.insert(i, start)
            ends.insert(i, end)
            found.append(PiiFinding(kind=kind, start=start, end=end, detector=name))
    return tuple(sorted(found, key=lambda f: (f.start, f.end)))


_DEFAULT = PiiConfig()


def redact(text: str, findings: tuple[PiiFinding, ...] | list[PiiFinding]) -> str:
    """Replace each finding's span with ``[KIND]`` (e.g. ``[EMAIL]``); overlapping spans merge.

    Placeholders carry the kind only, never the length or any character of the original.
    """
    spans = sorted((f.start, f.end, f.kind) for f in findings)
    for s, e, _ in spans:
        if e > len(text):
            raise ValueError(
                f"finding {s}..{e} lies outside the text of length {len(text)}; detect on this text"
            )
    out: list[str] = []
    pos = 0
    last_end = -1
    for s, e, kind in spans:
        if s < last_end:  # overlap: extend the previous placeholder's span
            pos = max(pos, e)
            last_end = max(last_end, e)
            continue
        out.append(text[pos:s])
        out.append(f"[{kind.upper()}]")
        pos = last_end = e
    out.append(text[pos:])
    return "".join(out)


__all__ = ["detect_pii", "iban_valid", "luhn_valid", "redact", "shannon_entropy"]
