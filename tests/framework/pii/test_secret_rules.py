"""The secret rules of issue 19, part 3: each rule and filter, with a case it finds and one it must not.

Secrets here are random strings drawn for this file (no real credential, none from the scanners' fixtures).
"""

from __future__ import annotations

import pytest

from edgeroute.framework.pii.ds_rules import find_ds
from edgeroute.framework.pii.patterns import pattern_spans
from edgeroute.framework.pii.ported_rules import find_ported, generic_allowlist
from edgeroute.framework.pii.secrets import find_secrets
from edgeroute.policies.config import PiiConfig
from edgeroute.policies.secret_context import filler_share, is_cut_short, jwt_is_valid

_CFG = PiiConfig()
_JWT = (
    "eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiNDIiLCAicm9sZSI6ICJhZG1pbiJ9"
    ".lW_NVRJtphfUxoR_TG7nAevIXOcA_jd_DwxvXviyGnv"
)
_PEM_BODY = (
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDAC4AWkdwKYSd8\n"
    "Ks14IReLcYgADhoXk56ZzXI2Lm9XwT4kR8vN3bZ6cY1pJ5sD0fG2aE7uQrNYF7Mv\n"
)


def _found(text: str) -> list[str]:
    """The texts of all pattern-layer findings (what the privacy decision reads)."""
    return [text[s:e] for _, s, e, _ in pattern_spans(text, _CFG, _CFG.phone_regions)]


def _kinds(text: str) -> set[str]:
    return {k for k, _, _ in find_secrets(text)}


# (text, the secret a finding must cover, the kind one rule gives it)
FOUND = [
    # detect-secrets' bare token shapes: no provider word nearby.
    ("bot token MTE4RcY5HhGmzwHsLjMqgqAu.9r1gXu.5tbKNm4e6mhIDy3UeZgAbgLUBW2", "MTE4RcY5HhGmzwHsLjMqgqAu", "discord_bot_token"),
    ("5829104736:AAY4Mu0DnAXyrr-n6a69p9-V2xaFld7W5oH", "5829104736:AAY4Mu0DnAXyrr", "telegram_bot_token"),
    ("client.init('4f9ec95ee991269d3e2ee05d82245d9e-us14')", "4f9ec95ee991269d3e2ee05d82245d9e-us14", "mailchimp_api_key"),
    ("//registry.npmjs.org/:_authToken=9c1f3a7e-52d4-4b8a-a6e0-3f7d91c2b485", "9c1f3a7e-52d4", "npm_token"),
    ("SQUARE=sq0csp-oz8i2tbXLfTGAHOhdJAizL7rPHNK29hCtf6omH7WPQV", "sq0csp-oz8i2tbXLf", "square_oauth_secret"),
    (
        "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey="
        "x4Qm50fUlO3U6UfLHJlCYevv8nle3frPFeJysFLp4qj5NZCTnEHrS6C5Mh4pyi/qXJ+S5g2dCNFnZ1rDt6x9lJ==;",
        "x4Qm50fUlO3U6Uf",
        "azure_storage_key",
    ),
    ("runner: glpat-Z4iaEkIF_uYH72crmw2c", "glpat-Z4iaEkIF_uYH72crmw2c", "gitlab_token"),
    # A JWT without its signature still carries the claims.
    (
        "session eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiNDIiLCAicm9sZSI6ICJhZG1pbiJ9",
        "eyJhbGciOiAiSFMyNTYi",
        "jwt",
    ),
    # Authorization headers anywhere: a log line, an HTTP dump.
    ("GET /v1/me HTTP/1.1\nAuthorization: Bearer rNYF7MvptlXeI7tbhedQX8fIDe9c\n", "rNYF7MvptlXeI7tbhedQX8fIDe9c", "http_authorization"),
    ("proxy-authorization: Basic dXNlcjpzM2NyZXQtcGFzcw==", "dXNlcjpzM2NyZXQtcGFzcw==", "http_authorization"),
    ('{"type": "service_account", "project_id": "acme"}', '"type": "service_account"', "gcp_service_account"),
    ("postgres://app:Pq7sLm2xV9@db.internal:5432/app", "Pq7sLm2xV9", "url_credentials"),
    ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "stripe_key"),
    # Passwords people choose: short, not random, often with a symbol the generic rule's value class lacks.
    ('DB_PASSWORD = "Summer2024!"', "Summer2024!", "password_assignment"),
    ("# .env\nDB_PASSWORD=Summer2024!\n", "Summer2024!", "password_assignment"),
    ("database:\n  password: hunter22\n", "hunter22", "password_assignment"),
    ("config = {'pwd': 'p@ssw0rd!x'}", "p@ssw0rd!x", "password_assignment"),
]


