"""The pattern layer: structured identifiers validated by well-kept libraries, plus secret rules.

- Phone numbers: ``phonenumbers`` (Google's libphonenumber metadata). International numbers (``+`` or
  ``00``) are validated for every region by their country code; national ones against the policy's
  ``phone_regions`` list, in order, first valid wins.
- IBANs of every country, and national identifiers with a checksum: ``python-stdnum``.
- Secrets: gitleaks-derived rules (:mod:`.secrets`).
- Everything else the pure pattern detectors already find (emails, cards, IPs, SSNs, user terms and
  patterns, PEM keys, high-entropy strings): :func:`edgeroute.policies.pii.detect_pii`.

All of it is regexes and checksums: microseconds per short text, no model.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator

import phonenumbers
from stdnum import iban as _iban
from stdnum import luhn as _luhn
from stdnum.br import cpf as _cpf
from stdnum.es import dni as _dni
from stdnum.es import nie as _nie
from stdnum.fr import nir as _nir
from stdnum.gb import nhs as _nhs
from stdnum.in_ import aadhaar as _aadhaar
from stdnum.it import codicefiscale as _cf
from stdnum.mx import curp as _curp
from stdnum.nl import bsn as _bsn

from ...policies.config import PiiConfig
from ...policies.pii import detect_pii
from .ported_rules import known_public_values
from .secrets import find_secrets

Span = tuple[str, int, int, str]  # (kind, start, end, detector)

# --- phones -------------------------------------------------------------------------------------------

# A run of digits with the separators people type; 7 to 15 digits once separators are dropped.
_PHONE_CANDIDATE = re.compile(r"(?<![\w+/.-])(?:\+|00)?\(?\d[\d ()./-]{5,22}\d(?![\w-]|[.,]\d)")
_DATE_SHAPE = re.compile(r"^\d{1,4}[./-]\d{1,2}[./-]\d{1,4}$")
# Two years joined by a dash or slash ("1942 - 1945", "(1861-1865)", "1914/18"): a period in prose, which
# is valid as a phone number in several regions. Counted as a phone only after a word that says phone.
_YEAR_RANGE = re.compile(r"^\(?\s*(1[5-9]\d\d|20\d\d)\s*[-/]\s*(1[5-9]\d\d|20\d\d|\d\d)\s*\)?$")
# A bare run of digits (no separators, no leading + or 0) is an order or record number as often as a
# phone: it counts only after a word that says phone.
_PHONE_CONTEXT = re.compile(
    r"(?i)\b(?:phone|tel|telephone|call|mobile|cell|fax|whatsapp|sms|text|ring|teléfono|tlf|móvil|movil|"
    r"llamar|telefon|handy|rufen|téléphone|portable|appeler|telefono|cellulare|телефон|電話)"
)


_DOTTED_GROUPS = re.compile(r"^\d+(?:\.\d+){3,}$")


def _ip_or_version(raw: str) -> str:
    """``"ip"`` for a dotted IPv4 address (``192.168.0.1``: the ip_address detector's, never a phone),
    ``"version"`` for four or more dotted groups not led by a trunk 0 (``10.15.7.1234``, ``2024.10.15.1``:
    version and build numbers), else ``""``. Dotted phones keep their reading: ``01.23.45.67.89`` and
    ``02.123.45.67`` start with 0 (and a leading zero is no IPv4 address), ``555.123.4567`` has three groups."""
    if not _DOTTED_GROUPS.match(raw):
        return ""
    try:
        ipaddress.IPv4Address(raw)
        return "ip"
    except ValueError:
        return "" if raw.startswith("0") else "version"


def _year_range(raw: str) -> bool:
    m = _YEAR_RANGE.match(raw)
    if m is None:
        return False
    first, second = m.group(1), m.group(2)
    end = int(first[:2] + second) if len(second) == 2 else int(second)
    return int(first) <= end <= int(first) + 200


def _phones(text: str, regions: tuple[str, ...]) -> Iterator[Span]:
    for m in _PHONE_CANDIDATE.finditer(text):
        raw = m.group()
        digits = sum(c.isdigit() for c in raw)
        if not 8 <= digits <= 15 or _DATE_SHAPE.match(raw.strip()):
            continue
        if _year_range(raw) and not _PHONE_CONTEXT.search(text, max(0, m.start() - 40), m.start()):
            continue
        dotted = _ip_or_version(raw)
        if dotted == "ip" or (
            dotted == "version" and not _PHONE_CONTEXT.search(text, max(0, m.start() - 40), m.start())
        ):
            continue
        if (
            raw.isdigit()
            and not raw.startswith("0")
            and not _PHONE_CONTEXT.search(text, max(0, m.start() - 40), m.start())
        ):
            continue
        if raw.startswith(("+", "00")):
            candidates: tuple[str | None, ...] = (None,) if raw.startswith("+") else ("DE",)
        else:
            candidates = regions
        for region in candidates:
            try:
                number = phonenumbers.parse(raw, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                yield "phone", m.start(), m.end(), "phone"
                break


# --- IBAN and national identifiers -----------------------------------------------------------------------

_IBAN_CANDIDATE = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){10,30}(?![A-Za-z0-9])")


def _ibans(text: str) -> Iterator[Span]:
    for m in _IBAN_CANDIDATE.finditer(text):
        raw = m.group()
        compact = raw.replace(" ", "")
        # The candidate may run into the next code word: try the longest prefix that validates.
        for cut in range(len(compact), 14, -1):
            if _iban.is_valid(compact[:cut]):
                # map the compact length back to the spaced text
                count = 0
                for i, ch in enumerate(raw):
                    if ch != " ":
                        count += 1
                    if count == cut:
                        yield "iban", m.start(), m.start() + i + 1, "iban"
                        break
                break


# (kind, candidate regex, validator, context words needed nearby or None)
_NATIONAL: tuple[tuple[str, re.Pattern[str], Callable[[str], bool], re.Pattern[str] | None], ...] = (
    ("es_dni", re.compile(r"(?<![\w-])\d{8}[ -]?[A-HJ-NP-TV-Z](?![\w-])"), _dni.is_valid, None),
    ("es_nie", re.compile(r"(?<![\w-])[XYZ][ -]?\d{7}[ -]?[A-HJ-NP-TV-Z](?![\w-])"), _nie.is_valid, None),
    (
        "fr_nir",
        re.compile(
            r"(?<![\w-])[12][ ]?\d{2}[ ]?\d{2}[ ]?(?:\d{2}|2[AB])[ ]?\d{3}[ ]?\d{3}[ ]?\d{2}(?![\w-])"
        ),
        _nir.is_valid,
        None,
    ),
    (
        "it_codice_fiscale",
        re.compile(r"(?<![A-Za-z0-9])[A-Z]{6}\d{2}[A-EHLMPR-T]\d{2}[A-Z]\d{3}[A-Z](?![A-Za-z0-9])"),
        _cf.is_valid,
        None,
    ),
    (
        "mx_curp",
        re.compile(r"(?<![A-Za-z0-9])[A-Z]{4}\d{6}[HM][A-Z]{5}[A-Z0-9]\d(?![A-Za-z0-9])"),
        _curp.is_valid,
        None,
    ),
    ("br_cpf", re.compile(r"(?<![\w.-])\d{3}\.\d{3}\.\d{3}-\d{2}(?![\w-])"), _cpf.is_valid, None),
    (
        "gb_nhs",
        re.compile(r"(?<![\w-])\d{3}[ -]?\d{3}[ -]?\d{4}(?![\w-])"),
        _nhs.is_valid,
        re.compile(r"(?i)\bnhs\b"),
    ),
    (
        "in_aadhaar",
        re.compile(r"(?<![\w-])[2-9]\d{3}[ -]?\d{4}[ -]?\d{4}(?![\w-])"),
        _aadhaar.is_valid,
        re.compile(r"(?i)\baadhaa?r\b|\buid\b"),
    ),
    (
        "nl_bsn",
        re.compile(r"(?<![\w-])\d{9}(?![\w-])"),
        _bsn.is_valid,
        re.compile(r"(?i)\bbsn\b|burgerservicenummer"),
    ),
    (
        "payment_card",
        re.compile(r"(?<![\w.-])\d{4}(?:[ -]?\d{4}){2}[ -]?\d{1,7}(?![\w-])"),
        lambda s: 13 <= len(re.sub(r"\D", "", s)) <= 19 and _luhn.is_valid(re.sub(r"\D", "", s)),
        re.compile(r"(?i)\b(?:card|tarjeta|karte|carte|visa|mastercard|amex|cc)\b"),
    ),
)


def _national_ids(text: str) -> Iterator[Span]:
    for kind, rx, valid, context in _NATIONAL:
        for m in rx.finditer(text):
            if context is not None and not context.search(text, max(0, m.start() - 40), m.start()):
                continue
            try:
                ok = valid(m.group())
            except Exception:
                ok = False
            if ok:
                yield kind, m.start(), m.end(), "national_id"


def pattern_spans(text: str, config: PiiConfig, phone_regions: tuple[str, ...]) -> list[Span]:
    """Every pattern-layer finding in ``text`` as ``(kind, start, end, detector)``, overlaps not yet resolved.

    The pure detectors of :mod:`edgeroute.policies.pii` run first (their order is their priority), then
    the library-validated ones.
    """
    spans: list[Span] = [(f.kind, f.start, f.end, f.detector) for f in detect_pii(text, config)]
    enabled = set(config.detectors)
    if "api_key" in enabled or "private_key" in enabled:
        spans.extend((kind, s, e, "secrets") for kind, s, e in find_secrets(text))
    if "iban" in enabled:
        spans.extend(_ibans(text))
    if "national_id" in enabled:
        spans.extend(_national_ids(text))
    if "phone" in enabled and any(c.isdigit() for c in text):
        spans.extend(_phones(text, phone_regions))
    public = known_public_values()
    return [sp for sp in spans if text[sp[1] : sp[2]] not in public]


__all__ = ["Span", "pattern_spans"]
