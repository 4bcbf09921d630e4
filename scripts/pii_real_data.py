"""Real sentences with gold entity spans for the PII head (used by ``scripts/train-pii-head`` and the bench).

Sources: Wikipedia-derived NER corpora in CoNLL layout, read straight from a git mirror (``git show
COMMIT:PATH``), so the recipe names the commit and the sha256 of every file it read:

- WikiNEuRal (Tedeschi et al., 2021; CC BY-NC-SA 4.0; github.com/Babelscape/wikineural): en, es, de, fr,
  ru. The mirror holds the validation and test splits only (its train files are absent), so the
  *validation* split trains and the *test* split measures.
- WikiANN / PAN-X (Pan et al., 2017; as redistributed in the same repository, ``data/wikiann``): en, es,
  de, ru with train / val / test; train trains, test measures.

Labels map PER -> person, LOC -> location, ORG -> organization; every other label (MISC: nationalities,
events, works) is outside every kind the head tags, so its words are plain ``O`` tokens. Both corpora keep
only sentences with at least one entity, so the "entity-free" sentences here are those without a person,
location or organisation, and every one of them names a MISC entity (a work, an event, a product, a
nationality): harder negatives than sentences with no entity at all. The words are joined into text with the spacing a
writer would use (no space before closing punctuation), and the gold spans are the joined words'
character offsets; the trainer aligns them to the tokenizer's offsets.

- Stockmark's Japanese Wikipedia NER data set (Omi, 2021; CC BY-SA 3.0, as Japanese Wikipedia;
  github.com/stockmarkteam/ner-wikipedia-dataset, ``ner.json``: 5,343 sentences of Japanese Wikipedia with
  hand-made spans of eight kinds): ja. It has no splits, so it is split here by article (``curid``):
  ``stockmark_split``, 40% test, 60% train, never the same article on both sides. 人名 -> person, 地名 and
  施設名 (places and facilities) -> location, 法人名 / 政治的組織名 / その他の組織名 -> organization;
  製品名 and イベント名 (works, products, events) are MISC, so plain ``O``.

- Universal NER (Mayhew et al., 2024; CC BY-SA 4.0, as the treebank) on the Chinese GSD treebank of
  Universal Dependencies, whose sentences are Chinese Wikipedia's: github.com/UniversalNER/UNER_Chinese-GSDSIMP
  (simplified script, ``zh``) and UNER_Chinese-GSD (traditional, ``zh-Hant``), train / dev / test, gold
  PER / LOC / ORG by two annotators. ``index<TAB>word<TAB>tag<TAB>-<TAB>annotator`` lines under a
  ``# text =`` comment: the text is that comment, and each word's span is found in it in order.
  Measured only (test, and dev for a second sample); not trained on (docs/pii.md, "Chinese and Japanese").
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgeroute.framework.eval import conll

parse_conll = conll.parse_conll


@dataclass(frozen=True)
class Source:
    corpus: str  # "wikineural" | "wikiann" | "stockmark" | "uner"
    lang: str
    split: str  # the file's own split name: "train", "val", "test" (stockmark: this module's own split)

    @property
    def path(self) -> str:
        if self.corpus == "stockmark":
            return "ner.json"
        if self.corpus == "uner":
            return f"{UNER_TREEBANKS[self.lang]}-ud-{self.split}.iob2"
        return f"data/{self.corpus}/{self.lang}/{self.split}.conllu"


TRAIN_SOURCES = [Source("wikineural", lang, "val") for lang in ("en", "es", "de", "fr", "ru")] + [
    Source("wikiann", lang, "train") for lang in ("en", "es", "de", "ru")
]
TEST_SOURCES = [Source("wikineural", lang, "test") for lang in ("en", "es", "de", "fr", "ru")] + [
    Source("wikiann", lang, "test") for lang in ("en", "es", "de", "ru")
]


STOCKMARK_LABELS = {
    "人名": "person",
    "地名": "location",
    "施設名": "location",
    "法人名": "organization",
    "政治的組織名": "organization",
    "その他の組織名": "organization",
}
"""Stockmark's kinds -> the head's; 製品名 (products, works) and イベント名 (events) are MISC: no span."""
STOCKMARK_TEST_SHARE = 4
"""Tenths of Stockmark's articles that are test (by ``stockmark_split``); the rest train."""


def stockmark_split(curid: str) -> str:
    """``"test"`` or ``"train"`` for a Wikipedia page id: by a hash of the id, so an article's sentences
    stay on one side."""
    return "test" if int(hashlib.sha256(curid.encode()).hexdigest()[:8], 16) % 10 < STOCKMARK_TEST_SHARE else "train"


def parse_stockmark(raw: str, split: str) -> list[dict[str, object]]:
    """Rows ``{"text", "spans"}`` of one split of Stockmark's ``ner.json`` (a JSON list of
    ``{"curid", "text", "entities": [{"name", "span": [start, end], "type"}]}``, offsets in code points).
    A span whose characters are not its ``name`` is an error, not a silent skip."""
    rows: list[dict[str, object]] = []
    for item in json.loads(raw):
        if stockmark_split(str(item["curid"])) != split:
            continue
        text = str(item["text"])
        spans = []
        for ent in item["entities"]:
            start, end = int(ent["span"][0]), int(ent["span"][1])
            if text[start:end] != ent["name"]:
                raise ValueError(f"curid {item['curid']}: span {start}-{end} is not {ent['name']!r}")
            label = STOCKMARK_LABELS.get(str(ent["type"]))
            if label is not None:
                spans.append({"start": start, "end": end, "label": label})
        rows.append({"text": text, "spans": sorted(spans, key=lambda sp: (sp["start"], sp["end"]))})
    return rows


