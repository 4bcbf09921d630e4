"""Context rules that tell a secret from a secret look-alike: placeholders, ids, hashes, identifiers.

Ported (rules re-stated, no code copied) from two well-kept scanners:

- gitleaks' ``generic-api-key`` allowlist (``cmd/generate/config/rules/generic.go``, commit b58d3f1, MIT):
  key names that hold no secret (``author``, ``accessor``, ``*_id``, ``public_key``, ``key_length``,
  ``csrf_token``, ``api_version``...), and its rule that a value without a digit is not a secret.
- detect-secrets' filters (``detect_secrets/filters/heuristic.py``, commit 5e14193, Apache-2.0):
  sequential strings (``abcdef...``, ``0123...``), UUIDs, templated values (``${VAR}``, ``<token>``,
  ``{{ x }}``), indirect references (``X25519.key_length``), file names, and ids (``*_id = ...``).

Each rule keeps recall: a random secret is almost never half filler (equal or consecutive characters),
never a template, and rarely holds a placeholder word. Fixtures that use filler as their test secret
(``AKIAZZZZZZZZZZZZZZZZ``, ``SKxxxxxxxx...``) are called placeholders here.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

_PLACEHOLDER_WORDS = re.compile(
    r"(?i)example|sample|dummy|placeholder|changeme|change_me|redacted|your[_-]?|insert|"
    r"xxxxx|\*\*\*\*|####|\.\.\.|here$|^here|replace|notreal|not_real"
)
_TEMPLATE = re.compile(r"\$\{|\$\(|\{\{|\}\}|<[\w -]{1,40}>|%\(?\w*\)?s|^\$[A-Za-z_]|\[[A-Z_]{3,}\]")
_UUID = re.compile(r"(?i)^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_HASH = re.compile(r"(?i)^(?:[0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{56}|[0-9a-f]{64}|[0-9a-f]{128})$")
_REFERENCE = re.compile(r"^[A-Za-z_$][\w$]{0,31}(?:\.[A-Za-z_$][\w$]{0,31})+(?:\(\))?$")  # not a JWT
_FILE_NAME = re.compile(
    r"(?i)\.(?:pem|p12|pfx|jks|keystore|keytab|key|crt|cer|der|pub|json|ya?ml|toml|ini|env|txt|xml|"
    r"properties|conf|cfg|jar|so|dll|exe|png|jpe?g|gif|svg|html?|js|ts|py|go|rb|java|cs)$"
)
_EXPRESSION = re.compile(r"==|!=|>=|<=|=fail$|=true$|=false$|\|\||&&")
_IDENT_PART = re.compile(r"^(?:[A-Za-z]{1,20}|\d{1,8}|[A-Za-z]{1,12}\d{1,6}|\d{1,4}[A-Za-z]{1,8}|v\d+)$")

# gitleaks' generic allowlist, as key names: what the keyword sits in says the value is no secret.
_KEY_ALLOWLIST = re.compile(
    r"(?i)access(?:ibility|or)|access[_.-]?id|random[_.-]?access|"
    r"api[_.-]?(?:id|name|version|ur[il]|endpoint)|rapid|capital|"
    r"author(?!i[sz])|X-MS-Exchange-Organization-Auth|Authentication-Results|"
    r"credentials?[_.-]?id|withCredentials|"
    r"(?:bucket|foreign|hot|idx|natural|primary|pub(?:lic)?|schema|sequence)[_.-]?key|turkey|"
    r"key[_.-]?(?:alias|board|code|frame|id|length|mesh|name|pair|press(?:ed)?|ring|selector|signature|size|"
    r"stone|storetype|word|up|down|left|right|chars|str)|"
    r"key[_.-]?vault[_.-]?(?:id|name)|keyVaultToStoreSecrets|key(?:store|tab)[_.-]?(?:file|path)|issuerkeyhash|"
    r"(?-i:[DdMm]onkey|[DM]ONKEY)|keying|"
    r"secret[_.-]?(?:length|name|size|id|ref|key[_.-]?ref)|UserSecretsId|"
    r"csrf[_.-]?token|authenticity[_.-]?token|jsonwebtoken|public[_.-]?token|(?:key|token)[_.-]?file|"
    r"(?:credentials|token)[_.-]?(?:endpoint|ur[il])|"
    # A signature is computed from a key and published with what it signs (``X-Hub-Signature``).
    r"\bsignature\W*$|"
    r"\b(?:commit|sha\d*|hash|checksum|digest|etag|integrity|nonce|uuid|guid|revision|rev|version|"
    r"region|zone|locale|timezone|latitude|longitude|lat|lng|long)\b"
)
# Key names whose value is an identifier when it has an identifier's shape (a UUID or a hash).
_ID_KEY = re.compile(
    r"(?i)(?:^|[_.\-\s\"'])(?:[a-z]*id|ids|uuid|guid|sha\d*|hash|commit|digest|checksum|etag)\W*$|"
    r"[a-z](?:Id|ID|Ids)\W*$"
)


_PERIODS = (2, 3, 4)
_PERIODIC_MIN = 9
"""A unit of 2-4 characters repeated to 9 or more (``123123123``, ``abababab``) is filler too."""


def filler_share(value: str) -> float:
    """Share of ``value`` in filler: runs of 5+ equal characters (``xxxxx``, ``00000``), runs of 6+
    consecutive ones up or down the alphabet or digits (``abcdef``, ``123456``, ``987654``), and a short
    unit repeated (``123123123``)."""
    n = len(value)
    if n < 6:
        return 0.0
    codes = value.encode("utf-32-le")[::4]  # one byte per character (its low byte): steps between neighbours
    filler = bytearray(n)
    run, step = 1, None
    for i in range(1, n + 1):
        now = codes[i] - codes[i - 1] if i < n else None
        if now is not None and now == step:
            run += 1
            continue
        # A run of ``run`` characters with one step between each ends here (at i).
        if (step == 0 and run >= 5) or (step in (-1, 1) and run >= 6):
            filler[i - run : i] = b"\x01" * run
        run, step = 2, now
    for p in _PERIODS:
        run = p
        for i in range(p, n + 1):
            if i < n and codes[i] == codes[i - p]:
                run += 1
                continue
            if run >= _PERIODIC_MIN:
                filler[i - run : i] = b"\x01" * run
            run = p
    return sum(filler) / n


def is_sequential(value: str) -> bool:
    """Mostly filler: half or more of it is runs of equal or consecutive characters (detect-secrets'
    sequential-string filter, widened to parts of a value so ``0123456789abcdefghij_-.`` counts)."""
    return filler_share(value) >= 0.5


def is_placeholder(value: str) -> bool:
    """A placeholder or template, not a secret: ``xxxx``, ``<token>``, ``${VAR}``, ``your-key-here``,
    ``AKIAIOSFODNN7EXAMPLE``, or mostly filler (:func:`is_sequential`)."""
    return bool(_PLACEHOLDER_WORDS.search(value) or _TEMPLATE.search(value) or is_sequential(value))


# What follows a match and says it was cut from a placeholder or an elided display: ``xoxp-123-...-####``,
# ``ops_eyJzaWdu...``, ``sk-abc…``, ``ghp_<your token>``.
_CUT_AFTER = re.compile(r"\.\.\.|\u2026|[#*]{3}|[xX]{4}|<[\w -]{1,40}>|\$\{")


def is_cut_short(text: str, start: int, end: int) -> bool:
    """The match at ``text[start:end]`` runs straight into filler or an ellipsis (or follows an ellipsis):
    a placeholder such as ``xoxp-5723...-####################`` or a shortened display (``ops_eyJz...``),
    neither a whole secret."""
    return bool(_CUT_AFTER.match(text, end, end + 40)) or text.endswith(("...", "\u2026"), max(0, start - 3), start)


# A CamelCase name: three capitalised words (3+ letters) or more, with acronyms and short numbers
# (``Gemma4AssistantForCausalLM``, ``getUserTokenValue``). About 4 in 10,000 random strings split so.
_CAMEL = re.compile(r"^(?:[A-Z][a-z]{2,}|[A-Z]{2,}(?![a-z])|[a-z]{3,}|\d{1,3})(?:[A-Z][a-z]{2,}|[A-Z]{2,}(?![a-z])|\d{1,3}){2,}$")

_CAPITAL_WORD = re.compile(r"[A-Z][a-z]{2,}")


def is_identifier(value: str) -> bool:
    """Reads as a name, a reference, a file name or an expression rather than as random characters:
    ``X25519.key_length``, ``s_rsa1024_priv.pem``, ``DOC_Vector_5_32``, ``rc0.15.0_20231217-SNAPSHOT``."""
    if _REFERENCE.match(value) or _FILE_NAME.search(value) or _EXPRESSION.search(value.rstrip("=")):
        return True
    if len(value) <= 64 and _CAMEL.match(value) and len(_CAPITAL_WORD.findall(value)) >= 3:
        return True
    parts = [p for p in re.split(r"[_\-.:/=]+", value) if p]
    return len(parts) >= 2 and all(_IDENT_PART.match(p) for p in parts)


def jwt_is_valid(token: str) -> bool:
    """A JSON Web Token in form (detect-secrets' ``JwtTokenDetector.is_formally_valid``): every part is
    base64url and the header and payload decode to JSON. ``eyJAAAA.eyJBBB``, a header cut short
    (``...IkpXVCJ.``) and random text after ``eyJ`` are look-alikes."""
    parts = token.split(".")
    if len(parts) < 2:
        return False
    for i, part in enumerate(parts):
        if len(part) % 4 == 1:
            return False
        try:
            raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
            if i < 2:
                json.loads(raw.decode("utf-8"))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return False
    return True


def is_uuid_or_hash(value: str) -> bool:
    return bool(_UUID.match(value) or _HASH.match(value))


def key_is_allowlisted(key: str) -> bool:
    """The key name (the text from the identifier holding the keyword to the assignment) holds no secret."""
    return bool(_KEY_ALLOWLIST.search(key))


def key_names_an_id(key: str) -> bool:
    """``credentialsId``, ``report_access_id``, ``commit``, ``sha``: a UUID or hash under it is an id."""
    return bool(_ID_KEY.search(key.strip(" \t'\":=,>")))


def looks_like_lookalike(value: str, key: str = "") -> bool:
    """One verdict for a candidate secret ``value`` found after ``key`` (empty when there is no key)."""
    if is_placeholder(value) or is_identifier(value):
        return True
    if key and key_is_allowlisted(key):
        return True
    return is_uuid_or_hash(value) and (not key or key_names_an_id(key))


__all__ = [
    "filler_share",
    "is_cut_short",
    "is_identifier",
    "is_placeholder",
    "is_sequential",
    "is_uuid_or_hash",
    "jwt_is_valid",
    "key_is_allowlisted",
    "key_names_an_id",
    "looks_like_lookalike",
]
