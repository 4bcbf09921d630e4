"""Secret shapes from detect-secrets' plugins that gitleaks' rules miss: bare tokens without a keyword.

Re-stated (no code copied) from detect-secrets' ``detect_secrets/plugins/`` (https://github.com/Yelp/detect-secrets,
commit 5e14193, Apache License 2.0, Copyright (c) 2018 Yelp, Inc.; see NOTICE). gitleaks gates most provider
rules on a keyword (``discord``, ``telegr``, ``mailchimp``) that a pasted token does not carry; detect-secrets
matches the token's own shape. Adaptations: each repeat is bounded and possessive where nothing can follow
inside the class, word boundaries stand where detect-secrets reads a whole line, and a rule runs only when its
keyword (a fixed part of the shape) occurs, as gitleaks' rules do. Every match still goes through
:func:`~edgeroute.policies.secret_context.is_placeholder` (``AKCxxxxxxxxxx`` is a placeholder here).

JSON Web Tokens are checked as detect-secrets checks them (:func:`~edgeroute.policies.secret_context.jwt_is_valid`):
the header and payload decode to JSON, so ``eyJAAAA.eyJBBB`` and a header cut short are look-alikes.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator

from ...policies.secret_context import (
    is_cut_short,
    is_placeholder,
    jwt_is_valid,
    key_is_allowlisted,
    looks_like_lookalike,
)

# (kind, keywords (lower case, one must occur), regex, group of the secret)
_RULES: tuple[tuple[str, tuple[str, ...], str, int], ...] = (
    # DiscordBotTokenDetector: a base64 user id, a timestamp, an HMAC ([MNO] + 23-25, 6, 27 characters).
    ("discord_bot_token", (".",), r"[MNO][a-zA-Z0-9_-]{23,25}\.[a-zA-Z0-9_-]{6}\.[a-zA-Z0-9_-]{27}", 0),
    # MailchimpDetector: 32 hex-ish characters and the data centre.
    ("mailchimp_api_key", ("-us",), r"(?<![0-9a-z])[0-9a-z]{32}-us[0-9]{1,2}\b", 0),
    # TelegramBotTokenDetector: the bot's numeric id, a colon, 35 characters (detect-secrets reads the
    # whole line; here the token stands alone: not inside a longer name or an ARN).
    # The regex starts with its digits (a lookbehind first would cost a test at every position of the
    # text); what may precede the id is checked in find_ds.
    ("telegram_bot_token", (":",), r"[0-9]{8,10}:[0-9A-Za-z_-]{35}(?![\w-])", 0),
    # NpmDetector: an .npmrc registry line.
    ("npm_token", ("_authtoken",), r"//[^\s/]{1,253}/:_authToken=[ \t]{0,8}(npm_[^\s\"']{1,200}|[A-Fa-f0-9-]{36})", 1),
    # SquareOAuthDetector: an application secret.
    ("square_oauth_secret", ("sq0csp-",), r"\bsq0csp-[0-9A-Za-z\\_-]{43}", 0),
    # AzureStorageKeyDetector: a storage account key in a connection string.
    ("azure_storage_key", ("accountkey=",), r"AccountKey=([a-zA-Z0-9+/=]{88})", 1),
    # GitLabTokenDetector: token kinds by prefix, each with its length (20-50 for the friendly tokens).
    (
        "gitlab_token",
        ("glpat-", "gldt-", "glft-", "glsoat-", "glrt-", "gr1348941", "glcbt-", "glimt-", "glptt-", "glagent-", "gloas-"),
        r"\b(?:(?:glpat|gldt|glft|glsoat|glrt)-[A-Za-z0-9_-]{20,50}|GR1348941[A-Za-z0-9_-]{20,50}|"
        r"glcbt-(?:[0-9a-fA-F]{2}_)?[A-Za-z0-9_-]{20,50}|glimt-[A-Za-z0-9_-]{25}|glptt-[A-Za-z0-9_-]{40}|"
        r"glagent-[A-Za-z0-9_-]{50,1024}|gloas-[A-Za-z0-9_-]{64})(?![\w-])",
        0,
    ),
    # JwtTokenDetector: two or three dot-separated base64url parts (the signature may be absent), checked below.
    ("jwt", ("eyj",), r"(?<![\w-])eyJ[A-Za-z0-9_=-]{4,8192}+\.[A-Za-z0-9_=-]{4,8192}+(?:\.[A-Za-z0-9_.+/=-]{0,8192}+)?", 0),
)

_NOT_BEFORE_TELEGRAM = frozenset(string.ascii_letters + string.digits + "_:/.-")
_COMPILED = tuple((kind, keywords, re.compile(rx), group) for kind, keywords, rx, group in _RULES)

# KeywordDetector for password words only: a quoted value after ``password =``, ``"passwd":``, ``db_pwd =>``,
# or a bare one in a config file (``DB_PASSWORD=...``, ``password: ...``). Passwords people choose are short
# and not random (``Summer2024!``), so no entropy floor; the value must not be a word alone, a placeholder,
# a template or a reference.
_PASSWORD_WORDS = ("passw", "pwd", "passphrase", "contrase")
_PASSWORD = re.compile(
    r"(?i:(?:passw(?:or)?d|passphrase|pwd|contrase(?:ñ|n)a)[\w.-]{0,20}+[\"']?[ \t]{0,4}(?::=|=>|==|=|:)[ \t]{0,4}@?)"
    # Quoted, or (detect-secrets' config-file form: .env, YAML, INI) bare to the end of the value; a bare
    # value holds none of the characters of code (a call, an index, a variable, a template).
    r"(?:([\"'`])([^\"'`\s\\]{6,128}+)\1|([^\"'`\s\\()\[\]{}$%<>,;]{6,128}+)(?=[\s,;]|$))"
)
_WORDISH = re.compile(r"^[A-Za-z]+$|^[A-Za-z]+[_.-][A-Za-z]+$")
_KEY_START = re.compile(r"[\w.-]{1,50}$")


def _passwords(text: str) -> Iterator[tuple[str, int, int]]:
    for m in _PASSWORD.finditer(text):
        g = 2 if m.start(2) >= 0 else 3
        value = m.group(g)
        k = _KEY_START.search(text, max(0, m.start() - 50), m.start())
        key = text[k.start() if k else m.start() : m.start(g)]
        if _WORDISH.match(value) or key_is_allowlisted(key) or looks_like_lookalike(value, key):
            continue
        if g == 3 and not (any(c.isdigit() for c in value) and any(c.isalpha() for c in value)):
            continue  # a bare value must mix letters and digits ("required", "********" are not passwords)
        if is_cut_short(text, m.start(g), m.end(g)):
            continue
        yield "password_assignment", m.start(g), m.end(g)


def find_ds(text: str) -> Iterator[tuple[str, int, int]]:
    """``(kind, start, end)`` of each kept match of the rules above."""
    low = text.lower()
    for kind, keywords, rx, group in _COMPILED:
        if not any(k in low for k in keywords):
            continue
        for m in rx.finditer(text):
            start, end = m.span(group)
            if kind == "telegram_bot_token" and start and text[start - 1] in _NOT_BEFORE_TELEGRAM:
                continue
            secret = text[start:end]
            if is_placeholder(secret) or is_cut_short(text, start, end):
                continue
            if kind == "jwt" and not jwt_is_valid(secret):
                continue
            yield kind, start, end
    if any(w in low for w in _PASSWORD_WORDS):
        yield from _passwords(text)


RULE_COUNT = len(_RULES) + 1

__all__ = ["RULE_COUNT", "find_ds"]
