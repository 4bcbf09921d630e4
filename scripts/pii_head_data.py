"""Training data for the PII token-classification head (used by ``scripts/train-pii-head``).

Everything here is generated, never taken from a PII benchmark corpus:

- positives: hand-written sentence templates (records, clinical notes, letters, chat questions) in six
  languages, slots filled by Faker (en_US, es_ES, de_DE, fr_FR, ru_RU, zh_CN) with seeded randomness; the
  labelled spans are the insertion offsets of each slot value;
- negatives with look-alikes: product names, public figures in news, dates in non-personal contexts,
  generic clinical prose (no patient), and plain sentences from the SciFact and XQuAD corpora in
  ``../shared/data`` (only XQuAD articles with an even index, so odd articles stay unseen for measuring
  the routing cost on their queries).

The evaluation set in ``framework/eval/data/pii_independent.jsonl`` is built by a separate generator
(``scripts/make_pii_independent.py``) with separately written templates and other locales.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path

from faker import Faker

KINDS = ("person", "street_address", "location", "date", "age", "organization", "id_number", "health")
LOCALES = {"en": "en_US", "es": "es_ES", "de": "de_DE", "fr": "fr_FR", "ru": "ru_RU", "zh": "zh_CN"}

# --- slot vocabularies --------------------------------------------------------------------------------

DIAGNOSES = {
    "en": [
        "type 2 diabetes",
        "stage II non-small-cell lung cancer",
        "major depressive disorder",
        "HIV infection",
        "chronic kidney disease",
        "hypertension",
        "bipolar disorder",
        "multiple sclerosis",
        "asthma",
        "hepatitis C",
        "breast cancer",
        "epilepsy",
        "COPD",
        "atrial fibrillation",
        "schizophrenia",
    ],
    "es": [
        "diabetes mellitus tipo 2",
        "cáncer de pulmón",
        "hipertensión arterial",
        "insuficiencia cardiaca",
        "depresión mayor",
        "infección por VIH",
        "enfermedad renal crónica",
        "asma bronquial",
        "carcinoma de mama",
        "cirrosis hepática",
        "epilepsia",
        "EPOC",
        "neumonía adquirida en la comunidad",
    ],
    "de": [
        "Diabetes mellitus Typ 2",
        "Lungenkarzinom",
        "arterielle Hypertonie",
        "Depression",
        "Brustkrebs",
        "chronische Niereninsuffizienz",
        "Asthma bronchiale",
        "Multiple Sklerose",
        "Epilepsie",
    ],
    "fr": [
        "diabète de type 2",
        "cancer du poumon",
        "hypertension artérielle",
        "dépression sévère",
        "insuffisance rénale chronique",
        "sclérose en plaques",
        "asthme",
        "cancer du sein",
    ],
    "ru": ["сахарный диабет 2 типа", "рак лёгкого", "артериальная гипертензия", "депрессия", "астма"],
    "zh": ["二型糖尿病", "肺癌", "高血压", "抑郁症", "慢性肾病", "哮喘"],
}
MEDICATIONS = [
    "metformin 850 mg",
    "lisinopril",
    "atorvastatin 20 mg",
    "insulin glargine",
    "sertraline",
    "omeprazol 20 mg",
    "enalapril",
    "paracetamol 1 g",
    "ibuprofeno 600 mg",
    "levothyroxine",
    "warfarin",
    "salbutamol",
    "Metformin 1000 mg",
    "amoxicilina",
    "Ramipril 5 mg",
    "tamoxifen",
]
ID_PREFIX = {
    "en": ["MRN", "Patient ID", "Member ID", "Case no.", "Policy number", "Account"],
    "es": ["NHC", "Nº de historia", "DNI", "Nº de afiliación", "CIP"],
    "de": ["Patienten-ID", "Versichertennummer", "Fallnummer", "Aktenzeichen"],
    "fr": ["N° de dossier", "N° de sécurité sociale", "Identifiant patient"],
    "ru": ["Полис ОМС", "Номер карты"],
    "zh": ["病历号", "身份证号"],
}


def _id_value(r: random.Random, f: Faker, lang: str) -> str:
    choice = r.random()
    if lang == "es" and choice < 0.4:
        return str(f.nif())
    if choice < 0.5:
        return "".join(r.choice("0123456789") for _ in range(r.randint(6, 10)))
    if choice < 0.8:
        return (
            r.choice("ABCDEFGHJKMNPRSTUVWXYZ")
            + r.choice("ABCDEFGHJKMNPRSTUVWXYZ")
            + "-"
            + "".join(r.choice("0123456789") for _ in range(r.randint(5, 8)))
        )
    return (
        "".join(r.choice("0123456789") for _ in range(3))
        + "-"
        + "".join(r.choice("0123456789") for _ in range(4))
        + "-"
        + "".join(r.choice("0123456789") for _ in range(3))
    )


def _date(r: random.Random, f: Faker, lang: str, birth: bool) -> str:
    d = f.date_of_birth(minimum_age=1, maximum_age=95) if birth else f.date_between("-3y", "today")
    fmt = r.choice(
        {
            "en": ["%m/%d/%Y", "%B %d, %Y", "%Y-%m-%d", "%d %b %Y", "%m/%d/%y"],
            "es": ["%d/%m/%Y", "%d-%m-%Y", "%d/%m/%y", "%Y-%m-%d"],
            "de": ["%d.%m.%Y", "%d.%m.%y", "%Y-%m-%d"],
            "fr": ["%d/%m/%Y", "%d/%m/%y", "%Y-%m-%d"],
            "ru": ["%d.%m.%Y"],
            "zh": ["%Y-%m-%d", "%Y年%m月%d日"],
        }[lang]
    )
    out = d.strftime(fmt)
    if lang == "es" and r.random() < 0.3:
        months = [
            "enero",
            "febrero",
            "marzo",
            "abril",
            "mayo",
            "junio",
            "julio",
            "agosto",
            "septiembre",
            "octubre",
            "noviembre",
            "diciembre",
        ]
        out = f"{d.day} de {months[d.month - 1]} de {d.year}"
    if lang == "fr" and r.random() < 0.3:
        months = [
            "janvier",
            "février",
            "mars",
            "avril",
            "mai",
            "juin",
            "juillet",
            "août",
            "septembre",
            "octobre",
            "novembre",
            "décembre",
        ]
        out = f"{d.day} {months[d.month - 1]} {d.year}"
    if lang == "de" and r.random() < 0.3:
        months = [
            "Januar",
            "Februar",
            "März",
            "April",
            "Mai",
            "Juni",
            "Juli",
            "August",
            "September",
            "Oktober",
            "November",
            "Dezember",
        ]
        out = f"{d.day}. {months[d.month - 1]} {d.year}"
    return out


def _address(r: random.Random, f: Faker, lang: str) -> str:
    street = f.street_address()
    if r.random() < 0.5:
        if lang == "en":
            street += f", {f.city()}, {f.state_abbr()} {f.postcode()}"
        elif lang in ("es", "de", "fr"):
            street += f", {f.postcode()} {f.city()}"
    return street


def _person(r: random.Random, f: Faker, lang: str) -> str:
    p = r.random()
    if lang in ("ru", "zh"):
        return f.name()
    if p < 0.15:
        return f.last_name()
    if p < 0.3:
        return f"{f.first_name()[0]}. {f.last_name()}"
    if p < 0.4 and lang == "en":
        return f.name().upper()
    return f"{f.first_name()} {f.last_name()}"


def fill(r: random.Random, f: Faker, lang: str, slot: str) -> tuple[str, str | None]:
    """The text for ``slot`` and the kind it is labelled with (None: not PII, e.g. a phone the pattern
    layer handles)."""
    if slot in ("person", "person2"):
        return _person(r, f, lang), "person"
    if slot == "first":
        return f.first_name(), "person"
    if slot == "address":
        return _address(r, f, lang), "street_address"
    if slot == "city":
        return f.city(), "location"
    if slot == "dob":
        return _date(r, f, lang, True), "date"
    if slot == "date":
        return _date(r, f, lang, False), "date"
    if slot == "age":
        return str(r.randint(1, 97)), "age"
    if slot == "org":
        return f.company(), "organization"
    if slot == "id":
        return f"{r.choice(ID_PREFIX[lang])} {_id_value(r, f, lang)}", "id_number"
    if slot == "idv":
        return _id_value(r, f, lang), "id_number"
    if slot == "dx":
        return r.choice(DIAGNOSES[lang]), "health"
    if slot == "med":
        return r.choice(MEDICATIONS), "health"
    if slot == "phone":
        return f.phone_number(), None
    if slot == "email":
        return f.email(), None
    raise KeyError(slot)


TEMPLATES: dict[str, list[str]] = {
    "en": [
        "Patient {person}, {age}, of {address}. Diagnosis: {dx}.",
        "Patient {person}, born {dob}, lives at {address} — what is her prognosis?",
        "{person} (DOB {dob}) was admitted on {date} with {dx}; started on {med}.",
        "Name: {person}\nDate of birth: {dob}\nAddress: {address}\n{id}",
        "Please update the shipping address for {person} to {address}.",
        "Hi, I'm {person} and I live in {city}. Can you check my claim?",
        "{id} — {person}, {age} y/o, referred by Dr. {person2} for {dx}.",
        "Customer {person} called about invoice; she works at {org}.",
        "Send the contract to {person} at {org}, {address}.",
        "My name is {person}, my date of birth is {dob} and my {id}.",
        "Discharge summary: {person} was treated for {dx} and discharged on {date}.",
        "Mr. {person} reports chest pain since {date}. History of {dx}. Meds: {med}.",
        "is {person} from {city} eligible for the loan? born {dob}",
        "Employee {person} ({id}) joined {org} on {date}.",
        "What dose of {med} should {first}, age {age}, take for {dx}?",
        "Tenant: {person}, {address}. Lease starts {date}.",
        "{person} visited the clinic on {date} complaining of headaches.",
        "Dear {person}, your appointment on {date} at our {city} office is confirmed.",
        "how do I tell my boss {person} at {org} that I have {dx}?",
        "Emergency contact for {person}: {person2}, {address}.",
        "The {age}-year-old man from {city} was diagnosed with {dx} in {date}.",
        "Beneficiary {person}, {id}, address {address}.",
    ],
    "es": [
        "Paciente {person}, de {age} años, con domicilio en {address}. Diagnóstico: {dx}.",
        "{person}, nacido el {dob}, ingresa el {date} por {dx}. Tratamiento: {med}.",
        "Mujer de {age} años, {person}, {id}, residente en {city}, con antecedentes de {dx}.",
        "Nombre: {person}\nFecha de nacimiento: {dob}\nDirección: {address}",
        "Hola, soy {person} y vivo en {address}, ¿pueden revisar mi factura?",
        "El paciente {person} acude a consulta el {date} refiriendo dolor torácico.",
        "¿Qué pronóstico tiene {person}, diagnosticada de {dx} el {date}?",
        "Remitido por el Dr. {person2} del hospital de {city}. {id}.",
        "{person} trabaja en {org} desde el {date}.",
        "Informe de alta: {person}, {age} años, {dx}, alta el {date}.",
        "Enviar la documentación a {person}, {address}.",
        "Varón de {age} años natural de {city}, {id}, en tratamiento con {med}.",
        "mi madre {person} nació el {dob}, ¿tiene derecho a la pensión?",
    ],
    "de": [
        "Patient {person}, {age} Jahre, wohnhaft {address}. Diagnose: {dx}.",
        "{person}, geboren am {dob}, wurde am {date} mit {dx} aufgenommen.",
        "Name: {person}\nGeburtsdatum: {dob}\nAnschrift: {address}\n{id}",
        "Hallo, ich bin {person} aus {city} und habe eine Frage zu meiner Rechnung.",
        "Frau {person} arbeitet seit {date} bei {org}.",
        "Bitte senden Sie die Unterlagen an {person}, {address}.",
        "Herr {person} ({id}) klagt seit {date} über Brustschmerzen; Medikation: {med}.",
        "Die {age}-jährige Patientin {person} aus {city} leidet an {dx}.",
    ],
    "fr": [
        "Patient {person}, {age} ans, domicilié {address}. Diagnostic : {dx}.",
        "{person}, né le {dob}, hospitalisé le {date} pour {dx}.",
        "Nom : {person}\nDate de naissance : {dob}\nAdresse : {address}\n{id}",
        "Bonjour, je suis {person} et j'habite à {city}, pouvez-vous vérifier mon dossier ?",
        "Mme {person} travaille chez {org} depuis le {date}.",
        "Veuillez envoyer le courrier à {person}, {address}.",
        "M. {person} ({id}), {age} ans, traité par {med} pour {dx}.",
    ],
    "ru": [
        "Пациент {person}, {age} лет, проживает по адресу {address}. Диагноз: {dx}.",
        "{person}, дата рождения {dob}, поступил {date}.",
        "Меня зовут {person}, я живу в городе {city}.",
        "{person} работает в компании {org}. {id}.",
    ],
    "zh": [
        "患者{person}，{age}岁，住址{address}，诊断：{dx}。",
        "{person}，出生日期{dob}，于{date}入院。",
        "我叫{person}，住在{city}，请帮我查一下订单。",
        "{person}在{org}工作，{id}。",
    ],
}

# Look-alike negatives: names of products, public figures in the news, dates and places that are not about
# a private person, and clinical prose about no one in particular.
NEGATIVE_TEMPLATES: dict[str, list[str]] = {
    "en": [
        "The iPhone 15 Pro and the Galaxy S24 both ship with 8 GB of RAM.",
        "President {public} met European leaders in Brussels on Tuesday to discuss tariffs.",
        "{public} said in a speech on {pubdate} that inflation was easing.",
        "The conference will be held in {bigcity} from {pubdate} to the end of the month.",
        "Version 4.2 was released on {pubdate} with support for Python 3.12.",
        "Metformin is a first-line treatment for type 2 diabetes in most guidelines.",
        "Non-small-cell lung cancer accounts for about 85% of lung cancers.",
        "Patients with hypertension should reduce salt intake and exercise regularly.",
        "What are the side effects of atorvastatin?",
        "How does the Toyota Corolla compare to the Honda Civic on fuel economy?",
        "The Treaty of Versailles was signed on 28 June 1919.",
        "Randomised trials in 2019 enrolled 4,500 adults aged 40 to 75.",
        "Our quarterly report for Q3 2024 shows revenue of 12 million dollars.",
        "The museum on Fifth Avenue reopens in {pubdate} after renovation.",
        "Microsoft and Google announced new AI models this week.",
        "Shakespeare wrote Hamlet around 1600.",
        "The recommended dose for adults is 500 mg twice a day.",
        "Diabetes affects more than 400 million people worldwide.",
        "what is the capital of {bigcity_country}?",
        "Order #4471 of the Nike Air Max 90 ships from the warehouse tomorrow.",
        "The patient cohort had a median age of 64 years.",
        "Clinical notes should record the diagnosis, the medication and the follow-up plan.",
        "Amazon Prime Day starts on {pubdate}.",
        "The Beatles recorded Abbey Road in 1969 at EMI Studios in London.",
    ],
    "es": [
        "El presidente {public} viajó a Bruselas el martes para reunirse con la Comisión.",
        "La diabetes tipo 2 se trata inicialmente con metformina y cambios en el estilo de vida.",
        "El congreso se celebrará en {bigcity} del 3 al 5 de junio de 2025.",
        "¿Cuáles son los síntomas de la neumonía?",
        "La hipertensión arterial es un factor de riesgo cardiovascular importante.",
        "El nuevo Seat León llega a los concesionarios en marzo.",
        "La Constitución española fue aprobada en 1978.",
        "Los pacientes con EPOC deben vacunarse contra la gripe cada año.",
        "El informe trimestral muestra un aumento del 4% en las ventas.",
    ],
    "de": [
        "Bundeskanzler {public} traf am Montag den französischen Präsidenten in Berlin.",
        "Die Tagung findet vom 12. bis 14. Mai 2025 in {bigcity} statt.",
        "Metformin ist das Mittel der ersten Wahl bei Diabetes mellitus Typ 2.",
        "Der neue VW Golf kostet ab 29.000 Euro.",
        "Die Berliner Mauer fiel am 9. November 1989.",
    ],
    "fr": [
        "Le président {public} s'est rendu à Bruxelles mardi.",
        "Le congrès aura lieu à {bigcity} du 3 au 5 juin 2025.",
        "L'hypertension artérielle touche un adulte sur trois en France.",
        "La nouvelle Renault Clio est disponible en mars.",
    ],
}
PUBLIC_FIGURES = [
    "Joe Biden",
    "Emmanuel Macron",
    "Olaf Scholz",
    "Pedro Sánchez",
    "Angela Merkel",
    "Barack Obama",
    "Rishi Sunak",
    "Xi Jinping",
    "Narendra Modi",
    "Giorgia Meloni",
    "Elon Musk",
]
BIG_CITIES = ["Paris", "Madrid", "Berlin", "London", "New York", "Tokyo", "Barcelona", "Munich", "Lyon"]
COUNTRIES = ["France", "Spain", "Germany", "Japan", "Peru", "Canada"]

_SLOT = re.compile(r"\{(\w+)\}")


def render(r: random.Random, f: Faker, lang: str, template: str) -> dict[str, object]:
    """Fill ``template``; spans are recorded at insertion, so labels never depend on a detector."""
    out: list[str] = []
    spans: list[dict[str, object]] = []
    pos = 0
    length = 0
    for m in _SLOT.finditer(template):
        lit = template[pos : m.start()]
        out.append(lit)
        length += len(lit)
        slot = m.group(1)
        if slot == "public":
            value, kind = r.choice(PUBLIC_FIGURES), None
        elif slot == "pubdate":
            value, kind = (
                f.date_between("-5y", "+1y").strftime(r.choice(["%B %d, %Y", "%d %B %Y", "%Y-%m-%d"])),
                None,
            )
        elif slot == "bigcity":
            value, kind = r.choice(BIG_CITIES), None
        elif slot == "bigcity_country":
            value, kind = r.choice(COUNTRIES), None
        else:
            value, kind = fill(r, f, lang, slot)
        if kind is not None:
            spans.append({"start": length, "end": length + len(value), "label": kind})
        out.append(value)
        length += len(value)
        pos = m.end()
    out.append(template[pos:])
    return {"text": "".join(out), "spans": spans, "lang": lang}


def _corpus_sentences(
    path: Path, keep: Callable[[dict[str, object]], bool], limit: int, r: random.Random
) -> list[str]:
    sents: list[str] = []
    if not path.is_file():
        return sents
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if not keep(row):
            continue
        text = str(row.get("text", "")).replace("\ufeff", "")
        for s in re.split(r"(?<=[.!?。])\s*", text):
            if 30 <= len(s) <= 260:
                sents.append(s)
    r.shuffle(sents)
    return sents[:limit]


def _even_article(row: dict[str, object]) -> bool:
    m = re.match(r"a(\d+)_", str(row.get("_id", "")))
    return m is not None and int(m.group(1)) % 2 == 0


# Negative templates that name a real person, place or organisation. A privacy router treats a name as a
# name (public figures included) and the real-sentence corpora label places and organisations, so these
# are left out when ``named_negatives`` is False (the recipe since the head trained on real sentences).
NAMED_NEGATIVE = re.compile(
    r"\{public\}|\{bigcity|Brussels|Bruselas|Brüssel|Bruxelles|Berlin|London|Londres|Paris|Madrid|Moscow|"
    r"Москв|北京|Shakespeare|Beatles|Microsoft|Google|Amazon|EMI|Fifth Avenue|Comisión|Kommission"
)


def generate(shared_data: Path, *, seed: int, per_template: int, negatives: int,
             named_negatives: bool = True) -> list[dict[str, object]]:
    """The whole training set, deterministic for a given ``seed``."""
    r = random.Random(seed)
    rows: list[dict[str, object]] = []
    for lang, templates in TEMPLATES.items():
        f = Faker(LOCALES[lang])
        f.seed_instance(seed)
        reps = per_template * (1 if lang in ("en", "es") else 2) // (1 if lang in ("en", "es") else 3)
        for t in templates:
            for _ in range(max(2, reps)):
                rows.append(render(r, f, lang, t))
    for lang, templates in NEGATIVE_TEMPLATES.items():
        f = Faker(LOCALES[lang])
        f.seed_instance(seed + 1)
        for t in templates:
            if not named_negatives and NAMED_NEGATIVE.search(t):
                continue
            for _ in range(3 if "{" in t else 1):
                rows.append(render(r, f, lang, t))
    corpus = [
        (shared_data / "scifact" / "corpus.jsonl", lambda row: True, "en", negatives // 3),
        (shared_data / "xquad" / "en" / "corpus.jsonl", _even_article, "en", negatives // 6),
        (shared_data / "xquad" / "es" / "corpus.jsonl", _even_article, "es", negatives // 6),
        (shared_data / "xquad" / "de" / "corpus.jsonl", _even_article, "de", negatives // 6),
        (shared_data / "xquad" / "zh" / "corpus.jsonl", _even_article, "zh", negatives // 6),
    ]
    for path, keep, lang, limit in corpus:
        for s in _corpus_sentences(path, keep, limit, r):
            rows.append({"text": s, "spans": [], "lang": lang})
    r.shuffle(rows)
    return rows


__all__ = ["KINDS", "LOCALES", "generate", "render"]
