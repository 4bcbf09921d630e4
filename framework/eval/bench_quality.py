"""Quality figures for ``edgeroute bench edge --quality``: parity against sentence-transformers and a
fixed SciFact subset's nDCG@10, the same texts for every runtime and quantization.

- **Parity set** (64 texts): the exporter's built-in sample (8: short queries, a 1,138-token document,
  Spanish, German, Japanese, a classification prompt), the first 24 SciFact abstracts under the document
  prompt with their titles, and the first 8 XQuAD questions of each of en/de/es/zh under the query prompt.
  Each text is embedded alone (batch 1), so padding plays no part; the full prompted string is the same
  for every engine. The fidelity bar of issue 20 is mean cosine >= 0.995 and min >= 0.99.
- **SciFact subset**: the 300 test queries (or the first ``max_queries``) against every document one of
  them is relevant to plus ``extra_docs`` others drawn with a fixed seed (0) from the rest of the corpus, in corpus order. Exact
  cosine search at 768 dims. The full corpus (5,183 abstracts) takes about 45 min per engine on 2 cores;
  the subset keeps the ranking task (every relevant document, many distractors) at a fraction of it.
  Its nDCG is higher than the full corpus's (fewer distractors): compare rows, not with 0.7921.

Workers write their vectors to an ``.npz`` (:func:`embed_quality_set`); the parent scores them against
the sentence-transformers worker's (:func:`score`).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PARITY_SCIFACT = 24
PARITY_XQUAD_PER_LANG = 8
XQUAD_LANGS = ("en", "de", "es", "zh")
DEFAULT_EXTRA_DOCS = 700
FIDELITY_MEAN = 0.995
FIDELITY_MIN = 0.99


@dataclass(frozen=True)
class QualitySet:
    """Fully prompted texts: the parity set, and the SciFact subset's documents and queries."""

    parity: list[str]
    docs: list[str]
    doc_ids: list[str]
    queries: list[str]
    query_ids: list[str]
    qrels: dict[str, dict[str, int]]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def build_quality_set(
    data_dir: Path,
    prompts: dict[str, str],
    *,
    extra_docs: int = DEFAULT_EXTRA_DOCS,
    max_queries: int | None = None,
) -> QualitySet:
    """The quality texts from ``data_dir`` (holding ``scifact/`` and ``xquad/``), with ``prompts``
    (the manifest's, which are the checkpoint's) applied the way :class:`EdgeEmbedder` applies them.
    ``max_queries``: only the first that many test queries (in qrels order) and their documents."""
    from ..edge.export.exporter import PARITY_SAMPLE

    def doc(title: str, text: str) -> str:
        prefix = prompts["document"]
        return (prefix.replace("title: none", f"title: {title}", 1) if title else prefix) + (text or title)

    scifact = data_dir / "scifact"
    corpus = _jsonl(scifact / "corpus.jsonl")
    parity = [prompts[name] + text for name, text in PARITY_SAMPLE]
    parity += [doc(str(d.get("title") or ""), str(d["text"])) for d in corpus[:PARITY_SCIFACT]]
    xquad = data_dir / "xquad"
    if xquad.is_dir():
        for lang in XQUAD_LANGS:
            rows = _jsonl(xquad / lang / "queries.jsonl")[:PARITY_XQUAD_PER_LANG]
            parity += [prompts["query"] + str(q["text"]) for q in rows]
    qrels: dict[str, dict[str, int]] = {}
    for line in (scifact / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        qid, did, score = line.split("\t")
        if int(score) > 0 and (qid in qrels or max_queries is None or len(qrels) < max_queries):
            qrels.setdefault(qid, {})[did] = int(score)
    relevant = {d for rel in qrels.values() for d in rel}
    others = [d["_id"] for d in corpus if d["_id"] not in relevant]
    keep = relevant | set(random.Random(0).sample(others, min(extra_docs, len(others))))
    chosen = [d for d in corpus if d["_id"] in keep]
    queries = {q["_id"]: str(q["text"]) for q in _jsonl(scifact / "queries.jsonl")}
    qids = [q for q in qrels if q in queries]
    return QualitySet(
        parity=parity,
        docs=[doc(str(d.get("title") or ""), str(d["text"])) for d in chosen],
        doc_ids=[str(d["_id"]) for d in chosen],
        queries=[prompts["query"] + queries[q] for q in qids],
        query_ids=qids,
        qrels=qrels,
    )


Encode = Callable[[list[str]], Any]


def embed_quality_set(qs: QualitySet, encode: Encode, out: Path) -> dict[str, float]:
    """Embed the parity set one text per call and the subset in batches with ``encode`` (prompted
    texts -> L2-normalised vectors); save them to ``out`` (.npz). Returns the subset's encode rate."""
    import time

    parity = np.concatenate([np.asarray(encode([t]), dtype=np.float32) for t in qs.parity])
    start = time.perf_counter()
    docs = np.asarray(encode(qs.docs), dtype=np.float32)
    rate = len(qs.docs) / (time.perf_counter() - start)
    queries = np.asarray(encode(qs.queries), dtype=np.float32)
    np.savez(out, parity=parity, docs=docs, queries=queries, docs_per_s=np.float64(rate))
    return {"quality_docs_per_s": round(rate, 2), "quality_n_docs": len(qs.docs)}


def ndcg_at_10(qs: QualitySet, docs: np.ndarray[Any, Any], queries: np.ndarray[Any, Any]) -> float:
    """Mean nDCG@10 of exact cosine search over the subset (vectors are L2-normalised)."""
    scores = queries @ docs.T
    total = 0.0
    for row, qid in enumerate(qs.query_ids):
        top = np.argsort(-scores[row], kind="stable")[:10]
        rel = qs.qrels[qid]
        dcg = sum(rel.get(qs.doc_ids[j], 0) / math.log2(r + 2) for r, j in enumerate(top))
        ideal = sorted(rel.values(), reverse=True)[:10]
        total += dcg / sum(g / math.log2(r + 2) for r, g in enumerate(ideal))
    return total / len(qs.query_ids)


def score(qs: QualitySet, vectors: Path, reference: Path | None) -> dict[str, Any]:
    """nDCG@10 of ``vectors`` and, with the sentence-transformers ``reference``, the parity cosines."""
    got = np.load(vectors)
    out: dict[str, Any] = {
        "ndcg@10": round(ndcg_at_10(qs, got["docs"], got["queries"]), 4),
        "quality_docs_per_s": round(float(got["docs_per_s"]), 2),
    }
    if reference is not None:
        ref = np.load(reference)
        cos = (got["parity"] * ref["parity"]).sum(axis=1)
        out.update(
            parity_cos_mean=round(float(cos.mean()), 5),
            parity_cos_min=round(float(cos.min()), 5),
            parity_n=int(cos.size),
            fidelity_ok=bool(cos.mean() >= FIDELITY_MEAN and cos.min() >= FIDELITY_MIN),
        )
    return out


def prompts_of(model_dir: str | None, checkpoint: Path | None) -> dict[str, str]:
    """The prompts every engine shares: the model directory's manifest, else the checkpoint's config."""
    if model_dir is not None or checkpoint is None:
        from ..edge.model_dir import ModelDirectory, resolve_model_dir

        return dict(ModelDirectory.open(resolve_model_dir(model_dir), verify=False).manifest.prompts)
    cfg = json.loads((checkpoint / "config_sentence_transformers.json").read_text(encoding="utf-8"))
    return dict(cfg["prompts"])


def summary(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One line per row that misses the fidelity bar (for the table's footer)."""
    return [
        f"{r['label']}: parity mean {r['parity_cos_mean']}, min {r['parity_cos_min']} "
        f"(bar: mean >= {FIDELITY_MEAN}, min >= {FIDELITY_MIN})"
        for r in rows
        if r.get("fidelity_ok") is False
    ]


__all__ = [
    "DEFAULT_EXTRA_DOCS",
    "FIDELITY_MEAN",
    "FIDELITY_MIN",
    "QualitySet",
    "build_quality_set",
    "embed_quality_set",
    "ndcg_at_10",
    "prompts_of",
    "score",
    "summary",
]
