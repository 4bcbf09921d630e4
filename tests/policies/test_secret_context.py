"""Secret look-alikes stay unflagged and real secrets stay found (issue 19, secrets with precision).

The look-alikes are the kinds gitleaks' allowlists and detect-secrets' filters name: placeholders,
templates, AWS's documented example keys, UUIDs and hashes under keys that name an id, identifiers.
"""

from __future__ import annotations

import pytest

from edgeroute.framework.pii.patterns import pattern_spans
from edgeroute.policies.config import PiiConfig
from edgeroute.policies.secret_context import filler_share, is_identifier, is_placeholder

LOOKALIKES = [
    'api_key = "xxxxxxxxxxxxxxxxxxxxxxxxxxxx"',
    "token: <token>",
    'password = "${DB_PASSWORD}"',
    "secret_key = your-secret-key-here",
    "key AKIAIOSFODNN7EXAMPLE leaked",
    "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "commit = 9a038989604e8da62ecddbe2094b16ce1b778be1",
    "credentialsId: 'ff083f76-7804-4ef1-80e4-fe975bb9141b'",
    "report_access_id: e8e4df51-2054-49b0-ab1c-516ac95c691d",
    "pub const X509_pubkey_st = struct_X509_pubkey_st;",
    "key_length = XSalsa20.key_length",
    "IceSSL.KeyFile=s_rsa1024_priv.pem",
    'const validKeyChars = "0123456789abcdefghijklmnopqrstuvwxyz_-."',
    'public_key = "9Cnzj4p4WGeKLs1Pt8QuKUpRKfFLfRYC9AIKjbJTWit"',
    "https://docs.google.com/document/d/1W7KCxOxP-1Fy5EyF2lbJGE2WuKmu5v0suYqoHas1jRM",
]
SECRETS = [
    'password = "Zf3D0LXCM3EIMbgJpUNnkRtOfOueHznB"',
    'utils.GetEnvOrDefault("api_token", "dafa7817-e246-48f3-91a7-e87653d587b8")',
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCY7Qz4mK2vLp",
    "key AKIAZ7QW3RT5YU2IOP4M leaked",
    "xoxb-482915730264-Qm7Tz2Lk9Wp4Xr1",
    '"client_secret" : "6da89121079f83b2eb6acccf8219ea982c3d79bccc3e9c6a85856480661f8fde",',
]


@pytest.mark.parametrize("text", LOOKALIKES)
def test_lookalikes_are_not_flagged(text: str) -> None:
    assert pattern_spans(text, PiiConfig(), ("US",)) == []


@pytest.mark.parametrize("text", SECRETS)
def test_secrets_are_still_found(text: str) -> None:
    assert pattern_spans(text, PiiConfig(), ("US",)) != []


def test_filler_and_identifier_shapes() -> None:
    assert filler_share("xxxxxxxx") == 1.0 and filler_share("Zf3D0LXCM3EIMbgJpUNnkRtOfOueHznB") == 0.0
    # A base64 token with a run of zero bytes is not filler: the run is a small share of it.
    assert not is_placeholder("hvb.AAAAAQJgxDgqsGNorpoOR7hPZ5SU-ynBvCl764jyRP_fnX7WvkdkDzGjbLNGdPdtlY33")
    assert is_identifier("DOC_Vector_5_32") and is_identifier("rc0.15.0_20231217_1420-SNAPSHOT")
    assert not is_identifier("CLOJARS_34bf0e88955ff5a1c328d6a7491acc4f48e865a7b8dd4d70a70749037443")
