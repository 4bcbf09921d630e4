"""``edgeroute bench edge``: latency, throughput, load time and peak RSS of the on-device embedder.

Each engine is measured in its own subprocess (``python -m edgeroute.framework.eval.bench_edge``), so
peak RSS is that engine's alone and one engine's warm caches never help the other. When
sentence-transformers is importable and a checkpoint is given, it is measured in the same run on
the same texts, and the ratios are reported. All figures are medians over repeats.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigurationError, InputError

DATA_ENV = "EDGEROUTE_DATA"
"""The environment variable naming the folder that holds ``scifact/`` when ``--data`` is not given."""
DEFAULT_CHECKPOINT = Path.home() / ".cache" / "edgeroute-dev" / "embeddinggemma-300m"

# Short queries typed by people: the latency case the router cares about.
BENCH_QUERIES: tuple[str, ...] = (
    "what causes dehydration?",
    "vitamin d deficiency symptoms",
    "does aspirin prevent heart attacks",
    "how do vaccines work",
    "capital of australia",
    "symptoms of type 2 diabetes",
    "is coffee bad for you",
    "how much sleep do adults need",
    "what is crispr",
    "side effects of statins",
)
NINE_WORD_QUERY = "what are the side effects of taking statins daily"
"""The issue's latency case, a 9-word query (16 tokens with the query prompt), timed on its own."""


@dataclass(frozen=True)
class EngineFigures:
    """What one engine measured (latencies in ms, throughput in docs/s, RSS in MB)."""

    engine: str
    load_s: float
    query_p50_ms: float
    query_p95_ms: float
    docs_per_s: float
    query_peak_rss_mb: float
    peak_rss_mb: float
    n_docs: int
    doc_batch_size: int
    mean_doc_tokens: float
    threads: int
    load_peak_rss_mb: float = 0.0
    tokenizer: str = ""
    query_9w_p50_ms: float = 0.0


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """``data_dir``, else ``$EDGEROUTE_DATA``: the folder holding ``scifact/`` (BEIR layout)."""
    chosen = data_dir or os.environ.get(DATA_ENV)
    if not chosen:
        raise ConfigurationError(
            "no benchmark data folder: pass --data DIR (the folder holding scifact/corpus.jsonl, "
            f"BEIR layout) or set ${DATA_ENV}."
        )
    return Path(chosen).expanduser()


def load_sample_docs(data_dir: str | os.PathLike[str] | None, n: int = 64) -> list[tuple[str, str]]:
    """The first ``n`` SciFact abstracts as (title, text): a fixed, real sample."""
    corpus = resolve_data_dir(data_dir) / "scifact" / "corpus.jsonl"
    if not corpus.is_file():
        raise ConfigurationError(
            f"benchmark sample {corpus} not found; pass --data DIR (the folder holding scifact/) "
            f"or set ${DATA_ENV}."
        )
    docs: list[tuple[str, str]] = []
    with corpus.open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            docs.append((str(row.get("title") or ""), str(row["text"])))
            if len(docs) == n:
                break
    return docs


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))
    return ordered[k]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


@dataclass(frozen=True, slots=True)
class BenchPlan:
    """How one engine is measured: intra-op ``threads`` (None: every core), the document batch size,
    rounds of the short queries and repeats of the document pass."""

    threads: int | None = None
    batch_size: int = 16
    query_rounds: int = 5
    doc_repeats: int = 3

    @property
    def cpu_threads(self) -> int:
        return self.threads or os.cpu_count() or 1


Loader = Callable[[], tuple[Callable[[str], object], Callable[[list[str], list[str]], object]]]


def _time_engine(name: str, load: Loader, docs: list[tuple[str, str]], plan: BenchPlan) -> EngineFigures:
    start = time.perf_counter()
    embed_query, embed_docs = load()
    load_s = time.perf_counter() - start
    load_rss = _peak_rss_mb()  # the load alone: tokenizer, session, weights
    for q in BENCH_QUERIES[:3]:  # warm-up: first runs allocate and pick kernels
        embed_query(q)
    lat: list[float] = []
    for _ in range(plan.query_rounds):
        for q in BENCH_QUERIES:
            t = time.perf_counter()
            embed_query(q)
            lat.append((time.perf_counter() - t) * 1000)
    lat9: list[float] = []
    for _ in range(plan.query_rounds * 4):
        t = time.perf_counter()
        embed_query(NINE_WORD_QUERY)
        lat9.append((time.perf_counter() - t) * 1000)
    query_rss = _peak_rss_mb()  # a query-serving process: load + batch-1 queries only
    titles = [t for t, _ in docs]
    texts = [x for _, x in docs]
    rates: list[float] = []
    for _ in range(plan.doc_repeats):
        t = time.perf_counter()
        embed_docs(texts, titles)
        rates.append(len(texts) / (time.perf_counter() - t))
    return EngineFigures(
        engine=name,
        load_s=round(load_s, 3),
        query_p50_ms=round(statistics.median(lat), 2),
        query_p95_ms=round(_percentile(lat, 0.95), 2),
        query_9w_p50_ms=round(statistics.median(lat9), 2),
        docs_per_s=round(statistics.median(rates), 2),
        query_peak_rss_mb=round(query_rss, 1),
        peak_rss_mb=round(_peak_rss_mb(), 1),
        n_docs=len(texts),
        doc_batch_size=plan.batch_size,
        mean_doc_tokens=0.0,
        threads=plan.cpu_threads,
        load_peak_rss_mb=round(load_rss, 1),
    )


