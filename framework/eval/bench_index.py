"""``edgeroute bench index [--ray]``: documents/s of ``edgeroute index`` in one process and on 1 and 2
Ray workers, against the bare ``EdgeEmbedder.embed_documents`` of the same texts.

The corpus is the first ``docs`` SciFact abstracts, one Markdown file each (as
``scripts/bench-index-passes`` writes them), indexed with ``--sensitivity public`` and no cloud into a
``chroma run`` server the bench starts on loopback (the one store a Ray job can write; the
single-process run writes to it too, so both pay the same writes). Every figure comes from a process
of its own, run one after another:

- ``bare`` / ``bare_1cpu``: ``embed_documents`` of the documents ``index`` makes (titles included), the
  model on every core / on one thread (one worker's share);
- ``single``: the index run in one process (model load, reads, checks, passes, writes, outbox);
- ``ray_N``: the same run on N actors of one CPU each (``index_with_ray``), the local cluster started
  first and timed apart (``cluster_start_s``): its start is paid once per cluster, not per job;
- ``ray_1xC``: one actor with all C cores, the single process's CPUs: only Ray's own cost differs;
- ``chroma_writes``: records/s one writer upserts into the server in groups of 16 (the store's ceiling).

Per Ray run: ``pool`` (the pool's wall time from the first job to the last result, with the actors'
start and model load, and the seconds the actors spent in jobs), the overhead of the actors' work
against ``bare_1cpu`` (``worker_overhead``: their job seconds per worker-document over the bare
embedding's), and the driver's own cost (``driver_cpu_s``: the CPU seconds of the driver process, which
reads, checks, writes and queues while the actors embed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError

DEFAULT_DOCS = 96


def write_corpus(data_dir: Path, folder: Path, n: int) -> int:
    """The first ``n`` SciFact abstracts of ``data_dir``, one ``.md`` file each; returns how many."""
    corpus = data_dir / "scifact" / "corpus.jsonl"
    if not corpus.is_file():
        raise ConfigurationError(
            f"no SciFact corpus at {corpus}: pass --data DIR (the folder holding scifact/corpus.jsonl) "
            "or set $EDGEROUTE_DATA"
        )
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    with corpus.open(encoding="utf-8") as f:
        for i, line in zip(range(n), f, strict=False):
            row = json.loads(line)
            (folder / f"{i:04d}-{row['_id']}.md").write_text(row["text"] + "\n", encoding="utf-8")
            written += 1
    return written


@contextmanager
def _chroma(tmp: Path) -> Iterator[str]:
    from ..testing.chroma_server import chroma_run

    with chroma_run(tmp / "chroma", tmp / "chroma.log") as port:
        yield f"http://127.0.0.1:{port}"


def _child(config: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "edgeroute.framework.eval.bench_index", json.dumps(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench index run {config['kind']} failed:\n{proc.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def run_bench_index(
    data_dir: Path,
    *,
    docs: int = DEFAULT_DOCS,
    ray: bool = True,
    workers: tuple[int, ...] = (1, 2),
    model_dir: str | None = None,
    rounds: int = 1,
    on_step: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every run (see the module docstring), and the ratios the targets are set on.

    ``rounds`` > 1 runs the whole sequence that many times, interleaved (on a shared box the load moves
    between runs), and reports each run's median round (by documents/s) with every round's figure in
    ``rounds``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GOOGLE_", "EDGEROUTE_"))}
    env["NO_PROXY"] = "127.0.0.1,localhost"
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    model = model_dir or os.environ.get("EDGEROUTE_EDGE_MODEL")
    with tempfile.TemporaryDirectory(prefix="bench-index-") as raw:
        tmp = Path(raw)
        folder = tmp / "docs"
        n = write_corpus(data_dir, folder, docs)
        out: dict[str, Any] = {"files": n, "model": model or "default", "cpus": os.cpu_count()}
        base = {"folder": str(folder), "model": model}
        with _chroma(tmp) as url:
            runs: list[tuple[str, dict[str, Any]]] = [
                ("bare", {"kind": "bare", "threads": None}),
                ("bare_1cpu", {"kind": "bare", "threads": 1}),
                ("single", {"kind": "single"}),
                ("chroma_writes", {"kind": "chroma", "records": 2048, "batch": 16}),
            ]
            if ray:
                runs += [(f"ray_{w}", {"kind": "ray", "workers": w, "cpus": 1}) for w in workers]
                # One worker with every core: the single process's CPUs, so only Ray's own cost differs.
                cores = os.cpu_count() or 1
                if cores > 1:
                    runs.append((f"ray_1x{cores}", {"kind": "ray", "workers": 1, "cpus": cores}))
            seen: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in runs}
            for r in range(rounds):
                for name, config in runs:
                    if on_step is not None:
                        on_step(f"{name} ({r + 1}/{rounds})")
                    tag = f"{name}-{r}"
                    seen[name].append(
                        _child(
                            {**base, **config, "chroma_url": url, "store": str(tmp / tag), "collection": tag},
                            env,
                        )
                    )
            for name, got in seen.items():
                key = "records_per_s" if name == "chroma_writes" else "docs_per_s"
                ranked = sorted(got, key=lambda row: float(row[key]))
                out[name] = {**ranked[len(ranked) // 2], "rounds": [row[key] for row in got]}
    single = out["single"]["docs_per_s"]
    out["ratios"] = {
        f"{k}_vs_single": round(out[k]["docs_per_s"] / single, 3) for k in out if k.startswith("ray_")
    }
    out["ratios"]["single_vs_bare"] = round(single / out["bare"]["docs_per_s"], 3)
    for k in [k for k in out if k.startswith("ray_")]:
        pool = out[k]["pool"]
        per_doc = pool["worker_s"] / max(1, pool["documents"])
        bare_run = out["bare_1cpu"] if out[k]["cpus_per_worker"] == 1 else out["bare"]
        bare1 = bare_run["seconds"] / max(1, bare_run["documents"])
        out[k]["worker_overhead"] = round(per_doc / bare1 - 1, 3)
    return out


# -- one measured run, in a process of its own ------------------------------------------------------


def _settings(config: dict[str, Any]) -> Any:
    from ..settings import resolve_settings

    return resolve_settings(
        store=config["store"],
        collection=config["collection"],
        model_dir=config["model"],
        chroma_url=config["chroma_url"],
        offline=True,
        cache="off",
        env={},
    )


def _documents(folder: str) -> list[Any]:
    from ..cli.progress import quiet
    from ..cli.sources import load_sources

    return [d for d in load_sources([Path(folder)], "public", quiet).docs if d.text.strip()]


def _measure(config: dict[str, Any]) -> dict[str, Any]:
    kind = config["kind"]
    if kind == "chroma":
        return _chroma_writes(config)
    if kind == "bare":
        from ..edge.embedder import EdgeEmbedder

        docs = _documents(config["folder"])
        edge = EdgeEmbedder.load(config["model"], threads=config["threads"])
        t0 = time.perf_counter()
        edge.embed_documents([d.text for d in docs], titles=[d.title for d in docs])
        s = time.perf_counter() - t0
        return {"documents": len(docs), "seconds": round(s, 3), "docs_per_s": round(len(docs) / s, 3)}
    from ..cli.index_run import run_index
    from ..cli.progress import quiet

    settings = _settings(config)
    folder = Path(config["folder"])
    if kind == "single":
        t0, c0 = time.perf_counter(), time.process_time()
        done = run_index(settings, [folder], "public", progress=quiet)
        s = time.perf_counter() - t0
        assert done.report is not None
        n = done.report.documents
        return {
            "documents": n,
            "seconds": round(s, 3),
            "docs_per_s": round(n / s, 3),
            "cpu_s": round(time.process_time() - c0, 3),
        }
    import ray

    from ..distributed import index_with_ray

    workers, cpus = int(config["workers"]), int(config["cpus"])
    t0 = time.perf_counter()
    ray.init(num_cpus=workers * cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    start = time.perf_counter() - t0
    try:
        t1, c1 = time.perf_counter(), time.process_time()
        ray_done = index_with_ray(
            [folder], settings=settings, workers=workers, cpus_per_worker=cpus, sensitivity="public"
        )
        s = time.perf_counter() - t1
        cpu = time.process_time() - c1
    finally:
        ray.shutdown()
    assert ray_done.report is not None and ray_done.pool is not None
    n = ray_done.report.documents
    return {
        "workers": workers,
        "cpus_per_worker": cpus,
        "documents": n,
        "seconds": round(s, 3),
        "docs_per_s": round(n / s, 3),
        "cluster_start_s": round(start, 3),
        "docs_per_s_with_start": round(n / (s + start), 3),
        "driver_cpu_s": round(cpu, 3),
        "driver_cpu_ms_per_doc": round(1000 * cpu / max(1, n), 2),
        "pool": ray_done.pool.to_dict(),
    }


def _chroma_writes(config: dict[str, Any]) -> dict[str, Any]:
    """Records/s one writer upserts into the server, as ingest writes them (groups of ``batch``,
    768-dim vectors, a SciFact-sized text and the CLI's metadata): the store's side of the ceiling."""
    import numpy as np

    from ..settings import parse_chroma_url
    from ..spaces import EmbeddingSpace
    from ..store.chroma import VectorStore

    n, batch = int(config["records"]), int(config["batch"])
    host, port = parse_chroma_url(config["chroma_url"])
    store = VectorStore.http(host, port)
    space = EmbeddingSpace("edge", "bench/chroma-writes", "1", 768, "none", "none")
    col = store.create_collection(f"{config['collection']}.edge", space)
    rng = np.random.default_rng(0)
    text = "x" * 1500
    meta: dict[str, str | int | float | bool] = {
        "path": "/data/docs/0000-doc.md",
        "origin": "/data/docs",
        "source": "0000-doc.md",
        "chunk": 0,
    }
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        ids = [f"doc-{i}" for i in range(start, min(n, start + batch))]
        vecs = rng.standard_normal((len(ids), 768)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        col.upsert(
            ids,
            vecs,
            space=space,
            texts=[text] * len(ids),
            metadatas=[meta] * len(ids),
            content_hashes=[f"h{i}" for i in ids],
        )
    s = time.perf_counter() - t0
    store.close()
    return {"records": n, "batch": batch, "seconds": round(s, 3), "records_per_s": round(n / s, 1)}


if __name__ == "__main__":
    print(json.dumps(_measure(json.loads(sys.argv[1]))))


__all__ = ["DEFAULT_DOCS", "run_bench_index", "write_corpus"]
