"""Retrieval quality and speed on BEIR-layout data sets: nDCG@10, recall@100, MRR@10, docs/s, latency.

The default search step is exact cosine search in numpy (a matrix product over every document):
reference-grade numbers with no approximate-nearest-neighbour error mixed in, so a change in the
figures is a change in the embeddings. It is fast enough for evaluation sets (SciFact: 5,183 x 768
floats, well under a millisecond a query). Another search step (the router's edge/cloud/hybrid
paths) plugs in through :class:`SearchStep`.

Metrics follow the BEIR / pytrec_eval definitions: qrels with score > 0 are relevant; nDCG uses the
graded score as the gain, ``sum(rel_i / log2(i + 1))`` over the top k, divided by the same sum over
the ideal ordering; every query with qrels counts (a query with no relevant hit scores 0).
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..documents import Document
from ..embedder import Embedder, Vectors
from ..errors import InputError
from ..store.cache import CachedEmbedder, EmbeddingCache
from ..store.loaders import load_beir_corpus

Ranking = list[tuple[str, float]]
"""Document ids with scores, best first."""
ProgressFn = Callable[[str, int, int], None]
"""``progress(stage, done, total)``; stage is ``"index"`` or ``"query"``."""
Qrels = dict[str, dict[str, int]]


# -- data ------------------------------------------------------------------------------------------


def load_queries(path: str | Path) -> dict[str, str]:
    """``queries.jsonl`` (``{"_id", "text"}`` per line) as ``{query_id: text}``, in file order."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p} not found: a BEIR data set has queries.jsonl next to corpus.jsonl")
    out: dict[str, str] = {}
    with p.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                qid, text = str(rec["_id"]), rec["text"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise InputError(
                    f'{p}:{lineno}: expected a JSON object with "_id" and "text" ({exc})'
                ) from exc
            if not isinstance(text, str) or not text.strip():
                raise InputError(f"{p}:{lineno}: query {qid!r} has no text")
            out[qid] = text
    return out


def load_qrels(path: str | Path) -> Qrels:
    """A qrels TSV (``query-id  corpus-id  score``, header optional) as ``{qid: {doc_id: score}}``.

    Only scores > 0 are kept: they are the relevant documents.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"qrels file {p} not found: pass --qrels FILE or put qrels/test.tsv in the data set")
    out: Qrels = {}
    with p.open(encoding="utf-8", newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh, delimiter="\t"), start=1):
            if not row or (lineno == 1 and row[0] == "query-id"):
                continue
            if len(row) < 3:
                raise InputError(
                    f"{p}:{lineno}: expected 3 tab-separated columns (query-id, corpus-id, score)"
                )
            try:
                score = int(float(row[2]))
            except ValueError as exc:
                raise InputError(f"{p}:{lineno}: score {row[2]!r} is not a number") from exc
            if score > 0:
                out.setdefault(row[0], {})[row[1]] = score
    if not out:
        raise InputError(f"{p} has no relevant judgements (score > 0)")
    return out


def default_qrels_path(dataset_dir: Path) -> Path:
    """``qrels/test.tsv``, else the only ``qrels/*.tsv``."""
    test = dataset_dir / "qrels" / "test.tsv"
    if test.is_file():
        return test
    found = sorted((dataset_dir / "qrels").glob("*.tsv"))
    if len(found) == 1:
        return found[0]
    names = ", ".join(f.name for f in found) or "none"
    raise InputError(f"no qrels/test.tsv in {dataset_dir} (found: {names}): pass --qrels FILE")


@dataclass(frozen=True, slots=True)
class BeirDataset:
    """A loaded data set; ``queries`` holds only queries that have relevance judgements."""

    name: str
    corpus: list[Document]
    queries: dict[str, str]
    qrels: Qrels


def load_beir(
    dataset_dir: str | Path, *, qrels: str | Path | None = None, limit_queries: int | None = None
) -> BeirDataset:
    """Load corpus, queries and qrels; keep the first ``limit_queries`` judged queries."""
    d = Path(dataset_dir).expanduser()
    if not (d / "corpus.jsonl").is_file():
        raise InputError(
            f"{d} has no corpus.jsonl: point at a BEIR-layout directory (corpus, queries, qrels/)"
        )
    if limit_queries is not None and limit_queries < 1:
        raise InputError(f"limit_queries must be at least 1, got {limit_queries}")
    judged = load_qrels(Path(qrels) if qrels is not None else default_qrels_path(d))
    all_queries = load_queries(d / "queries.jsonl")
    queries = {q: t for q, t in all_queries.items() if q in judged}
    if not queries:
        raise InputError(f"none of the qrels' query ids appear in {d / 'queries.jsonl'}: wrong qrels file?")
    if limit_queries is not None:
        queries = dict(list(queries.items())[:limit_queries])
    corpus = list(load_beir_corpus(d / "corpus.jsonl"))
    return BeirDataset(d.name, corpus, queries, {q: judged[q] for q in queries})


# -- metrics ---------------------------------------------------------------------------------------


def ndcg_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k with graded gains (the trec_eval / pytrec_eval ``ndcg_cut`` definition)."""
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 100) -> float:
    """Share of the relevant documents found in the top k."""
    rel = {d for d, g in relevant.items() if g > 0}
    return len(rel.intersection(ranked[:k])) / len(rel) if rel else 0.0


def mrr_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """Reciprocal rank of the first relevant document in the top k, 0 if none."""
    for i, doc in enumerate(ranked[:k]):
        if relevant.get(doc, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def mean_metrics(rankings: Mapping[str, Sequence[str]], qrels: Qrels) -> dict[str, float]:
    """Mean nDCG@10, recall@100 and MRR@10 over every judged query (missing rankings count as empty)."""
    if not qrels:
        raise InputError("no judged queries to score")
    rows = [(rankings.get(q, []), rel) for q, rel in qrels.items()]
    return {
        "ndcg_at_10": statistics.fmean(ndcg_at_k(r, rel, 10) for r, rel in rows),
        "recall_at_100": statistics.fmean(recall_at_k(r, rel, 100) for r, rel in rows),
        "mrr_at_10": statistics.fmean(mrr_at_k(r, rel, 10) for r, rel in rows),
    }


# -- search steps ----------------------------------------------------------------------------------


class SearchStep(Protocol):
    """The pluggable part of :func:`run_eval`: index a corpus once, then answer one query at a time."""

    def index(self, corpus: Sequence[Document], progress: ProgressFn | None = None) -> None: ...

    def search(self, query: str, k: int) -> Ranking: ...

    @property
    def space_fingerprint(self) -> str:
        """The space(s) the rankings come from, for the report."""
        ...


class ExactCosineSearch:
    """Embeds the corpus (through a :class:`CachedEmbedder`) into one matrix and ranks by dot product.

    Documents are embedded in batches sorted by length (less padding); queries are embedded one at a
    time, uncached, so the latency figures are real.
    """

    def __init__(
        self, embedder: Embedder, dims: int | None, cache: EmbeddingCache | None, *, batch_size: int = 32
    ) -> None:
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        self.embedder = embedder
        self.dims = dims
        self.doc_embedder: Embedder = CachedEmbedder(embedder, cache) if cache is not None else embedder
        self.batch_size = batch_size
        self._ids: list[str] = []
        self._matrix: Vectors = np.zeros((0, 0), dtype=np.float32)

    @property
    def space_fingerprint(self) -> str:
        return self.embedder.space_for(self.dims).fingerprint

    def index(self, corpus: Sequence[Document], progress: ProgressFn | None = None) -> None:
        space = self.embedder.space_for(self.dims)
        order = sorted(range(len(corpus)), key=lambda i: len(corpus[i].text))
        matrix = np.empty((len(corpus), space.dims), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            matrix[idx] = self.doc_embedder.embed_documents(
                [corpus[i].text for i in idx], titles=[corpus[i].title for i in idx], dims=self.dims
            )
            if progress is not None:
                progress("index", min(start + self.batch_size, len(order)), len(order))
        self._ids = [d.id for d in corpus]
        self._matrix = matrix

    def search(self, query: str, k: int) -> Ranking:
        q = self.embedder.embed_queries([query], dims=self.dims)[0]
        return exact_top_k(self._matrix, q, self._ids, k)


def exact_top_k(matrix: Vectors, query: np.ndarray, ids: Sequence[str], k: int) -> Ranking:
    """The k best rows of ``matrix`` by dot product with ``query`` (cosine for unit vectors).

    Ties keep corpus order (a stable sort), so results are deterministic.
    """
    if len(ids) == 0:
        return []
    scores = matrix @ np.asarray(query, dtype=np.float32)
    k = min(k, len(ids))
    top = np.argpartition(-scores, k - 1)[:k] if k < len(ids) else np.arange(len(ids))
    top = top[np.lexsort((top, -scores[top]))]
    return [(ids[i], float(scores[i])) for i in top]


# -- the harness -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EvalReport:
    """Everything ``edgeroute eval`` prints. ``docs_per_s`` counts all documents over the indexing
    time, cached or not; ``docs_embedded`` says how many were actually encoded."""

    dataset: str
    space: str
    documents: int
    queries: int
    ndcg_at_10: float
    recall_at_100: float
    mrr_at_10: float
    index_seconds: float
    docs_per_s: float
    docs_embedded: int
    query_p50_ms: float
    query_p95_ms: float
    cache_hits: int
    cache_misses: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_eval(
    dataset_dir: str | Path,
    embedder: Embedder,
    dims: int | None,
    cache: EmbeddingCache | None,
    *,
    qrels: str | Path | None = None,
    limit_queries: int | None = None,
    search: SearchStep | None = None,
    batch_size: int = 32,
    progress: ProgressFn | None = None,
) -> EvalReport:
    """Index the corpus, run every judged query one at a time, and score the rankings.

    ``search`` defaults to :class:`ExactCosineSearch` over ``embedder`` at ``dims`` with document
    vectors cached in ``cache`` (a second run encodes nothing). Pass ``cache=None`` to encode anyway.
    """
    data = load_beir(dataset_dir, qrels=qrels, limit_queries=limit_queries)
    step = search if search is not None else ExactCosineSearch(embedder, dims, cache, batch_size=batch_size)
    before = cache.stats() if cache is not None else None

    t0 = time.perf_counter()
    step.index(data.corpus, progress)
    index_s = time.perf_counter() - t0
    after = cache.stats() if cache is not None else None

    rankings: dict[str, list[str]] = {}
    latencies: list[float] = []
    for n, (qid, text) in enumerate(data.queries.items(), start=1):
        t = time.perf_counter()
        ranking = step.search(text, 100)
        latencies.append((time.perf_counter() - t) * 1000.0)
        rankings[qid] = [doc for doc, _ in ranking]
        if progress is not None:
            progress("query", n, len(data.queries))

    scores = mean_metrics(rankings, data.qrels)
    hits = after.hits - before.hits if after and before else 0
    misses = after.misses - before.misses if after and before else len(data.corpus)
    return EvalReport(
        dataset=data.name,
        space=step.space_fingerprint,
        documents=len(data.corpus),
        queries=len(data.queries),
        ndcg_at_10=scores["ndcg_at_10"],
        recall_at_100=scores["recall_at_100"],
        mrr_at_10=scores["mrr_at_10"],
        index_seconds=index_s,
        docs_per_s=len(data.corpus) / index_s if index_s > 0 else float("inf"),
        docs_embedded=misses,
        query_p50_ms=float(np.percentile(latencies, 50)),
        query_p95_ms=float(np.percentile(latencies, 95)),
        cache_hits=hits,
        cache_misses=misses,
    )


__all__ = [
    "BeirDataset",
    "EvalReport",
    "ExactCosineSearch",
    "ProgressFn",
    "Ranking",
    "SearchStep",
    "default_qrels_path",
    "exact_top_k",
    "load_beir",
    "load_qrels",
    "load_queries",
    "mean_metrics",
    "mrr_at_k",
    "ndcg_at_k",
    "recall_at_k",
    "run_eval",
]