@pytest.mark.parametrize(("text", "secret", "kind"), FOUND, ids=[k + ":" + t[:16] for t, _, k in FOUND])
def test_secret_is_found(text: str, secret: str, kind: str) -> None:
    assert kind in _kinds(text), list(find_secrets(text))
    assert any(secret in f or f in secret for f in _found(text)), _found(text)


LOOKALIKES = [
    # Placeholders and templates: filler, a repeated unit, a variable, a field to fill in.
    "bot token MTE4xxxxxxxxxxxxxxxxxxxx.xxxxxx.xxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "runner: GR1348941123123123123123123123",
    "//registry.npmjs.org/:_authToken=${NPM_TOKEN}",
    "Authorization: Bearer $(gcloud auth print-access-token)",
    "Authorization: Bearer <your API token>",
    "-H 'Authorization: Bearer XXXXXXXXXXXXXXXX'",
    '"Authorization": header_map.get("authorization")',
    # Shapes that are not the token: a numeric id inside an ARN, a name before the bot id, a wrong suffix.
    "arn:aws:sns:eu-west-1:111122223333:5829104736:AAY4Mu0DnAXyrr-n6a69p9-V2xaFld7W5oH",
    "bot5829104736:AAY4Mu0DnAXyrr-n6a69p9-V2xaFld7W5oH",
    "4f9ec95ee991269d3e2ee05d82245d9e-al32",
    # JWT-shaped but not one: the parts do not decode to JSON.
    "eyJAAAA.eyJBBB",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ",
    # Password keys whose value is a word, a mask, a variable, a placeholder or a format string.
    'passwordVariable: "PASSWORD"',
    'password_field = "user_password"',
    '"password": "********"',
    'password = "${DB_PASS}"',
    'pwd: "<your-password>"',
    'if password == "changeme1"',
    'password_length = "12345678"',
    "password = get_password()",
    "password: Optional[str] = None",
    "self.password = request.form.password",
    "Password: must be at least 8 characters",
    "password=${DB_PASSWORD}",
    # Published on purpose: a publishable Stripe key.
    "Stripe('pk_live_j5krY8XTgIcDaHDb3YrsAfCl')",
    # A PEM header around no key.
    "-----BEGIN PRIVATE KEY-----\nanything\n-----END PRIVATE KEY-----",
    "-----BEGIN OPENSSH PRIVATE KEY----------END OPENSSH PRIVATE KEY-----",
    # Quotes between the "password" and the "@": two strings, not URL credentials.
    '"https://url:8000";@something else',
    # Cut short: a token that runs into filler, a display shortened with an ellipsis.
    '"token": "xoxp-572370529330-573807301142-572331691188-####################"',
    "export OP_SERVICE_ACCOUNT_TOKEN=ops_eyJzaWduSW5BZGRyZXNzIjoiaHR0cHM6...",
    # An Anthropic-looking key of the wrong length (gitleaks' exact shape decides).
    "sk-ant-api03-Qm7Tz2Lk9Wp4Xr1Qm7Tz2Lk9Wp4Xr1-short-AA",
    # Random-looking, but a part of something longer, or under a key that holds no secret.
    "CloudFront-Signature: Ab3~2t1SBDlS9S5IeSOzG7b3KNPRCLqH45QKr5XC60yWKugEi22I-x",
    "http://img.example.org/view?q=2t1SBDlS9S5IeSOzG7b3KNPRCLqH45QKr5XC60yWKugEi22I",
    '<input type="hidden" name="authenticity_token" value="2t1SBDlS9S5IeSOzG7b3KNPRCLqH45QKr5XC60yWKugEi22I" />',
    '{"signature":"2t1SBDlS9S5IeSOzG7b3KNPRCLqH45QKr5XC60yWKugEi22I"}',
]


@pytest.mark.parametrize("text", LOOKALIKES, ids=[t[:24] for t in LOOKALIKES])
def test_lookalike_is_not_flagged(text: str) -> None:
    assert _found(text) == []


