"""The PII head's data sets, by name: what trains it and what measures it (one place, seeded).

Training: ``gen`` (generated templates for the structured kinds and clinical notes, no named negatives,
no unlabelled prose), ``real`` (WikiNEuRal validation + WikiANN train sentences, see pii_real_data),
``cjk`` (Japanese and Chinese Wikipedia sentences: Stockmark's train side, Universal NER's train split),
``code`` (code/config snippets from training-side files + generated look-alikes, see pii_code_data).
A tenth of every training set (by a hash of its text) is the dev split that chooses the thresholds.

Measurement: ``wikineural-test``, ``wikiann-test``, ``stockmark-test`` and ``uner-test`` / ``uner-dev``
(the corpora's test splits: per language 300 sentences with a person... see ``TEST_SIZES``), ``code-eval`` (framework/eval/data/pii_code_negatives.jsonl,
evaluation-side files only) and ``independent`` (framework/eval/data/pii_independent.jsonl).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pii_code_data
import pii_head_data
import pii_real_data

ROOT = Path(__file__).resolve().parent.parent
MIRROR = Path(os.environ.get("PII_NER_MIRROR", "/work/.mirror/Babelscape+wikineural/repo"))
"""A git directory (a clone, bare or not) of github.com/Babelscape/wikineural holding ``COMMIT``."""
COMMIT = "d2e28c770cba2b285e742529ae18ed849e336c65"
"""The github.com/Babelscape/wikineural commit read (its data/wikineural and data/wikiann folders)."""

JA_MIRROR = Path(os.environ.get("PII_JA_MIRROR", "/work/.mirror/stockmarkteam+ner-wikipedia-dataset/repo"))
"""A git directory of github.com/stockmarkteam/ner-wikipedia-dataset holding ``JA_COMMIT``."""
JA_COMMIT = "5e525c2132c0e87cce890b8b92639a0cf357c1f3"
"""The github.com/stockmarkteam/ner-wikipedia-dataset commit read (``ner.json``, version 2.0)."""

TRAIN_SIZES = {"wikineural": (300, 80), "wikiann": (120, 30)}
"""Per language: (sentences with an entity, three quarters of them with a person; entity-free)."""
EXTRA_SIZES = {"wikineural": (540, 180)}
"""The ``real-extra`` set: per language the sample of this size, less the rows already in ``real``. The
draw is seeded per source, so a larger sample extends the smaller one (same shuffles, longer prefixes),
and ``real``'s cached token states stay valid. Its entity-free rows carry only MISC entities (works,
events, products, nationalities): the negatives the previous head flagged most."""
CJK_TRAIN_SIZES = (540, 180)
"""The ``cjk`` set, per language (ja: Stockmark's train side; zh: Universal NER's train split): as many
rows as WikiNEuRal's ``real`` and ``real-extra`` together."""
ZH_MIRRORS = {
    "zh": Path(os.environ.get("PII_ZH_MIRROR", "/work/.mirror/UniversalNER+UNER_Chinese-GSDSIMP/repo")),
    "zh-Hant": Path(os.environ.get("PII_ZH_HANT_MIRROR", "/work/.mirror/UniversalNER+UNER_Chinese-GSD/repo")),
}
"""Git directories of github.com/UniversalNER/UNER_Chinese-GSDSIMP and UNER_Chinese-GSD."""
ZH_COMMITS = {
    "zh": "1f0307599dece7b83f4cba90ce9b63ef37a7b162",
    "zh-Hant": "2a0c196d7a54d41119fd069874e976a58f0d7dad",
}
"""The Universal NER commits read: simplified train trains (the ``cjk`` set); test and dev of both scripts
measure (``uner-test``, ``uner-dev``)."""
TEST_SIZES = {"wikineural": (400, 200), "wikiann": (133, 100), "stockmark": (400, 200), "uner": (400, 200)}


def dev_split(row: dict[str, Any]) -> bool:
    return int(hashlib.sha256(str(row["text"]).encode()).hexdigest()[:8], 16) % 10 == 0


