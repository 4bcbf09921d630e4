"""Regenerate ``pii_labelled.jsonl``: ``python scripts/make_pii_labelled.py``.

Hand-written sentence templates filled with realistic values (valid checksums where the real
thing has one) and hard negatives that look like PII but are not. Seeded, so the file is stable.
Spans are recorded from the insertion offsets, never found by the detectors under test.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable
from pathlib import Path

R = random.Random(20261126)
OUT = Path(__file__).resolve().parent.parent / "policies" / "data" / "pii_labelled.jsonl"


def luhn_complete(prefix: str, length: int) -> str:
    body = prefix + "".join(R.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for check in string.digits:
        digits = body + check
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch)
            if i % 2:
                d = d * 2 - 9 if d > 4 else d * 2
            total += d
        if total % 10 == 0:
            return digits
    raise AssertionError


def group(s: str, sizes: list[int], sep: str) -> str:
    out, i = [], 0
    for n in sizes:
        out.append(s[i : i + n])
        i += n
    return sep.join(out)


def card() -> str:
    kind = R.choice(["visa", "mc", "amex", "disc"])
    if kind == "amex":
        n = luhn_complete(R.choice(["34", "37"]), 15)
        return group(n, [4, 6, 5], R.choice([" ", "-", ""]))
    prefix = {"visa": "4", "mc": R.choice(["51", "53", "55", "2221"]), "disc": "6011"}[kind]
    n = luhn_complete(prefix, 16)
    return group(n, [4, 4, 4, 4], R.choice([" ", "-", ""]))


def bad_card() -> str:
    good = luhn_complete("4", 16)
    bad = good[:-1] + str((int(good[-1]) + R.randint(1, 9)) % 10)
    return group(bad, [4, 4, 4, 4], R.choice([" ", "-"]))


IBAN_BBAN = {
    "DE": (18, "d"),
    "GB": (18, "GB"),
    "FR": (23, "d"),
    "NL": (14, "NL"),
    "ES": (20, "d"),
    "IT": (23, "IT"),
}


def _bban(country: str) -> str:
    n, style = IBAN_BBAN[country]
    if style == "GB":
        return "".join(R.choice(string.ascii_uppercase) for _ in range(4)) + "".join(
            R.choice(string.digits) for _ in range(14)
        )
    if style == "NL":
        return "".join(R.choice(string.ascii_uppercase) for _ in range(4)) + "".join(
            R.choice(string.digits) for _ in range(10)
        )
    if style == "IT":
        return R.choice(string.ascii_uppercase) + "".join(R.choice(string.digits) for _ in range(22))
    return "".join(R.choice(string.digits) for _ in range(n))


def iban(valid: bool = True) -> str:
    country = R.choice(list(IBAN_BBAN))
    bban = _bban(country)
    num = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    check = 98 - num % 97
    if not valid:
        check = (check + R.randint(1, 50)) % 97 + 2
    compact = f"{country}{check:02d}{bban}"
    return group(compact, [4] * 8, " ").strip() if R.random() < 0.6 else compact


def ssn() -> str:
    area = R.choice([n for n in range(1, 900) if n != 666])
    return f"{area:03d}-{R.randint(1, 99):02d}-{R.randint(1, 9999):04d}"


def nino() -> str:
    first = R.choice("ABCEGHJKLMNPRSTWXYZ")
    second = R.choice("ABCEGHJKLMNPRSTWXYZ")
    while first + second in {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"}:
        second = R.choice("ABCEGHJKLMNPRSTWXYZ")
    d = "".join(R.choice(string.digits) for _ in range(6))
    s = first + second + d + R.choice("ABCD")
    return group(s, [2, 2, 2, 2, 1], " ") if R.random() < 0.5 else s


def pick(makers: list[Callable[[], str]]) -> str:
    return R.choice(makers)()


def sin() -> str:
    n = luhn_complete(R.choice("1234567"), 9)
    return group(n, [3, 3, 3], R.choice(["-", " "]))


def phone() -> str:
    return pick(
        [
            lambda: f"+44 20 7946 {R.randint(0, 999):04d}",
            lambda: f"+44 7700 900{R.randint(100, 999)}",
            lambda: f"+1 415-555-{R.randint(100, 199):04d}",
            lambda: f"+1 (212) 555-{R.randint(1000, 9999)}",
            lambda: f"+49 30 {R.randint(1000000, 9999999)}",
            lambda: f"+33 1 {R.randint(10, 99)} {R.randint(10, 99)} {R.randint(10, 99)} {R.randint(10, 99)}",
            lambda: f"+91 98{R.randint(100, 999)} {R.randint(10000, 99999)}",
            lambda: f"+61 2 9{R.randint(100, 999)} {R.randint(1000, 9999)}",
            lambda: f"({R.randint(201, 989)}) {R.randint(200, 999)}-{R.randint(1000, 9999)}",
            lambda: f"{R.randint(201, 989)}-{R.randint(200, 999)}-{R.randint(1000, 9999)}",
            lambda: f"{R.randint(201, 989)}.{R.randint(200, 999)}.{R.randint(1000, 9999)}",
            lambda: f"020 7946 {R.randint(1000, 9999)}",
            lambda: f"07700 900{R.randint(100, 999)}",
            lambda: f"0{R.randint(1, 5)}" + "".join(f" {R.randint(10, 99)}" for _ in range(4)),
            lambda: f"030 {R.randint(10000000, 99999999)}",
        ]
    )


def ipv4() -> str:
    return pick(
        [
            lambda: f"192.168.{R.randint(0, 255)}.{R.randint(1, 254)}",
            lambda: f"10.{R.randint(0, 255)}.{R.randint(0, 255)}.{R.randint(1, 254)}",
            lambda: f"{R.randint(11, 223)}.{R.randint(0, 255)}.{R.randint(0, 255)}.{R.randint(1, 254)}",
        ]
    )


def ipv6() -> str:
    groups = [f"{R.randint(0, 0xFFFF):x}" for _ in range(8)]
    if R.random() < 0.5:
        return "2001:db8::" + ":".join(groups[:3])
    return ":".join(["2001", "db8", *groups[2:]])


def rand(chars: str, n: int) -> str:
    return "".join(R.choice(chars) for _ in range(n))


B62 = string.ascii_letters + string.digits
HEX = "0123456789abcdef"


def b64url(obj: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def api_key() -> tuple[str, str]:
    kind = R.choice(["aws", "ghp", "ghpat", "google", "slack", "stripe", "openai", "jwt"])
    if kind == "aws":
        return "aws_access_key_id", "AKIA" + rand(string.ascii_uppercase + string.digits, 16)
    if kind == "ghp":
        return "github_token", "ghp_" + rand(B62, 36)
    if kind == "ghpat":
        return "github_token", "github_pat_" + rand(B62, 22) + "_" + rand(B62, 59)
    if kind == "google":
        return "google_api_key", "AIza" + rand(B62 + "_-", 35)
    if kind == "slack":
        return "slack_token", f"xoxb-{R.randint(10**11, 10**12)}-{R.randint(10**11, 10**12)}-" + rand(B62, 24)
    if kind == "stripe":
        return "stripe_key", "sk_live_" + rand(B62, 24)
    if kind == "openai":
        return "openai_api_key", "sk-proj-" + rand(B62 + "_-", 48)
    header = b64url({"alg": "HS256", "typ": "JWT"})
    payload = b64url({"sub": str(R.randint(10**6, 10**7)), "name": "Ana", "iat": 1716239022})
    return "jwt", f"{header}.{payload}.{rand(B62 + '_-', 43)}"


def pem() -> str:
    label = R.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"])
    body = "\n".join(rand(B62 + "+/", 64) for _ in range(3))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----"


def secret() -> str:
    while True:
        s = rand(B62, R.choice([32, 40]))
        if any(c.isdigit() for c in s) and any(c.islower() for c in s) and any(c.isupper() for c in s):
            return s


NAMES = [
    "maria.garcia",
    "j.smith",
    "li.wei",
    "a.okafor",
    "sven+billing",
    "priya_k",
    "tom.o-brien",
    "HANNAH.LEE",
]
DOMAINS = ["example.com", "mail.example.org", "example.co.uk", "uni-example.de", "example.io"]

POSITIVE: list[tuple[str, str, str, object]] = [
    # (detector, kind or "", template with {x}, value factory)
    (
        "email",
        "email",
        "Please reply to {x} before Friday.",
        lambda: f"{R.choice(NAMES)}@{R.choice(DOMAINS)}",
    ),
    ("email", "email", "cc: {x}; thanks", lambda: f"{R.choice(NAMES)}@{R.choice(DOMAINS)}"),
    ("email", "email", "Her address ({x}) bounced twice", lambda: f"{R.choice(NAMES)}@{R.choice(DOMAINS)}"),
    ("phone", "phone", "You can reach me on {x} after 6pm.", phone),
    ("phone", "phone", "Emergency contact: {x}", phone),
    ("phone", "phone", "The clinic number is {x}, ask for Dr. Osei.", phone),
    ("phone", "phone", "call me at {x}", lambda: str(R.randint(2012000000, 9899999999))),
    ("payment_card", "payment_card", "Charge it to card {x}, expiry 09/27.", card),
    ("payment_card", "payment_card", "My card number is {x} and the CVV is on the back.", card),
    ("iban", "iban", "Transfer the deposit to IBAN {x} by Monday.", iban),
    ("iban", "iban", "Account: {x} (Sparkasse)", iban),
    ("national_id", "us_ssn", "My SSN is {x}, can you update my file?", ssn),
    ("national_id", "us_ssn", "Applicant {x} filed on time.", ssn),
    ("national_id", "uk_nino", "National Insurance number: {x}", nino),
    ("national_id", "ca_sin", "My SIN is {x} for the tax form.", sin),
    ("ip_address", "ipv4", "The login came from {x} at 03:12.", ipv4),
    ("ip_address", "ipv4", "ssh admin@{x} -p 2222", ipv4),
    ("ip_address", "ipv6", "Blocked client {x} after 40 failures.", ipv6),
    ("api_key", "", "export API_KEY={x}", api_key),
    ("api_key", "", "Why does my request fail with key {x}?", api_key),
    ("api_key", "", 'config = {{"token": "{x}"}}', api_key),
    ("private_key", "private_key", "here is the deploy key:\n{x}\nplease rotate it", pem),
    ("high_entropy", "high_entropy_string", "password: {x}", secret),
    ("high_entropy", "high_entropy_string", "DB_SECRET={x} in the .env file", secret),
    (
        "user_terms",
        "user_term",
        "Is {x} still on schedule for Q3?",
        lambda: R.choice(["Project Falcon", "project falcon"]),
    ),
    ("user_terms", "user_term", "Summarise the {x} due diligence notes", lambda: "Bluebird merger"),
    (
        "user_patterns",
        "employee_id",
        "Look up employee {x} in HR",
        lambda: f"EMP-{R.randint(100000, 999999)}",
    ),
]

NEGATIVE: list[tuple[str, object]] = [
    ("Your order ORD-2024-{x} has shipped.", lambda: str(R.randint(100000, 999999))),
    ("Order #{x} was refunded.", lambda: str(R.randint(10**7, 10**8))),
    ("Invoice INV-{x} is overdue.", lambda: f"{R.randint(0, 999999999):09d}"),
    ("The meeting moved to {x}.", lambda: f"2024-{R.randint(1, 12):02d}-{R.randint(1, 28):02d}"),
    ("Born {x} in Lyon.", lambda: f"{R.randint(1, 28):02d}/{R.randint(1, 12):02d}/{R.randint(1950, 2005)}"),
    ("He worked there from {x}.", lambda: f"{R.randint(1980, 2000)}-{R.randint(2001, 2020)}"),
    ("Timestamp {x} UTC", lambda: f"{R.randint(0, 23):02d}:{R.randint(0, 59):02d}:{R.randint(0, 59):02d}"),
    (
        "ISBN {x}",
        lambda: R.choice(["978-0-306-40615-7", "0-306-40615-2", "978-1-4028-9462-6", "9780306406157"]),
    ),
    ("Upgrade to {x} to fix the bug.", lambda: f"v{R.randint(0, 9)}.{R.randint(0, 20)}.{R.randint(0, 30)}"),
    ("Python {x} is required", lambda: f"3.{R.randint(8, 13)}.{R.randint(0, 12)}"),
    ("Windows build {x}", lambda: f"10.0.{R.randint(19041, 22631)}.{R.randint(1000, 4000)}"),
    ("git checkout {x}", lambda: rand("0123456789abcdef", 40)),
    ("sha256: {x}", lambda: rand("0123456789abcdef", 64)),
    ("md5 {x} matches", lambda: rand("0123456789abcdef", 32)),
    (
        "request id {x}",
        lambda: f"{rand(HEX, 8)}-{rand(HEX, 4)}-4{rand(HEX, 3)}-a{rand(HEX, 3)}-{rand(HEX, 12)}",
    ),
    ("Card {x} was declined as invalid.", bad_card),
    ("The form rejected {x} (bad checksum).", lambda: iban(valid=False)),
    (
        "Test SSN {x} is never issued.",
        lambda: R.choice(["000-12-3456", "666-45-1234", "912-34-5678", "123-00-4567"]),
    ),
    ("MAC {x} joined the network", lambda: ":".join(rand("0123456789abcdef", 2) for _ in range(6))),
    (
        "Use {x} for the buffer.",
        lambda: R.choice(["std::vector<int>", "std::map<K, V>", "crate::store::open", "Foo::Bar::baz"]),
    ),
    ("Decorate it with {x}.", lambda: R.choice(["@dataclass", "@pytest.fixture", "@app.get('/items')"])),
    ("The retina asset is {x}.", lambda: R.choice(["icon@2x.png", "logo@3x.jpg", "sprite@2x.svg"])),
    ("Install {x} first.", lambda: R.choice(["scikit-learn", "sk-learn-wrapper", "torch==2.4.0"])),
    (
        "Call {x}() to refresh.",
        lambda: R.choice(
            ["getUserAccountBalanceV2", "ThisIsAVeryLongCamelCaseIdentifier2", "refreshOAuthTokenIfExpired"]
        ),
    ),
    ("Tracking number {x}", lambda: "1Z" + rand(string.ascii_uppercase + string.digits, 16)),
    (
        "The flat costs ${x} per year.",
        lambda: f"{R.randint(1, 99)},{R.randint(100, 999)},{R.randint(100, 999)}.{R.randint(10, 99)}",
    ),
    ("The file is {x} bytes.", lambda: str(R.randint(10**9, 10**11))),
    ("Ship to ZIP {x}", lambda: f"{R.randint(10000, 99999)}-{R.randint(1000, 9999)}"),
    ("Coordinates {x}", lambda: f"{R.uniform(-80, 80):.4f}, {R.uniform(-170, 170):.4f}"),
    ("Listen on {x} for local tests", lambda: R.choice(["127.0.0.1:8000", "0.0.0.0", "localhost:5173"])),
    ("Netmask {x}", lambda: R.choice(["255.255.255.0", "255.255.0.0"])),
    ("Batch {x} finished", lambda: str(R.randint(2012000000, 9899999999))),
    ("Room {x}, building C", lambda: f"{R.randint(100, 999)}-{R.randint(10, 99)}"),
    ("Press {x} to continue", lambda: R.choice(["Ctrl+Alt+Del", "Cmd+Shift+P"])),
    ("Score was {x}", lambda: f"{R.randint(0, 9)}-{R.randint(0, 9)}"),
]

PLAIN = [
    "What is the capital of Australia?",
    "How do I reset my router to factory settings?",
    "Summarise the attached quarterly report in three bullet points.",
    "Which river flows through Vienna?",
    "Compare vector databases for a small on-device index.",
    "Why is my sourdough starter not rising?",
    "Translate 'good morning' into Japanese.",
    "List the planets in order of distance from the sun.",
    "What does HTTP status 503 mean?",
    "Recommend a beginner-friendly hiking trail near Denver.",
    "Explain Reciprocal Rank Fusion in two sentences.",
    "How many tablespoons are in a cup?",
    "What year did the Berlin Wall fall? It fell in 1989.",
    "Chapter 12, verse 4, page 381.",
    "The recipe needs 250 g flour, 2 eggs and 1.5 dl milk.",
    "Flight LH 400 departs at 13:50 from gate B44.",
]


# Hand-written hard cases, kept whatever the detectors make of them (some are known misses).
HARD: list[tuple[str, list[tuple[str, str, str]]]] = [
    # (text, [(exact substring, kind, detector)])
    ("my number is 555 0132, ring after lunch", [("555 0132", "phone", "phone")]),
    ("write to john dot smith at example dot com", [("john dot smith at example dot com", "email", "email")]),
    ("pay into de89370400440532013000 please", [("de89370400440532013000", "iban", "iban")]),
    ("nino ab123456c on the payslip", [("ab123456c", "uk_nino", "national_id")]),
    (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        [("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "high_entropy_string", "high_entropy")],
    ),
    ("Call +1 800 555 0199 ext. 23 for the pharmacy", [("+1 800 555 0199", "phone", "phone")]),
    ("Tel. 0044 20 7946 0123", [("0044 20 7946 0123", "phone", "phone")]),
    (
        "IP was 2001:0db8:85a3:0000:0000:8a2e:0370:7334 in the log",
        [("2001:0db8:85a3:0000:0000:8a2e:0370:7334", "ipv6", "ip_address")],
    ),
    ("Updated the driver to version 4.2.1.0 yesterday", []),
    (
        "<img src='data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
        "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=='>",
        [],
    ),
    ("The password must be at least 12 characters long", []),
    ("Ticket SUP-2024-0042 references commit a1b2c3d", []),
    ("Call 1-800-FLOWERS for same day delivery", []),
    ("Cite as doi:10.1038/s41586-020-2649-2", []),
]


def main() -> None:
    rows: list[dict[str, object]] = []

    def add(text: str, spans: list[dict[str, object]], note: str) -> None:
        rows.append({"id": len(rows), "text": text, "spans": spans, "note": note})

    for _ in range(6):
        for detector, kind, tpl, make in POSITIVE:
            value = make()  # type: ignore[operator]
            if detector == "api_key":
                kind, value = value
            pre, post = tpl.split("{x}")
            start = len(pre)
            add(
                pre + value + post,
                [{"start": start, "end": start + len(value), "kind": kind, "detector": detector}],
                "positive",
            )
    for _ in range(12):  # two findings in one text
        d1, k1, _, m1 = R.choice(POSITIVE[:18])
        d2, k2, _, m2 = R.choice(POSITIVE[:18])
        v1, v2 = m1(), m2()  # type: ignore[operator]
        text = f"Contact {v1} or, if unavailable, {v2}."
        s1 = len("Contact ")
        s2 = s1 + len(v1) + len(" or, if unavailable, ")
        add(
            text,
            [
                {"start": s1, "end": s1 + len(v1), "kind": k1, "detector": d1},
                {"start": s2, "end": s2 + len(v2), "kind": k2, "detector": d2},
            ],
            "positive",
        )
    for _ in range(3):
        for tpl, make in NEGATIVE:
            add(tpl.replace("{x}", make()), [], "hard_negative")  # type: ignore[operator]
    for text in PLAIN:
        add(text, [], "negative")
    for text, labels in HARD:
        spans: list[dict[str, object]] = []
        for sub, kind, detector in labels:
            start = text.index(sub)
            spans.append({"start": start, "end": start + len(sub), "kind": kind, "detector": detector})
        add(text, spans, "hard_positive" if labels else "hard_negative")
    with OUT.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} rows to {OUT}")


if __name__ == "__main__":
    main()