def test_a_pasted_token_alone_is_still_flagged() -> None:
    text = "here it is:\n2t1SBDlS9S5IeSOzG7b3KNPRCLqH45QKr5XC60yWKugEi22I\n"
    assert _found(text) == ["2t1SBDlS9S5IeSOzG7b3KNPRCLqH45QKr5XC60yWKugEi22I"]


def test_gitleaks_default_secret_group_is_the_first_that_matched() -> None:
    # curl-auth-header has one capture group per header form; an X-Api-Key header is its fourth.
    text = 'curl --header "X-Api-Key: rNYF7MvptlXeI7tbhedQX8fIDe9c" https://api.acme.test/v1'
    spans = [(k, text[s:e]) for k, s, e in find_ported(text)]
    assert ("curl_auth_header", "rNYF7MvptlXeI7tbhedQX8fIDe9c") in spans


@pytest.mark.parametrize(
    "text",
    [
        'api_key = "admin_PFH5GAnIeMHBwMmuHjOQL8m6"',  # a stop word in the value
        "RUN --mount=type=secret,id=token_PFH5GAnIeMHBwMmuHjOQL8m6a19cSq make",  # a Docker build secret's id
        "author = PFH5GAnIeMHBwMmuHjOQL8m6a19cSq",  # a key that holds no secret
    ],
)
def test_gitleaks_generic_allowlist_applies_to_the_generic_rule(text: str) -> None:
    assert "generic_secret" not in _kinds(text)


def test_the_generic_rule_still_finds_a_random_value() -> None:
    assert "generic_secret" in _kinds('db_password = "PFH5GAnIeMHBwMmuHjOQL8m6a19cSq"')


def test_generic_allowlist_comes_from_gitleaks_data() -> None:
    allow = generic_allowlist()
    assert len(allow.stopwords) > 1000 and "admin" in allow.stopwords
    assert any("--mount=type=secret" in rx.pattern for rx in allow.line)


def test_detect_secrets_rules_run_only_with_their_keyword() -> None:
    assert list(find_ds("nothing to see here, 5829104736 AAY4Mu0DnAXyrr")) == []


def test_jwt_formal_check() -> None:
    assert jwt_is_valid(_JWT)
    assert jwt_is_valid(_JWT.rsplit(".", 1)[0])  # no signature
    assert not jwt_is_valid("eyJhbGciOieeeiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0")  # header is not JSON
    assert not jwt_is_valid("eyJhbGciOiJIUzI1NiJ9")  # one part


def test_filler_counts_repeated_units() -> None:
    assert filler_share("123123123123") == 1.0
    assert filler_share("A1b2A1b2A1b2A1b2") == 1.0
    assert filler_share("PFH5GAnIeMHBwMmuHjOQL8m6a19cSq") == 0.0


def test_cut_short() -> None:
    text = "xoxp-5723-5738-####, ops_eyJz... and …sk-abc"
    assert is_cut_short(text, 0, 15)  # "xoxp-5723-5738-" runs into "####"
    assert is_cut_short(text, 21, 29)
    assert is_cut_short(text, text.index("sk-"), len(text))
    assert not is_cut_short("token abc123 ok", 6, 12)


def test_private_key_with_a_body_is_found() -> None:
    text = "-----BEGIN PRIVATE KEY-----\n" + _PEM_BODY + "-----END PRIVATE KEY-----"
    assert "private_key" in _kinds(text)
    assert _found(text)


def test_a_fixed_length_shape_inside_a_longer_token_is_not_that_token() -> None:
    body = "Z4iaEkIF_uYH72crmw2cQpL9x"  # 25 characters: gitleaks' glimt- length
    assert "gitlab_incoming_mail_token" in {k for k, _, _ in find_ported("glimt-" + body)}
    assert "gitlab_incoming_mail_token" not in {k for k, _, _ in find_ported("glimt-" + body + "_280")}


def test_camel_case_names_are_identifiers_not_secrets() -> None:
    assert "generic_secret" not in _kinds("model_key = Gemma4AssistantForCausalLM")
    assert "generic_secret" in _kinds("model_key = PFH5GAnIeMHBwMmuHjOQL8m6a19cSq")


def test_the_rules_version_covers_every_rule_file() -> None:
    from edgeroute.framework.pii import stored

    assert {"ds_rules.py", "data/gitleaks_rules.json"} <= set(stored._RULE_MODULES)
    assert {"pii.py", "secret_context.py"} <= set(stored._POLICY_RULE_MODULES)
    assert len(stored.rules_version()) == 64