UNER_TREEBANKS = {"zh": "zh_gsdsimp", "zh-Hant": "zh_gsd"}
"""Universal NER's Chinese GSD files by language tag: simplified and traditional script (same sentences)."""


def parse_uner(raw: str) -> list[dict[str, object]]:
    """Rows ``{"text", "spans"}`` of a Universal NER ``.iob2`` file: the sentence is its ``# text =``
    comment, each word is found in it after the previous one (so the spacing is the treebank's own), and
    BIO tags (third column) give the spans of the mapped kinds. A word not found in the text is an error."""
    rows: list[dict[str, object]] = []
    for block in raw.split("\n\n"):
        text = ""
        words: list[tuple[str, str]] = []
        for line in block.splitlines():
            if line.startswith("# text = "):
                text = line[len("# text = ") :]
            elif line and not line.startswith("#"):
                cols = line.split("\t")
                words.append((cols[1], cols[2].strip()))
        if not words:
            continue
        offsets: list[tuple[int, int]] = []
        pos = 0
        for w, _ in words:
            at = text.find(w, pos)
            if at < 0 or text[pos:at].strip():
                raise ValueError(f"word {w!r} not found in order in {text!r}")
            offsets.append((at, at + len(w)))
            pos = at + len(w)
        spans: list[dict[str, object]] = []
        inside = False  # the previous word continues a span of ``spans[-1]``'s kind
        for (_, tag), (a, b) in zip(words, offsets, strict=True):
            prefix, _, label = tag.partition("-")
            kind = conll.LABELS.get(label.upper()) if prefix in ("B", "I") else None
            if kind is not None and prefix == "I" and inside and spans[-1]["label"] == kind:
                spans[-1]["end"] = b
            elif kind is not None:
                spans.append({"start": a, "end": b, "label": kind})
            inside = kind is not None
        rows.append({"text": text, "spans": spans})
    return rows


def read_git(git_dir: Path, commit: str, path: str) -> bytes:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"{commit}:{path}"], check=True, capture_output=True
    ).stdout


def join_words(words: list[tuple[str, str]]) -> dict[str, object]:
    text, spans = conll.join_words(words, glue_cjk=False)  # the spacing the cached features were made with
    return {"text": text, "spans": [{"start": s, "end": e, "label": k} for s, e, k in spans]}


def _prose(row: dict[str, object], words: list[tuple[str, str]] | None) -> bool:
    """Keep sentences, not list items or headings: enough words (for Stockmark's and Universal NER's
    Chinese and Japanese rows, read without the project's word joining: 12 characters), a verb-length
    line, no wiki markup."""
    text = str(row["text"])
    return (
        (len(words) >= 6 if words is not None else len(text) >= 12)
        and len(text) <= 400
        and "==" not in text
        and not text.startswith(("*", ";", "'", "|"))
    )


def load(
    git_dir: Path, commit: str, sources: list[Source], *, per_source: int, clean_per_source: int, seed: int
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Sampled rows (sentences with an entity, and entity-free sentences) and the recipe of what was read.

    With ``per_source`` > 0 the sentences with a person come first (the detector's main job), then others
    with any mapped entity; ``clean_per_source`` entity-free sentences (no label at all, MISC included).
    """
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    recipe: list[dict[str, object]] = []
    for src in sources:
        raw = read_git(git_dir, commit, src.path)
        sents: list[tuple[dict[str, object], list[tuple[str, str]] | None]]
        if src.corpus == "stockmark":
            sents = [(r, None) for r in parse_stockmark(raw.decode("utf-8"), src.split)]
        elif src.corpus == "uner":
            sents = [(r, None) for r in parse_uner(raw.decode("utf-8"))]
        else:
            sents = [(join_words(ws), ws) for ws in parse_conll(raw.decode("utf-8"))]
        sents = [(r, ws) for r, ws in sents if _prose(r, ws)]
        person = [r for r, _ in sents if any(s["label"] == "person" for s in r["spans"])]  # type: ignore[attr-defined]
        other = [r for r, _ in sents if r["spans"] and not any(s["label"] == "person" for s in r["spans"])]  # type: ignore[attr-defined]
        clean = [r for r, _ in sents if not r["spans"]]
        rng.shuffle(person)
        rng.shuffle(other)
        rng.shuffle(clean)
        n_person = (per_source * 3) // 4
        chosen = (
            person[:n_person] + other[: per_source - min(n_person, len(person))] + clean[:clean_per_source]
        )
        for r in chosen:
            rows.append(
                {
                    "text": r["text"],
                    "spans": r["spans"],
                    "lang": src.lang,
                    "source": f"{src.corpus}/{src.split}",
                }
            )
        recipe.append(
            {
                "corpus": src.corpus,
                "lang": src.lang,
                "split": src.split,
                "path": src.path,
                "sha256": hashlib.sha256(raw).hexdigest(),
                "sentences": len(sents),
                "used": len(chosen),
            }
        )
    return rows, recipe


UNER_TEST = [Source("uner", lang, "test") for lang in UNER_TREEBANKS]
UNER_DEV = [Source("uner", lang, "dev") for lang in UNER_TREEBANKS]
STOCKMARK_TRAIN = [Source("stockmark", "ja", "train")]
STOCKMARK_TEST = [Source("stockmark", "ja", "test")]


__all__ = [
    "STOCKMARK_LABELS",
    "STOCKMARK_TEST",
    "STOCKMARK_TRAIN",
    "TEST_SOURCES",
    "TRAIN_SOURCES",
    "UNER_DEV",
    "UNER_TEST",
    "UNER_TREEBANKS",
    "Source",
    "join_words",
    "load",
    "parse_conll",
    "parse_stockmark",
    "parse_uner",
    "stockmark_split",
]