QualityHook = Callable[[Callable[[list[str]], Any]], None]
"""Called after the timed part with the engine's encode (prompted texts -> vectors); see bench_quality."""


def measure_onnx(
    model_dir: str | None, docs: list[tuple[str, str]], plan: BenchPlan, quality: QualityHook | None = None
) -> EngineFigures:
    """Measure :class:`EdgeEmbedder` in this process (call it in a fresh process for honest RSS); any
    runtime the directory's graph file names (ONNX Runtime, OpenVINO, llama.cpp: see edge.runtimes)."""
    from ..edge.embedder import EdgeEmbedder

    holder: dict[str, EdgeEmbedder] = {}

    def load() -> tuple[Callable[[str], object], Callable[[list[str], list[str]], object]]:
        edge = EdgeEmbedder.load(model_dir, threads=plan.threads, batch_size=plan.batch_size)
        holder["edge"] = edge
        return (
            lambda q: edge.embed_queries([q]),
            lambda texts, titles: edge.embed_documents(texts, titles=list(titles)),
        )

    # Token counts come after the timed load so tokenizer work never inflates load time.
    figures = _time_engine("onnx", load, docs, plan)
    edge = holder["edge"]
    if quality is not None:
        quality(lambda texts: edge.embed(texts, None))
    tokens = edge.count_tokens([edge.format_prompt(x, "document", t or None) for t, x in docs])
    name = f"{'onnx' if edge.runtime == 'onnxruntime' else edge.runtime}[{edge.manifest.quantization}]"
    return EngineFigures(
        **{
            **asdict(figures),
            "engine": name,
            "mean_doc_tokens": round(float(np.mean(tokens)), 1),
            "tokenizer": edge.tokenizer_kind,
        }
    )


def measure_sentence_transformers(
    checkpoint: str, docs: list[tuple[str, str]], plan: BenchPlan, quality: QualityHook | None = None
) -> EngineFigures:
    """Measure sentence-transformers (fp32, torch, CPU) on ``checkpoint`` in this process."""
    holder: dict[str, Any] = {}

    def load() -> tuple[Callable[[str], object], Callable[[list[str], list[str]], object]]:
        import torch
        from sentence_transformers import SentenceTransformer

        if plan.threads:
            torch.set_num_threads(plan.threads)
        model = SentenceTransformer(checkpoint, device="cpu")
        holder["model"] = model

        def embed_docs(texts: list[str], titles: list[str]) -> object:
            prompts = [f"title: {t or 'none'} | text: {x}" for t, x in zip(titles, texts, strict=True)]
            return model.encode(prompts, batch_size=plan.batch_size, normalize_embeddings=True)

        return (lambda q: model.encode([q], prompt_name="query", normalize_embeddings=True), embed_docs)

    figures = _time_engine("sentence-transformers", load, docs, plan)
    if quality is not None:
        model = holder["model"]
        quality(
            lambda texts: model.encode(
                texts, batch_size=plan.batch_size, normalize_embeddings=True, convert_to_numpy=True
            )
        )
    return figures


