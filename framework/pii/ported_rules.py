"""gitleaks' provider rules, from the data file ``data/gitleaks_rules.json``, applied as gitleaks applies them.

The data is gitleaks' default rule set (MIT, see NOTICE) converted by ``scripts/port-gitleaks-rules``:
regex, keywords, entropy floor, secret group, the rule's allowlist and stop words. Here, as in gitleaks,
a rule runs only when one of its keywords occurs in the text (one lower-casing of the text, then a substring
test per keyword), so 200-odd rules cost little more than the few whose keyword is there. A match is
kept when its secret group passes the entropy floor, holds no stop word, matches no allowlist regex (of the
rule, or gitleaks' global ones) and is no placeholder (:func:`~edgeroute.policies.secret_context.is_placeholder`).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from ...policies.secret_context import is_cut_short, is_placeholder, jwt_is_valid

_LINE_CONTEXT = 400
"""Characters either side of a match that a ``line`` allowlist reads (a bound: a minified file is one line)."""


@dataclass(frozen=True, slots=True)
class PortedRule:
    id: str
    kind: str
    rx: re.Pattern[str]
    keywords: tuple[str, ...]
    entropy: float
    group: int
    allow: tuple[tuple[str, re.Pattern[str]], ...]
    stopwords: tuple[str, ...]
    fixed_tail: bool = False
    """The regex ends in a fixed count of one class and no terminator (``glsoat-[0-9a-zA-Z_-]{20}``): a match
    followed by more token characters is a longer string, not this token."""


_FIXED_TAIL = re.compile(r"\]\{\d+\}\)*$")
_TOKEN_CHAR = re.compile(r"[A-Za-z0-9_-]")


@lru_cache(maxsize=1)
def _data() -> dict[str, Any]:
    path = resources.files("edgeroute.framework.pii").joinpath("data", "gitleaks_rules.json")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@lru_cache(maxsize=1)
def ported_rules() -> tuple[tuple[PortedRule, ...], tuple[re.Pattern[str], ...], tuple[str, ...]]:
    """The rules, gitleaks' global allowlist regexes and its global stop words (compiled once)."""
    data = _data()
    rules = tuple(
        PortedRule(
            id=r["id"],
            kind=r["id"].replace("-", "_"),
            rx=re.compile(r["regex"]),
            keywords=tuple(r["keywords"]),
            entropy=float(r["entropy"]),
            group=int(r["group"]),
            allow=tuple((target, re.compile(rx)) for target, rx in r["allow"]),
            stopwords=tuple(r["stopwords"]),
            fixed_tail=bool(_FIXED_TAIL.search(r["regex"])),
        )
        for r in data["rules"]
    )
    return rules, tuple(re.compile(a) for a in data["global_allow"]), tuple(data["global_stopwords"])


@lru_cache(maxsize=1)
def known_public_values() -> frozenset[str]:
    """Values gitleaks allowlists by name (``secret`` allowlist entries that are plain strings): keys
    published on purpose, such as the public web keys of well-known apps. No detector flags them."""
    rules, _, _ = ported_rules()
    return frozenset(
        rx.pattern
        for rule in rules
        for target, rx in rule.allow
        if target == "secret" and re.fullmatch(r"[\w-]+", rx.pattern)
    )


def _entropy(s: str) -> float:
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values()) if n else 0.0


def _line(text: str, start: int, end: int) -> str:
    lo = text.rfind("\n", max(0, start - _LINE_CONTEXT), start) + 1 or max(0, start - _LINE_CONTEXT)
    hi = text.find("\n", end, end + _LINE_CONTEXT)
    return text[lo : hi if hi >= 0 else min(len(text), end + _LINE_CONTEXT)]


def find_ported(text: str, *, gate: bool = True) -> Iterator[tuple[str, int, int]]:
    """``(kind, start, end)`` of each kept match; the span is the secret group's. ``gate=False`` runs every
    rule whatever its keywords (for tests: the gate must never lose a match)."""
    rules, global_allow, global_stop = ported_rules()
    low = text.lower()
    for rule in rules:
        if gate and rule.keywords and not any(k in low for k in rule.keywords):
            continue
        for m in rule.rx.finditer(text):
            start, end = _secret_span(rule, m)
            if start < 0 or end <= start:
                continue
            if rule.fixed_tail and m.end() == end and _TOKEN_CHAR.match(text, end):
                continue
            secret = text[start:end]
            if rule.entropy and _entropy(secret) < rule.entropy:
                continue
            s_low = secret.lower()
            if any(w in s_low for w in rule.stopwords) or any(w in s_low for w in global_stop):
                continue
            if any(a.search(secret) for a in global_allow) or _allowed(rule, text, m, secret):
                continue
            if is_placeholder(secret) or is_cut_short(text, start, end):
                continue
            if rule.id == "jwt" and not jwt_is_valid(secret):
                continue
            yield rule.kind, start, end


def _secret_span(rule: PortedRule, m: re.Match[str]) -> tuple[int, int]:
    """The secret's span as gitleaks reads it: the rule's secret group, or by default (group 0) the first
    capture group that took part in the match (``curl-auth-header`` has one group per header form), or
    the whole match for a rule without groups."""
    if rule.group:
        return m.span(rule.group) if rule.group <= (rule.rx.groups or 0) else m.span()
    for g in range(1, (rule.rx.groups or 0) + 1):
        if m.start(g) >= 0 and m.end(g) > m.start(g):
            return m.span(g)
    return m.span()


@dataclass(frozen=True, slots=True)
class GenericAllowlist:
    """gitleaks' allowlist of its ``generic-api-key`` rule: regexes on the match (from the keyword through
    the value), on the line, on the value, and stop words (lower case) that no random value holds."""

    match: tuple[re.Pattern[str], ...]
    line: tuple[re.Pattern[str], ...]
    secret: tuple[re.Pattern[str], ...]
    stopwords: tuple[str, ...]

    def allows(self, text: str, match_start: int, value_start: int, value_end: int) -> bool:
        value = text[value_start:value_end]
        low = value.lower()
        if any(w in low for w in self.stopwords) or any(a.search(value) for a in self.secret):
            return True
        if any(a.search(text, match_start, value_end) for a in self.match):
            return True
        line = _line(text, value_start, value_end)
        return any(a.search(line) for a in self.line)


@lru_cache(maxsize=1)
def generic_allowlist() -> GenericAllowlist:
    g = _data()["generic"]
    return GenericAllowlist(
        match=tuple(re.compile(a) for a in g["match"]),
        line=tuple(re.compile(a) for a in g["line"]),
        secret=tuple(re.compile(a) for a in g["secret"]),
        stopwords=tuple(g["stopwords"]),
    )


def _allowed(rule: PortedRule, text: str, m: re.Match[str], secret: str) -> bool:
    for target, rx in rule.allow:
        subject = secret if target == "secret" else m.group() if target == "match" else _line(text, *m.span())
        if rx.search(subject):
            return True
    return False


__all__ = ["GenericAllowlist", "PortedRule", "find_ported", "generic_allowlist", "known_public_values", "ported_rules"]
