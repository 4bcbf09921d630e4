"""Secret-scanning rules: provider tokens with distinctive prefixes, private keys, and keyword assignments.

The rule regexes are adapted from gitleaks' default rule set (``config/gitleaks.toml``,
https://github.com/gitleaks/gitleaks, commit b58d3f1, MIT License, Copyright (c) 2019 Zachary Rice;
see NOTICE). Adaptations: Go's mid-pattern ``(?i)`` became scoped ``(?i:...)`` groups, and the trailing
delimiter became a lookahead so the span is the secret alone. Only rules anchored on a fixed prefix are
taken, plus gitleaks' ``generic-api-key`` (keyword, assignment, value) with its entropy floor of 3.5
bits per character, which catches ``password = "..."`` style secrets of any provider.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator

from ...policies.secret_context import (
    is_cut_short,
    is_identifier,
    is_placeholder,
    jwt_is_valid,
    looks_like_lookalike,
)
from .ds_rules import find_ds
from .ported_rules import find_ported, generic_allowlist

_END = r"(?=[\x60'\"\s;,)\]}>]|\\[nr]|$)"

# (kind, regex) - kind is the finding's kind, named after the gitleaks rule id.
_RULES: tuple[tuple[str, str], ...] = (
    ("aws_access_key_id", r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b"),
    ("github_token", r"\b(?:ghp|gho|ghu|ghs|ghr)_[0-9a-zA-Z]{36}\b"),
    ("github_token", r"\bgithub_pat_\w{82}\b"),
    ("gitlab_token", r"\bglpat-[\w-]{20}\b"),
    ("gitlab_token", r"\b(?:glrt|gldt|glft|glsoat)-[0-9a-zA-Z_\-]{20}\b"),
    ("google_api_key", r"\bAIza[\w-]{35}" + _END),
    ("slack_token", r"\bxox[bpaores]-[0-9A-Za-z-]{10,250}"),
    ("slack_token", r"(?i:xapp-\d-[A-Z0-9]++-\d++-[a-z0-9]++)"),
    (
        "slack_webhook",
        r"(?:https?://)?hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/]{43,56}",
    ),
    # Secret and restricted keys only: publishable keys (pk_) are meant to ship in web pages.
    ("stripe_key", r"\b(?:sk|rk)_(?:test|live|prod)_[a-zA-Z0-9]{10,99}" + _END),
    ("openai_api_key", r"\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,200}" + _END),
    ("openai_api_key", r"\bsk-[a-zA-Z0-9]{20}T3BlbkFJ[a-zA-Z0-9]{20}\b"),
    ("anthropic_api_key", r"\bsk-ant-(?:api03|admin01)-[a-zA-Z0-9_\-]{93}AA" + _END),
    ("npm_token", r"\b(?i:npm_[a-z0-9]{36})" + _END),
    ("pypi_token", r"pypi-AgEIcHlwaS5vcmc[\w-]{50,1000}"),
    ("huggingface_token", r"\bhf_[a-zA-Z]{34}" + _END),
    ("sendgrid_api_key", r"\bSG\.[a-zA-Z0-9=_\-\.]{66}" + _END),
    ("twilio_api_key", r"\bSK[0-9a-fA-F]{32}\b"),
    ("shopify_token", r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b"),
    ("digitalocean_token", r"\bdo[opr]_v1_[a-f0-9]{64}" + _END),
    ("databricks_token", r"\bdapi[a-f0-9]{32}(?:-\d)?" + _END),
    ("doppler_token", r"\bdp\.pt\.[a-zA-Z0-9]{43}"),
    ("dynatrace_token", r"\bdt0c01\.[a-zA-Z0-9]{24}\.[a-zA-Z0-9]{64}"),
    ("linear_api_key", r"\blin_api_[a-zA-Z0-9]{40}"),
    ("postman_api_key", r"\bPMAK-[a-fA-F0-9]{24}-[a-fA-F0-9]{34}" + _END),
    ("pulumi_token", r"\bpul-[a-f0-9]{40}" + _END),
    ("square_token", r"\b(?:EAAA|sq0atp-)[\w-]{22,60}" + _END),
    ("grafana_token", r"\b(?:glc_[A-Za-z0-9+/]{32,400}={0,3}|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8})" + _END),
    ("vault_token", r"\bhvs\.[\w-]{90,120}" + _END),
    ("age_secret_key", r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}"),
    ("azure_ad_client_secret", r"(?<![\w~.])[a-zA-Z0-9_~.]{3}\dQ~[a-zA-Z0-9_~.-]{31,34}(?![\w~.-])"),
    ("mailgun_key", r"\bkey-[a-f0-9]{32}\b"),
    ("atlassian_token", r"\bATATT3[A-Za-z0-9_\-=]{186}" + _END),
    (
        "jwt",
        r"\bey[a-zA-Z0-9]{17,}+\.ey[a-zA-Z0-9/\\_-]{17,16384}\.(?:[a-zA-Z0-9/\\_-]{10,4096}={0,2})?" + _END,
    ),
    (
        "private_key",
        r"(?i:-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----)[\s\S-]{64,16384}?(?:KEY(?: BLOCK)?-----|\Z)",
    ),
    # An HTTP Authorization header anywhere (gitleaks' curl-auth-header reads curl lines only): logs, HTTP
    # dumps, code. The credential after the scheme; ``$(cmd)``, ``${VAR}`` and ``<token>`` never match.
    (
        "http_authorization",
        r"(?i:\b(?:proxy-)?authorization[\"']?[ \t]{0,4}[:=][ \t]{0,4}[\"']?"
        r"(?:(?:bearer|basic|token|api-token|apikey|jwt|sso-key|digest)[ \t]{1,4})?)([\w~+/.=@-]{8,4096}+)",
    ),
    # gitleaks' gcp-service-account: the marker of a service-account key file (which holds a private key).
    ("gcp_service_account", r"\"type\": ?\"service_account\""),
    (
        "url_credentials",
        # User and password hold no quote, bracket or URL delimiter (RFC 3986's gen-delims, as in
        # detect-secrets' BasicAuthDetector): ``"https://url:8000";@x`` is two strings, not credentials.
        r"\b[a-z][a-z0-9+.-]{1,20}://[^\s:/?#\[\]@\"'<>]{1,64}:[^\s:/?#\[\]@\"'<>]{3,128}@[\w.-]++",
    ),
)

# gitleaks generic-api-key: a secret-ish keyword, an assignment, a value; the value's entropy decides.
# gitleaks starts the pattern with a lazy ``[\w.-]{0,50}?`` prefix, which makes every position of the
# text try 50 prefix lengths against the keyword list (about 20 microseconds a character on text
# without spaces). The prefix is not part of the secret, so the pattern here starts at the keyword:
# the same values are found, at about one pass over the text. The unbounded value is possessive (its
# class holds none of the end characters, so giving characters back could never end a match).
_GENERIC = re.compile(
    r"(?:(?i:access|auth|credential|creds|key|passw(?:or)?d|secret|token)|[Aa]pi|API)"
    r"(?i:[ \t\w.-]{0,20}+[\s'\"]{0,3}(?:=|>|:{1,3}=|\|\||:|=>|\?=|,)[\x60'\"\s=]{0,5})"
    r"((?i:[\w.=-]{10,150}+|[a-z0-9][a-z0-9+/]{11,}+={0,3}+))" + _END
)
_GENERIC_ENTROPY = 3.5
_STOPWORDS = re.compile(r"(?i)^(?:true|false|null|none|undefined|example|changeme|password|secret|token)")

# Substrings (lower case) one of which a rule's match must hold, as gitleaks' rule keywords: a rule runs
# only when one occurs in the text, so rules cost little where their prefix is absent.
_KEYWORDS: tuple[tuple[str, ...], ...] = (
    ("a3t", "akia", "asia", "abia", "acca"),  # aws_access_key_id
    ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),  # github_token
    ("github_pat_",),  # github_token
    ("glpat-",),  # gitlab_token
    ("glrt-", "gldt-", "glft-", "glsoat-"),  # gitlab_token
    ("aiza",),  # google_api_key
    ("xox",),  # slack_token
    ("xapp-",),  # slack_token
    ("hooks.slack.com",),  # slack_webhook
    ("sk_", "rk_"),  # stripe_key
    ("sk-",),  # openai_api_key
    ("t3blbkfj",),  # openai_api_key
    ("sk-ant-",),  # anthropic_api_key
    ("npm_",),  # npm_token
    ("pypi-",),  # pypi_token
    ("hf_",),  # huggingface_token
    ("sg.",),  # sendgrid_api_key
    ("sk",),  # twilio_api_key
    ("shpat_", "shpca_", "shppa_", "shpss_"),  # shopify_token
    ("doo_v1_", "dop_v1_", "dor_v1_"),  # digitalocean_token
    ("dapi",),  # databricks_token
    ("dp.pt.",),  # doppler_token
    ("dt0c01.",),  # dynatrace_token
    ("lin_api_",),  # linear_api_key
    ("pmak-",),  # postman_api_key
    ("pul-",),  # pulumi_token
    ("eaaa", "sq0atp-"),  # square_token
    ("glc_", "glsa_"),  # grafana_token
    ("hvs.",),  # vault_token
    ("age-secret-key-1",),  # age_secret_key
    ("q~",),  # azure_ad_client_secret
    ("key-",),  # mailgun_key
    ("atatt3",),  # atlassian_token
    (".ey",),  # jwt
    ("-----begin",),  # private_key
    ("authorization",),  # http_authorization
    ("service_account",),  # gcp_service_account
    ("://",),  # url_credentials
)
assert len(_KEYWORDS) == len(_RULES)

_COMPILED = tuple((kind, re.compile(rx)) for kind, rx in _RULES)
_GATED = tuple(zip(_COMPILED, _KEYWORDS, strict=True))


def shannon_entropy(s: str) -> float:
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values()) if n else 0.0


_KEY_START = re.compile(r"[\w.-]{1,50}$")


def _key_before(text: str, keyword_start: int, value_start: int) -> str:
    """The key a value was assigned to: the identifier that holds the keyword, through the operator
    (``pub const X509_pubkey_st =``), which is what gitleaks' allowlist reads."""
    m = _KEY_START.search(text, max(0, keyword_start - 50), keyword_start)
    return text[m.start() if m else keyword_start : value_start]


