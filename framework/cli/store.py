"""``edgeroute eval`` and ``edgeroute collections`` (registered on the shared app, see cli.app)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..embedder import Embedder
from ..errors import InputError
from .app import app, bench_app, model_app, policy_app  # noqa: F401

_err = Console(stderr=True)


def _make_embedder(kind: str, model: Path | None, dims: int | None) -> Embedder:
    if kind == "hashing":
        from ..testing.hashing import HashingEmbedder

        return HashingEmbedder(dims=dims or 256)
    if kind == "edge":
        from ..edge.embedder import (
            EdgeEmbedder,  # lazy: loading onnxruntime costs time the other commands need not pay
        )

        edge: Embedder = EdgeEmbedder.load(model)
        return edge
    if kind == "sentence-transformers":
        from ..edge.export.reference import SentenceTransformersEmbedder

        if model is None:
            raise InputError(
                "--embedder sentence-transformers needs --model CHECKPOINT_DIR (a sentence-transformers "
                "checkpoint, e.g. google/embeddinggemma-300m downloaded, or a fine-tune saved with model.save())"
            )
        return SentenceTransformersEmbedder(model)
    raise InputError(f"--embedder must be 'edge', 'hashing' or 'sentence-transformers', got {kind!r}")


@app.command("eval")
def eval_command(
    dataset_dir: Annotated[
        Path, typer.Argument(help="BEIR-layout directory: corpus.jsonl, queries.jsonl, qrels/")
    ],
    dims: Annotated[
        int | None, typer.Option(help="Embedding dims (Matryoshka); the model's default if unset")
    ] = None,
    qrels: Annotated[Path | None, typer.Option(help="Qrels TSV; default DATASET_DIR/qrels/test.tsv")] = None,
    limit_queries: Annotated[int | None, typer.Option(help="Score only the first N judged queries")] = None,
    model: Annotated[
        Path | None, typer.Option(help="On-device model directory (else resolved as usual)")
    ] = None,
    embedder: Annotated[
        str,
        typer.Option(
            help="'edge' (EmbeddingGemma, ONNX), 'sentence-transformers' (the reference on the checkpoint "
            "given by --model; needs the export extra) or 'hashing' (no model, for smoke tests)"
        ),
    ] = "edge",
    cache: Annotated[
        Path | None, typer.Option(help="Embedding cache file; default ~/.cache/edgeroute/embeddings.sqlite")
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Encode every document, cache nothing")
    ] = False,
    batch_size: Annotated[int, typer.Option(help="Documents per embedding call")] = 32,
    route: Annotated[
        list[str] | None,
        typer.Option(
            "--route",
            help="Evaluate through the router instead: edge, cloud, hybrid or auto (repeatable); "
            "same as `edgeroute eval-routes`",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table")] = False,
) -> None:
    """Score retrieval on a BEIR data set: nDCG@10, recall@100, MRR@10, indexing docs/s, query latency p50.

    With ``--route`` the corpus is indexed through the hybrid engine and each route is scored side by side
    (quality, share escalated, cloud tokens and cost, latency, routing regret).
    """
    from ..eval.retrieval import run_eval
    from ..store.cache import EmbeddingCache, default_cache_path

    if route:
        from .router import eval_routes_command

        eval_routes_command(
            dataset_dir,
            route=route,
            limit_queries=limit_queries,
            deadline_ms=None,
            store=None,
            edge="hashing" if embedder == "hashing" else None,
            model=model,
            policy=None,
            emulator=None,
            as_json=as_json,
        )
        return

    emb = _make_embedder(embedder, model, dims)
    store = None if no_cache else EmbeddingCache(cache or default_cache_path())
    stages: dict[str, TaskID] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_err,
        transient=True,
        disable=as_json or not _err.is_terminal,
    ) as bar:

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in stages:
                label = "embedding documents" if stage == "index" else "running queries"
                stages[stage] = bar.add_task(label, total=total)
            bar.update(stages[stage], completed=done)

        try:
            report = run_eval(
                dataset_dir,
                emb,
                dims,
                store,
                qrels=qrels,
                limit_queries=limit_queries,
                batch_size=batch_size,
                progress=progress,
            )
        finally:
            if store is not None:
                store.close()
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    table = Table(title=f"{report.dataset}: {report.documents} documents, {report.queries} queries")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows: list[tuple[str, str]] = [
        ("space", report.space),
        ("nDCG@10", f"{report.ndcg_at_10:.4f}"),
        ("recall@100", f"{report.recall_at_100:.4f}"),
        ("MRR@10", f"{report.mrr_at_10:.4f}"),
        ("indexing docs/s", f"{report.docs_per_s:.1f} ({report.docs_embedded} encoded)"),
        ("query latency p50 / p95", f"{report.query_p50_ms:.1f} / {report.query_p95_ms:.1f} ms"),
        ("cache hits / misses", f"{report.cache_hits} / {report.cache_misses}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    Console().print(table)


@app.command("collections")
def collections_command(
    store: Annotated[
        Path | None, typer.Option(help="Store directory (as given to `edgeroute index --store`)")
    ] = None,
    chroma_url: Annotated[
        str | None,
        typer.Option("--chroma-url", help="A `chroma run` server (http://HOST:PORT) \\[env EDGEROUTE_CHROMA_URL]"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
) -> None:
    """List the collections in a store with their embedding spaces and record counts (never waits for a
    writer)."""
    from ..settings import open_store, resolve_settings

    settings = resolve_settings(store=store, chroma_url=chroma_url)
    if settings.chroma_url is None and store is None and not os.environ.get("EDGEROUTE_STORE"):
        raise InputError("say which store: --store DIR (as given to `edgeroute index`) or --chroma-url URL")
    if settings.chroma_url is None and not settings.store.is_dir():
        raise InputError(f"no store at {settings.store}: pass the directory you indexed into with --store")
    with open_store(settings, read_only=True) as opened:  # listing never writes
        infos = opened.describe()
    where = settings.chroma_url or str(settings.store)
    if as_json:
        rows: list[dict[str, Any]] = [
            {"name": i.name, "space": i.space.fingerprint if i.space else None, "count": i.count}
            for i in infos
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    if not infos:
        Console().print(f"no collections in {where}")
        return
    table = Table(title=f"collections in {where}")
    for col in ("name", "space", "provider"):
        table.add_column(col)
    table.add_column("count", justify="right")
    for i in infos:
        space = i.space.fingerprint if i.space else "(not an edgeroute collection)"
        table.add_row(i.name, space, i.space.provider if i.space else "-", str(i.count))
    Console().print(table)
