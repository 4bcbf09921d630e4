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

No Chinese or Japanese corpus of this kind was reachable from the mirrors available when this head was
trained (MultiNERD's repository holds Git LFS pointers only, in every commit; the WikiANN splits of Rahimi
et al. are distributed off GitHub); those languages are covered by the generated data only (docs/pii.md).
"""

from __future__ import annotations

import hashlib
import random
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgeroute.framework.eval import conll

parse_conll = conll.parse_conll


@dataclass(frozen=True)
class Source:
    corpus: str  # "wikineural" | "wikiann"
    lang: str
    split: str  # the file's own split name: "train", "val", "test"

    @property
    def path(self) -> str:
        return f"data/{self.corpus}/{self.lang}/{self.split}.conllu"


TRAIN_SOURCES = [Source("wikineural", lang, "val") for lang in ("en", "es", "de", "fr", "ru")] + [
    Source("wikiann", lang, "train") for lang in ("en", "es", "de", "ru")
]
TEST_SOURCES = [Source("wikineural", lang, "test") for lang in ("en", "es", "de", "fr", "ru")] + [
    Source("wikiann", lang, "test") for lang in ("en", "es", "de", "ru")
]


def read_git(git_dir: Path, commit: str, path: str) -> bytes:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"{commit}:{path}"], check=True, capture_output=True
    ).stdout


def join_words(words: list[tuple[str, str]]) -> dict[str, object]:
    text, spans = conll.join_words(words, glue_cjk=False)  # the spacing the cached features were made with
    return {"text": text, "spans": [{"start": s, "end": e, "label": k} for s, e, k in spans]}


def _prose(row: dict[str, object], words: list[tuple[str, str]]) -> bool:
    """Keep sentences, not list items or headings: enough words, a verb-length line, no wiki markup."""
    text = str(row["text"])
    return (
        len(words) >= 6
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
        sents = [(join_words(ws), ws) for ws in parse_conll(raw.decode("utf-8"))]
        sents = [(r, ws) for r, ws in sents if _prose(r, ws)]
        person = [r for r, _ in sents if any(s["label"] == "person" for s in r["spans"])]  # type: ignore[attr-defined, index]
        other = [r for r, _ in sents if r["spans"] and not any(s["label"] == "person" for s in r["spans"])]  # type: ignore[attr-defined, index]
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


__all__ = ["TEST_SOURCES", "TRAIN_SOURCES", "Source", "join_words", "load", "parse_conll"]