def train_sets(
    shared_data: Path,
    *,
    seed: int,
    git_dir: Path = MIRROR,
    cjk: bool = True,
    gen_rows: int = 1200,
    code_rows: int = 500,
    synthetic_rows: int = 300,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    gen = pii_head_data.generate(shared_data, seed=seed, per_template=30, negatives=0, named_negatives=False)
    gen = gen[:gen_rows]
    real: list[dict[str, Any]] = []
    recipe: list[dict[str, Any]] = []
    for corpus, (n, clean) in TRAIN_SIZES.items():
        srcs = [s for s in pii_real_data.TRAIN_SOURCES if s.corpus == corpus]
        rows, rec = pii_real_data.load(git_dir, COMMIT, srcs, per_source=n, clean_per_source=clean, seed=seed)
        real += rows
        recipe += rec
    seen = {str(r["text"]) for r in real}
    extra: list[dict[str, Any]] = []
    for corpus, (n, clean) in EXTRA_SIZES.items():
        srcs = [s for s in pii_real_data.TRAIN_SOURCES if s.corpus == corpus]
        rows, rec = pii_real_data.load(git_dir, COMMIT, srcs, per_source=n, clean_per_source=clean, seed=seed)
        for r in rows:
            if str(r["text"]) not in seen:
                seen.add(str(r["text"]))
                extra.append(r)
        recipe += [x | {"set": "real-extra", "used": sum(1 for r in extra if r["lang"] == x["lang"] and str(r["source"]).startswith(corpus))} for x in rec]
    cjk_rows: list[dict[str, Any]] = []
    cjk_recipe: list[dict[str, Any]] = []
    if cjk:  # Japanese (Stockmark) and Chinese (Universal NER, simplified GSD): their train sides
        n, clean = CJK_TRAIN_SIZES
        for mirror, commit, srcs in (
            (JA_MIRROR, JA_COMMIT, pii_real_data.STOCKMARK_TRAIN),
            (ZH_MIRRORS["zh"], ZH_COMMITS["zh"], [pii_real_data.Source("uner", "zh", "train")]),
        ):
            rows, rec = pii_real_data.load(mirror, commit, srcs, per_source=n, clean_per_source=clean, seed=seed)
            cjk_rows += rows
            cjk_recipe += [x | {"commit": commit} for x in rec]
    code = pii_code_data.collect("train", n=code_rows, seed=seed) + pii_code_data.synthetic(
        n=synthetic_rows, seed=seed
    )
    sets = {"gen": gen, "real": real, "real-extra": extra, "code": code}
    if cjk:
        sets["cjk"] = cjk_rows
    info = {
        "seed": seed,
        "real_sentences": {
            "repository": "github.com/Babelscape/wikineural",
            "commit": COMMIT,
            "files": recipe,
            "licences": {
                "wikineural": "CC BY-NC-SA 4.0",
                "wikiann": "as redistributed by the "
                "WikiNEuRal repository (WikiANN, Pan et al. 2017; ODC-BY upstream)",
            },
        },
        "cjk_sentences": {
            "repositories": {
                "stockmark": "github.com/stockmarkteam/ner-wikipedia-dataset",
                "uner": "github.com/UniversalNER/UNER_Chinese-GSDSIMP",
            },
            "files": cjk_recipe,
            "licences": {
                "stockmark": "CC BY-SA 3.0 (as Japanese Wikipedia)",
                "uner": "CC BY-SA 4.0 (labels and treebank; UD Chinese GSD, Chinese Wikipedia sentences)",
            },
            "splits": "stockmark: by article, sha256(curid) % 10 < 4 is test (pii_real_data.stockmark_split); "
            "uner: its own train split trains, dev and test measure",
        }
        if cjk
        else None,
        "generated": {
            "generator": "scripts/pii_head_data.py",
            "rows": len(gen),
            "named_negatives": False,
            "corpus_negatives": 0,
            "locales": pii_head_data.LOCALES,
            "faker": _versions(("faker",)).get("Faker"),
        },
        "code": {
            "generator": "scripts/pii_code_data.py",
            "rows": len(code),
            "files": "training side only",
            "packages": _versions(pii_code_data.TRAIN_PACKAGES),
        },
        "sets_sha256": {
            k: hashlib.sha256(json.dumps(v, sort_keys=True).encode()).hexdigest() for k, v in sets.items()
        },
    }
    return sets, info


def _versions(prefixes: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of the distributions whose files the code snippets read (they move the set)."""
    from importlib import metadata

    tops = metadata.packages_distributions()
    names = {d for top, dists in tops.items() if any(p.split("/")[0] in top for p in prefixes) for d in dists}
    return {n: metadata.version(n) for n in sorted(names)}


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_sets(
    *, seed: int = 7, git_dir: Path = MIRROR, ja_git_dir: Path = JA_MIRROR
) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for corpus, (n, clean) in TEST_SIZES.items():
        if corpus == "uner":  # Chinese: test and dev, both measured only, each a set of its own
            for split, srcs_u in (("test", pii_real_data.UNER_TEST), ("dev", pii_real_data.UNER_DEV)):
                rows_u: list[dict[str, Any]] = []
                for src in srcs_u:
                    if ZH_MIRRORS[src.lang].exists():
                        rows_u += pii_real_data.load(
                            ZH_MIRRORS[src.lang], ZH_COMMITS[src.lang], [src], per_source=n, clean_per_source=clean, seed=seed
                        )[0]
                if rows_u:
                    out[f"uner-{split}"] = rows_u
            continue
        if corpus == "stockmark":
            if not ja_git_dir.exists():  # optional: a set of its own, measured when its mirror is there
                continue
            out["stockmark-test"], _ = pii_real_data.load(
                ja_git_dir, JA_COMMIT, pii_real_data.STOCKMARK_TEST, per_source=n, clean_per_source=clean, seed=seed
            )
            continue
        srcs = [s for s in pii_real_data.TEST_SOURCES if s.corpus == corpus]
        out[f"{corpus}-test"], _ = pii_real_data.load(
            git_dir, COMMIT, srcs, per_source=n, clean_per_source=clean, seed=seed
        )
    data = ROOT / "framework" / "eval" / "data"
    out["code-eval"] = [r | {"lang": "code"} for r in _jsonl(data / "pii_code_negatives.jsonl")]
    out["independent"] = _jsonl(data / "pii_independent.jsonl")
    return out


__all__ = [
    "COMMIT",
    "JA_COMMIT",
    "JA_MIRROR",
    "MIRROR",
    "ZH_COMMITS",
    "ZH_MIRRORS",
    "dev_split",
    "test_sets",
    "train_sets",
]