_AUTH_ENTROPY = 3.0


def _authorization(text: str, m: re.Match[str]) -> Iterator[tuple[str, int, int]]:
    """The credential of an Authorization header, when it reads as one: random enough, no placeholder,
    no scheme word alone (``Authorization: Bearer`` followed by a variable)."""
    value = m.group(1)
    if shannon_entropy(value) < _AUTH_ENTROPY or is_placeholder(value) or is_cut_short(text, *m.span(1)):
        return
    if is_identifier(value):  # code that reads the header: headers.get, self.token
        return
    if not any(c.isdigit() for c in value) and value.isalpha():  # a word ("Negotiate"), not a credential
        return
    yield "http_authorization", m.start(1), m.end(1)


def find_secrets(text: str) -> Iterator[tuple[str, int, int]]:
    """Yield ``(kind, start, end)`` for every rule match in ``text`` (overlaps resolved by the caller).

    Matches that read as placeholders (``ghp_xxxx...``, ``AKIAIOSFODNN7EXAMPLE``) are dropped; the generic
    rule also drops ids, hashes and identifiers by their key (:mod:`edgeroute.policies.secret_context`).
    """
    low = text.lower()
    for (kind, rx), keywords in _GATED:
        if not any(k in low for k in keywords):
            continue
        for m in rx.finditer(text):
            if kind == "http_authorization":
                yield from _authorization(text, m)
                continue
            if kind != "private_key" and (is_placeholder(m.group()) or is_identifier(m.group())):
                continue
            if (kind == "jwt" and not jwt_is_valid(m.group())) or is_cut_short(text, m.start(), m.end()):
                continue
            yield kind, m.start(), m.end()
    allow = generic_allowlist()
    for m in _GENERIC.finditer(text):
        value = m.group(1)
        if _STOPWORDS.match(value) or shannon_entropy(value) < _GENERIC_ENTROPY:
            continue
        # A value made of plain words ("user-profile-settings") is configuration, not a secret.
        if (
            not any(c.isdigit() for c in value)
            and value.replace("-", "").replace("_", "").replace(".", "").isalpha()
        ):
            continue
        key = _key_before(text, m.start(), m.start(1))
        if looks_like_lookalike(value, key) or is_cut_short(text, m.start(1), m.end(1)):
            continue
        # gitleaks' own allowlist of this rule: its stop words, key names, and lines (Docker build secrets).
        if allow.allows(text, m.start(1) - len(key), m.start(1), m.end(1)):
            continue
        yield "generic_secret", m.start(1), m.end(1)
    # detect-secrets' bare token shapes, then gitleaks' other provider rules, keyword-gated (the hand-tuned
    # ones above come first: overlaps are resolved by the caller in favour of earlier spans).
    yield from find_ds(text)
    yield from find_ported(text)


RULE_COUNT = len(_RULES) + 1

__all__ = ["RULE_COUNT", "find_secrets", "shannon_entropy"]
