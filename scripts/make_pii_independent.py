"""Regenerate the independent PII evaluation set: ``python scripts/make_pii_independent.py``.

Written separately from the head's training generator (scripts/pii_head_data.py) and from the detectors:
other Faker locales (en_GB, en_AU, es_MX, es_AR, de_AT, fr_CA, it_IT, ja_JP), other templates (record
dumps, clinical notes in SOAP style, letters, support chats), other value formats, PII-free texts of the
same genres, and secret-scanner-style fixtures (provider tokens in config files and code, and look-alikes:
digests, UUIDs, placeholders, base64 media). Spans are the insertion offsets of the filled values. Seeded.
See framework/eval/data/README.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import re
import string
import sys
import uuid
from pathlib import Path

from faker import Faker

SEED = 20261202
OUT = Path(__file__).resolve().parent.parent / "framework" / "eval" / "data" / "pii_independent.jsonl"
R = random.Random(SEED)
_DE = Faker("de_DE")
_DE.seed_instance(SEED)
_MX = Faker("es_MX")
_MX.seed_instance(SEED)

PII_LOCALES = {
    "en": ["en_GB", "en_AU"],
    "es": ["es_MX", "es_AR"],
    "de": ["de_AT"],
    "fr": ["fr_CA"],
    "it": ["it_IT"],
    "ja": ["ja_JP"],
}

SLOT = re.compile(r"\{(\w+)\}")

CONDITIONS = {
    "en": [
        "congestive heart failure",
        "Crohn's disease",
        "rheumatoid arthritis",
        "prostate cancer",
        "generalised anxiety disorder",
        "sickle cell anaemia",
        "Parkinson's disease",
        "gestational diabetes",
    ],
    "es": [
        "insuficiencia renal aguda",
        "artritis reumatoide",
        "cáncer colorrectal",
        "trastorno de ansiedad",
        "hipotiroidismo",
        "tuberculosis pulmonar",
        "fibrilación auricular",
        "lupus eritematoso",
    ],
    "de": ["Herzinsuffizienz", "Morbus Crohn", "Prostatakarzinom"],
    "fr": ["insuffisance cardiaque", "maladie de Crohn", "polyarthrite rhumatoïde"],
    "it": ["insufficienza cardiaca", "morbo di Crohn", "diabete di tipo 1"],
    "ja": ["心不全", "関節リウマチ", "胃がん"],
}
DRUGS = [
    "apixaban 5 mg",
    "furosemida 40 mg",
    "prednisone",
    "adalimumab",
    "bisoprolol 2.5 mg",
    "levodopa",
    "quetiapina 25 mg",
    "allopurinol",
    "clopidogrel 75 mg",
    "Eliquis",
    "Ozempic 1 mg",
]

TEMPLATES = {
    "en": [
        "PATIENT: {name}\nDOB: {dob}   AGE: {age}\nADDR: {street}, {town} {post}\nHx: {cond}",
        "S: {first} {last} presents with worsening dyspnoea. O: BP 150/90. A: {cond}. P: start {drug}.",
        "Ref letter — re: {name} (NHS no. {nhs}), {street}, {town}. Seen {visit}.",
        '{{"customer": "{name}", "address": "{street}, {town}", "dob": "{dob}"}}',
        "hey, this is {first} — my new place is {street}, {town}. can you update my account?",
        "Agent: Could you confirm your date of birth? Customer ({name}): it's {dob}.",
        "We regret to inform {name} of {street} that the claim filed on {visit} was declined.",
        "Emp. record: {name}; employer {company}; started {visit}; home {street} {post}.",
        "{name}, aged {age}, resident of {town}, attended A&E on {visit} with chest pain.",
        "Please forward to {name} <{email}> or call {phone_intl}.",
        "Booking confirmed for {name}, passport holder, staying at {street}, {town}, on {visit}.",
        "Is it normal for my son {first}, {age}, to still wet the bed? We live in {town}.",
        "what can {name} expect after surgery for {cond}?",
        "Transfer to IBAN {iban} in the name of {name}.",
        "Mother: {name}. Contact: {phone_nat}. Allergies: penicillin. Dx: {cond}.",
    ],
    "es": [
        "PACIENTE: {name}\nF. NAC.: {dob}\nEDAD: {age} años\nDOMICILIO: {street}, {town}\nAntecedentes: {cond}",
        "Se trata de {first} {last}, de {age} años, que acude el {visit} por {cond}. Se pauta {drug}.",
        "Evolución: {name} refiere mejoría. Vive con su hija en {street}, {town}.",
        "Hola, me llamo {name} y quiero cambiar mi dirección a {street}, CP {post}.",
        "¿Es grave que {name}, nacida el {dob}, tenga {cond}?",
        "Informe clínico de {name}. Fecha de ingreso: {visit}. Diagnóstico principal: {cond}.",
        "Datos del titular: {name}, CURP {curp}, domicilio {street}.",
        "Llamar a {name} al {phone_nat} para confirmar la cita del {visit}.",
        "La paciente, {name}, trabajadora de {company}, fue dada de alta el {visit}.",
        "Varón, {age} a., natural de {town}. AP: {cond}. Tto. habitual: {drug}.",
    ],
    "de": [
        "Patientin {name}, geb. {dob}, wohnhaft in {street}, {post} {town}. Befund: {cond}.",
        "Sehr geehrte Frau {last}, Ihr Termin am {visit} in unserer Praxis ist bestätigt.",
        "Kunde {name} ({email}) möchte die Lieferadresse auf {street} ändern.",
    ],
    "fr": [
        "Madame {name}, née le {dob}, demeurant au {street}, {town}, est suivie pour {cond}.",
        "Bonjour, c'est {first}, j'ai déménagé au {street} à {town}.",
        "Dossier de {name}, {age} ans, admis le {visit}.",
    ],
    "it": [
        "Paziente {name}, nato il {dob}, residente in {street}, {town}. Diagnosi: {cond}.",
        "Gentile {name}, la sua visita del {visit} è confermata. Codice fiscale: {cf}.",
    ],
    "ja": [
        "患者名：{name}　生年月日：{dob}　住所：{town}{street}　診断：{cond}",
        "{name}様、{visit}のご予約を承りました。",
        "私は{name}です。{town}に住んでいます。",
    ],
}

CLEAN = {
    "en": [
        "S: patient reports improvement. O: afebrile, BP 128/80. A: stable. P: continue current plan.",
        "Heart failure is managed with diuretics, beta blockers and ACE inhibitors.",
        "The ward round starts at 8 am; nurses hand over at 7.30.",
        "Our store on the high street is closed on bank holidays.",
        "The Prime Minister spoke in Parliament on Wednesday about the budget.",
        "Take {drug} with food; do not exceed the stated dose.",
        "Returns are accepted within 30 days with the original receipt.",
        "The 2012 Olympic Games were held in London.",
        "How many calories are in a banana?",
        "what are the early symptoms of {cond}?",
        "Invoice totals for March were 4,310 pounds, up from 3,900 in February.",
        "The iPad Air 5th generation has an M1 chip and 64 GB of storage.",
        "Trial participants were aged between 18 and 65 years.",
        "Discharge criteria: tolerating oral intake, pain controlled, mobile with assistance.",
        "Premier League fixtures for the weekend were published on Friday.",
        "Set the oven to 180 degrees and bake for 25 minutes.",
        "Version 2.14.1 fixes a crash on startup.",
        "Queen Elizabeth II reigned from 1952 to 2022.",
    ],
    "es": [
        "Evolución favorable. Afebril. Tensión arterial 125/80. Se mantiene el tratamiento.",
        "La insuficiencia renal aguda suele ser reversible si se trata a tiempo.",
        "El horario de visitas es de 16 a 20 horas.",
        "El presidente del Gobierno compareció ayer en el Congreso.",
        "¿Cuántas horas debe dormir un adulto?",
        "Tome {drug} después de las comidas.",
        "El Real Madrid ganó la Liga en 2024.",
        "La consulta de cardiología se traslada a la segunda planta.",
        "¿Cuáles son los efectos secundarios de {drug}?",
        "El estudio incluyó a 320 pacientes mayores de 60 años.",
        "Las rebajas de enero empiezan el día 7.",
        "Pauta: control analítico en tres meses y revisión en consulta.",
    ],
    "de": ["Die Sprechstunde beginnt um 8 Uhr.", "Herzinsuffizienz wird mit Diuretika behandelt."],
    "fr": [
        "La consultation a lieu le matin.",
        "L'insuffisance cardiaque touche surtout les personnes âgées.",
    ],
}


def _fill_value(f: Faker, lang: str, slot: str, cache: dict[str, str]) -> tuple[str, str | None]:
    if slot in cache:
        return cache[slot], None
    if slot == "name":
        return f.name(), "person"
    if slot == "first":
        v = f.first_name()
        cache["first_label"] = v
        return v, "person"
    if slot == "last":
        return f.last_name(), "person"
    if slot == "street":
        return f.street_address(), "street_address"
    if slot == "town":
        return f.city(), "location"
    if slot == "post":
        return f.postcode(), "location"
    if slot == "dob":
        d = f.date_of_birth(minimum_age=18, maximum_age=90)
        return d.strftime(R.choice(["%d/%m/%Y", "%d %B %Y", "%Y-%m-%d", "%d.%m.%Y"])), "date"
    if slot == "visit":
        d = f.date_between("-2y", "today")
        return d.strftime(R.choice(["%d/%m/%Y", "%d %b %Y", "%d-%m-%Y"])), "date"
    if slot == "age":
        return str(R.randint(18, 94)), "age"
    if slot == "cond":
        return R.choice(CONDITIONS[lang]), "health"
    if slot == "drug":
        return R.choice(DRUGS), "health"
    if slot == "company":
        return f.company(), "organization"
    if slot == "email":
        return f.email(), "email"
    if slot == "phone_intl":
        cc, rest = R.choice(
            [("+44", "7700 900{:03d}"), ("+61", "412 555 {:03d}"), ("+52", "55 1234 5{:03d}")]
        )
        return f"{cc} {rest.format(R.randint(0, 999))}", "phone"
    if slot == "phone_nat":
        return R.choice(["020 7946 0{:03d}", "(55) 5555 0{:03d}", "0412 345 {:03d}"]).format(
            R.randint(0, 999)
        ), "phone"
    if slot == "nhs":
        while True:
            d = [R.randint(0, 9) for _ in range(9)]
            c = 11 - sum((10 - i) * x for i, x in enumerate(d)) % 11
            c = 0 if c == 11 else c
            if c != 10:
                s = "".join(map(str, d)) + str(c)
                return f"{s[:3]} {s[3:6]} {s[6:]}", "id_number"
    if slot == "iban":
        return _DE.iban(), "iban"
    if slot == "curp":
        return _MX.curp(), "id_number"
    if slot == "cf":
        return "RSSMRA85T10A562S", "id_number"
    raise KeyError(slot)


def render(f: Faker, lang: str, template: str, pii: bool) -> dict[str, object]:
    out: list[str] = []
    spans: list[dict[str, object]] = []
    pos = length = 0
    cache: dict[str, str] = {}
    t = template.replace("{{", "\x00").replace("}}", "\x01")
    for m in SLOT.finditer(t):
        lit = t[pos : m.start()].replace("\x00", "{").replace("\x01", "}")
        out.append(lit)
        length += len(lit)
        value, label = _fill_value(f, lang, m.group(1), cache)
        if label is not None and pii and label != "health":
            spans.append({"start": length, "end": length + len(value), "label": label})
        elif label == "health" and pii:
            spans.append({"start": length, "end": length + len(value), "label": "health"})
        out.append(value)
        length += len(value)
        pos = m.end()
    out.append(t[pos:].replace("\x00", "{").replace("\x01", "}"))
    return {"text": "".join(out), "spans": spans, "lang": lang}


def _rand(alphabet: str, n: int) -> str:
    return "".join(R.choice(alphabet) for _ in range(n))


AN = string.ascii_letters + string.digits


def secret_fixtures() -> list[dict[str, object]]:
    """Config files and code with real-format tokens (positives) and look-alikes (negatives)."""
    tokens = [
        ("AKIA" + _rand(string.ascii_uppercase + "234567", 16), "aws"),
        ("ghp_" + _rand(AN, 36), "github"),
        ("glpat-" + _rand(AN, 20), "gitlab"),
        ("xoxb-" + _rand(string.digits, 12) + "-" + _rand(string.digits, 12) + "-" + _rand(AN, 24), "slack"),
        ("sk_live_" + _rand(AN, 24), "stripe"),
        ("AIza" + _rand(AN + "_-", 35), "google"),
        ("npm_" + _rand(string.ascii_lowercase + string.digits, 36), "npm"),
        ("SG." + _rand(AN, 22) + "." + _rand(AN, 43), "sendgrid"),
        ("hf_" + _rand(string.ascii_letters, 34), "huggingface"),
        ("dop_v1_" + _rand("0123456789abcdef", 64), "digitalocean"),
        (_rand(AN, 40), "generic"),
    ]
    wrappers = [
        "export {VAR}={TOK}",
        '{VAR} = "{TOK}"',
        "const client = new Client({{ apiKey: '{TOK}' }});",
        "  {var}: {TOK}",
        'curl -H "Authorization: Bearer {TOK}" https://api.example.com/v1/items',
        'os.environ["{VAR}"] = "{TOK}"',
        'password: "{TOK}"',
    ]
    rows: list[dict[str, object]] = []
    for _ in range(3):
        for tok, name in tokens:
            tok = {"aws": "AKIA" + _rand(string.ascii_uppercase + "234567", 16), "ghp": tok}.get(name, tok)
            w = R.choice(wrappers)
            var = R.choice(["API_KEY", "SECRET_TOKEN", "ACCESS_KEY", "AUTH_TOKEN", "DB_PASSWORD"])
            text = w.replace("{VAR}", var).replace("{var}", var.lower())
            start = text.index("{TOK}")
            text = text.replace("{TOK}", tok)
            text = text.replace("{{", "{").replace("}}", "}")
            start = text.index(tok)
            rows.append(
                {
                    "text": text,
                    "spans": [{"start": start, "end": start + len(tok), "label": "secret"}],
                    "lang": "code",
                    "genre": "secret",
                }
            )
    lookalikes = [
        lambda: f"sha256: {hashlib.sha256(_rand(AN, 10).encode()).hexdigest()}",
        lambda: f'request_id = "{uuid.UUID(int=R.getrandbits(128))}"',
        lambda: "API_KEY=YOUR_API_KEY_HERE",
        lambda: "token: ${{ secrets.GITHUB_TOKEN }}",
        lambda: f"commit {hashlib.sha1(_rand(AN, 8).encode()).hexdigest()}",
        lambda: (
            f'<img src="data:image/png;base64,{base64.b64encode(bytes(R.getrandbits(8) for _ in range(45))).decode()}">'
        ),
        lambda: "version: 3.11.4-alpine",
        lambda: "password: ${DB_PASSWORD}",
        lambda: 'key_name = "user_profile_settings"',
        lambda: "const TOKEN_EXPIRY_SECONDS = 3600;",
        lambda: f'etag: W/"{_rand("0123456789abcdef", 32)}"',
        lambda: "auth: false",
        lambda: "import { AuthProvider } from './auth/AuthProvider';",
        lambda: f"docker pull ghcr.io/org/app@sha256:{hashlib.sha256(_rand(AN, 5).encode()).hexdigest()}",
        lambda: "secret_santa_budget = 25",
    ]
    for _ in range(3):
        for make in lookalikes:
            rows.append({"text": make(), "spans": [], "lang": "code", "genre": "secret"})
    return rows


def main() -> None:
    # Some Faker locales (it_IT cities) iterate over sets: string hashing must be fixed for a stable file.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})
    rows: list[dict[str, object]] = []
    for lang, locales in PII_LOCALES.items():
        reps = {"en": 7, "es": 9}.get(lang, 5)
        for loc in locales:
            f = Faker(loc)
            f.seed_instance(SEED)
            for t in TEMPLATES[lang]:
                for _ in range(max(1, reps // len(locales))):
                    rows.append(render(f, lang, t, True) | {"genre": "pii"})
    for lang, templates in CLEAN.items():
        f = Faker({"en": "en_GB", "es": "es_MX", "de": "de_AT", "fr": "fr_CA"}[lang])
        f.seed_instance(SEED)
        for t in templates:
            for _ in range(4 if "{" in t else 2):
                rows.append(render(f, lang, t, False) | {"genre": "clean"})
    rows.extend(secret_fixtures())
    R.shuffle(rows)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8") as fh:
        for i, row in enumerate(rows):
            fh.write(json.dumps({"id": i, **row}, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} rows to {OUT}")


if __name__ == "__main__":
    main()