def _run_worker(args: list[str], timeout_s: float) -> EngineFigures:
    proc = subprocess.run(
        [sys.executable, "-m", "edgeroute.framework.eval.bench_edge", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if proc.returncode != 0:
        raise ConfigurationError(f"benchmark worker {' '.join(args[:2])} failed:\n{proc.stderr[-2000:]}")
    return EngineFigures(**json.loads(proc.stdout.strip().splitlines()[-1]))


def run_bench(
    model_dir: str | None = None,
    *,
    checkpoint: str | None = None,
    reference: bool = True,
    data_dir: str | os.PathLike[str] | None = None,
    n_docs: int = 64,
    batch_size: int = 16,
    threads: int | None = None,
    query_rounds: int = 5,
    doc_repeats: int = 3,
    timeout_s: float = 3600,
    baseline_dir: str | Sequence[str] | None = None,
    quality: bool = False,
    quality_extra_docs: int = 300,
    quality_queries: int | None = None,
    on_step: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure the edge model and (when importable) sentence-transformers, each in a subprocess.

    Returns ``{"onnx": {...}, "sentence_transformers": {...} | None, "ratios": {...}, "rows": [...],
    "skipped": [...]}``. ``baseline_dir``: one or more other model directories (any runtime: ONNX,
    OpenVINO, GGUF; see :mod:`edgeroute.framework.edge.runtimes`), measured the same way in the same
    run; the first is also ``"baseline"``/``"baseline_ratios"`` (ours against it). A directory whose
    runtime package is missing is listed in ``"skipped"`` with the install line. ``quality`` adds the
    parity cosines against sentence-transformers and the SciFact subset's nDCG@10 to every row (see
    :mod:`.bench_quality`). Machines drift: a ratio measured side by side is the figure to compare
    across days, not an absolute latency.
    """
    from .bench_runtimes import Row, finish_rows, skip_reason

    if n_docs < 1 or batch_size < 1:
        raise InputError("n_docs and batch_size must be >= 1.")
    data = resolve_data_dir(data_dir)
    load_sample_docs(data, n_docs)  # fail early, in this process, with a clear message
    common = [
        "--data",
        str(data),
        "--n-docs",
        str(n_docs),
        "--batch-size",
        str(batch_size),
        "--query-rounds",
        str(query_rounds),
        "--doc-repeats",
        str(doc_repeats),
        "--quality-extra-docs",
        str(quality_extra_docs),
        *([] if quality_queries is None else ["--quality-queries", str(quality_queries)]),
    ]
    if threads:
        common += ["--threads", str(threads)]
    step = on_step or (lambda _msg: None)
    baselines = [baseline_dir] if isinstance(baseline_dir, str) else list(baseline_dir or [])
    skipped: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="edgeroute-bench-") as tmp:

        def worker(engine: str, model: str | None, label: str) -> Row:
            out = Path(tmp) / f"q{len(rows)}.npz"
            args = ["--engine", engine, *([] if model is None else ["--model", model]), *common]
            fig = _run_worker([*args, *(["--quality-out", str(out)] if quality else [])], timeout_s)
            return Row(label, fig, out if quality else None)

        rows: list[Row] = []
        step("onnx")
        rows.append(
            worker("onnx", None if model_dir is None else str(model_dir), str(model_dir or "default"))
        )
        for base in baselines:
            reason = skip_reason(base)
            if reason:
                skipped.append({"label": str(base), "reason": reason})
                continue
            step(str(base))
            try:  # one runtime failing (a crash in its native code) must not lose the other rows
                rows.append(worker("onnx", str(base), str(base)))
            except (ConfigurationError, subprocess.TimeoutExpired) as exc:
                skipped.append({"label": str(base), "reason": f"failed: {str(exc)[-600:]}"})
        ckpt = Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
        st_row: Row | None = None
        if reference and _st_importable() and (ckpt / "modules.json").is_file():
            step("sentence-transformers")
            st_row = worker("st", str(ckpt), "sentence-transformers")
        elif quality:
            skipped.append(
                {"label": "parity", "reason": "sentence-transformers or the checkpoint is missing: no parity"}
            )
        subset = (quality_extra_docs, quality_queries) if quality else None
        table = finish_rows(rows, st_row, data, subset, model_dir, ckpt)
    onnx_fig = rows[0].figures
    result: dict[str, Any] = {"onnx": asdict(onnx_fig), "sentence_transformers": None, "ratios": None}
    if len(rows) > 1 and baselines:
        result["baseline"] = asdict(rows[1].figures)
        result["baseline_ratios"] = _ratios(onnx_fig, rows[1].figures)
    if st_row is not None:
        result["sentence_transformers"] = asdict(st_row.figures)
        result["ratios"] = _ratios(onnx_fig, st_row.figures)
    result["rows"] = table
    result["skipped"] = skipped
    return result


def _ratios(ours: EngineFigures, other: EngineFigures) -> dict[str, float | None]:
    return {
        "query_p50_speedup": round(other.query_p50_ms / ours.query_p50_ms, 2),
        "query_9w_p50_speedup": round(other.query_9w_p50_ms / ours.query_9w_p50_ms, 2)
        if ours.query_9w_p50_ms and other.query_9w_p50_ms
        else None,
        "throughput_ratio": round(ours.docs_per_s / other.docs_per_s, 2),
        "rss_ratio": round(ours.peak_rss_mb / other.peak_rss_mb, 3),
        "query_rss_ratio": round(ours.query_peak_rss_mb / other.query_peak_rss_mb, 3),
        "load_speedup": round(other.load_s / ours.load_s, 2),
    }


def _st_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("sentence_transformers") is not None


def scifact_ndcg(
    model_dir: str | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    dims: Sequence[int] = (768, 256),
    batch_size: int = 16,
    cache_file: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, float]:
    """SciFact test nDCG@10 (exact cosine search) of an edge model at each of ``dims``.

    Document prompt ``title: {title|none} | text: {text}``, as the sentence-transformers reference
    (0.7921 at 768 dims). Slow: encodes 5,183 abstracts. ``cache_file`` (.npy) keeps the 768-dim
    document vectors so a second call skips encoding.
    """
    from ..edge.embedder import EdgeEmbedder

    root = resolve_data_dir(data_dir) / "scifact"
    corpus = [json.loads(line) for line in (root / "corpus.jsonl").open(encoding="utf-8")]
    queries = {q["_id"]: q["text"] for q in map(json.loads, (root / "queries.jsonl").open(encoding="utf-8"))}
    qrels: dict[str, dict[str, int]] = {}
    for line in list((root / "qrels" / "test.tsv").open(encoding="utf-8"))[1:]:
        qid, did, score = line.rstrip("\n").split("\t")
        if int(score) > 0:
            qrels.setdefault(qid, {})[did] = int(score)
    edge = EdgeEmbedder.load(model_dir, batch_size=batch_size)
    if cache_file is not None and cache_file.is_file():
        doc_vecs = np.load(cache_file)
    else:
        parts = []
        step = 256
        for i in range(0, len(corpus), step):
            chunk = corpus[i : i + step]
            parts.append(
                edge.embed_documents(
                    [d["text"] or d["title"] for d in chunk], titles=[d["title"] or None for d in chunk]
                )
            )
            if progress is not None:
                progress(min(i + step, len(corpus)), len(corpus))
        doc_vecs = np.concatenate(parts)
        if cache_file is not None:
            np.save(cache_file, doc_vecs)
    qids = [q for q in qrels if q in queries]
    q_vecs = edge.embed_queries([queries[q] for q in qids])
    doc_ids = [d["_id"] for d in corpus]
    out: dict[str, float] = {}
    for d in dims:
        dv = doc_vecs[:, :d] / np.linalg.norm(doc_vecs[:, :d], axis=1, keepdims=True)
        qv = q_vecs[:, :d] / np.linalg.norm(q_vecs[:, :d], axis=1, keepdims=True)
        scores = qv @ dv.T
        total = 0.0
        for row, qid in enumerate(qids):
            top = np.argsort(-scores[row])[:10]
            rel = qrels[qid]
            dcg = sum(rel.get(doc_ids[j], 0) / math.log2(r + 2) for r, j in enumerate(top))
            ideal = sorted(rel.values(), reverse=True)[:10]
            idcg = sum(g / math.log2(r + 2) for r, g in enumerate(ideal))
            total += dcg / idcg
        out[f"ndcg@10_{d}"] = round(total / len(qids), 4)
    return out


def _worker(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="one engine's benchmark; prints one JSON line")
    p.add_argument("--engine", choices=["onnx", "st"], required=True)
    p.add_argument("--model")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--n-docs", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int)
    p.add_argument("--query-rounds", type=int, default=5)
    p.add_argument("--doc-repeats", type=int, default=3)
    p.add_argument("--quality-out", type=Path, help="also embed the quality set into this .npz")
    p.add_argument("--quality-extra-docs", type=int, default=300)
    p.add_argument("--quality-queries", type=int)
    a = p.parse_args(argv)
    docs = load_sample_docs(a.data, a.n_docs)
    plan = BenchPlan(a.threads, a.batch_size, a.query_rounds, a.doc_repeats)
    hook: QualityHook | None = None
    if a.quality_out is not None:
        from .bench_quality import build_quality_set, embed_quality_set, prompts_of

        st = a.engine == "st"
        prompts = prompts_of(None if st else a.model, Path(a.model) if st else None)
        qs = build_quality_set(
            a.data, prompts, extra_docs=a.quality_extra_docs, max_queries=a.quality_queries
        )

        def hook(encode: Callable[[list[str]], Any]) -> None:
            embed_quality_set(qs, encode, a.quality_out)

    if a.engine == "onnx":
        fig = measure_onnx(a.model, docs, plan, hook)
    else:
        fig = measure_sentence_transformers(a.model, docs, plan, hook)
    print(json.dumps(asdict(fig)))


if __name__ == "__main__":
    _worker()


__all__ = [
    "BENCH_QUERIES",
    "DATA_ENV",
    "EngineFigures",
    "load_sample_docs",
    "resolve_data_dir",
    "run_bench",
    "scifact_ndcg",
]
