"""``edgeroute policy fit|check`` and ``edgeroute bench tools``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from .app import bench_app, policy_app

_console = Console()


@policy_app.command("fit")
def policy_fit(
    examples: Annotated[
        Path | None, typer.Option(help="JSONL of {text, label}; label 'normal' marks ordinary queries")
    ] = None,
    out: Annotated[Path, typer.Option(help="where to write the fitted routes")] = Path(
        "semantic_routes.json"
    ),
    model: Annotated[Path | None, typer.Option(help="on-device model directory")] = None,
    dims: Annotated[int, typer.Option(help="embedding dims (768/512/256/128)")] = 768,
    min_precision: Annotated[float, typer.Option(help="precision floor per route")] = 0.9,
    top_k: Annotated[int, typer.Option(help="neighbours averaged per route")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="print the fit as JSON")] = False,
) -> None:
    """Fit high-stakes semantic-route thresholds on labelled examples, embedded on-device."""
    from ..edge.embedder import EdgeEmbedder
    from ..router.policy_files import load_high_stakes_set
    from ..router.semantic_routes_file import fit_routes, save_routes

    texts, labels = load_high_stakes_set(examples)
    edge = EdgeEmbedder.load(model)
    with _console.status(f"embedding {len(texts)} labelled queries on-device", spinner="dots"):
        _, fit = fit_routes(edge, texts, labels, dims=dims, min_precision=min_precision, top_k=top_k)
    save_routes(out, edge, texts, labels, fit, dims=dims, top_k=top_k)
    result: dict[str, Any] = {
        "out": str(out),
        "overall": fit.overall,
        "routes": {
            name: {
                "threshold": s.threshold,
                "precision": s.precision,
                "recall": s.recall,
                "f1": s.f1,
                "support": s.support,
                "disabled": s.disabled,
            }
            for name, s in fit.stats.items()
        },
    }
    if as_json:
        print(json.dumps(result, indent=2))
        return
    table = Table(title=f"semantic routes -> {out}")
    for col in ("route", "threshold", "precision", "recall", "F1", "examples"):
        table.add_column(col)
    for name, s in fit.stats.items():
        thr = "disabled" if s.disabled else f"{s.threshold:.3f}"
        table.add_row(name, thr, f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.f1:.3f}", str(s.support))
    _console.print(table)
    o = fit.overall
    _console.print(
        f"any high-stakes route vs normal: precision {o['precision']:.3f}, recall {o['recall']:.3f}"
    )


@policy_app.command("check")
def policy_check(path: Annotated[Path, typer.Argument(help="policy file (.toml, .yaml)")]) -> None:
    """Validate a policy file and print the effective configuration."""
    from ..router.policy_files import load_policy_file

    config = load_policy_file(path)
    print(json.dumps(config.model_dump(mode="json"), indent=2))


@bench_app.command("tools")
def bench_tools(
    data: Annotated[
        Path | None,
        typer.Option(help="folder with tools.jsonl and requests.jsonl (default: the shipped 14-tool set)"),
    ] = None,
    shots: Annotated[
        int | None, typer.Option(help="registration examples per tool (default: all the folder has)")
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="on-device model directory (default: resolved as usual)")
    ] = None,
    embedder: Annotated[str, typer.Option(help="'edge' (EmbeddingGemma), 'tiny' or 'hashing'")] = "edge",
    threads: Annotated[int | None, typer.Option(help="onnxruntime intra-op threads")] = None,
    cache: Annotated[
        Path | None, typer.Option(help="SQLite embedding cache to reuse across runs (default: in memory)")
    ] = None,
    timed: Annotated[int, typer.Option(help="requests timed one at a time for the latency figures")] = 100,
    calibrate: Annotated[
        str,
        typer.Option(
            help="'auto': choose the threshold on the folder's fit requests when it has them; 'registry': "
            "on held-out folds of the registered examples only (a user with no labelled requests)"
        ),
    ] = "auto",
    max_false_reject: Annotated[
        float | None,
        typer.Option(help="the fit's target instead of the default (share of right answers refused)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Agent tool routing: in-scope accuracy, out-of-scope recall, multi-tool precision/recall, p50, fit time."""
    # The CLI is the composition root, so it alone may reach into connectors (lazily, at call time).
    from edgeroute.connectors.bench_tools import make_embedder
    from edgeroute.connectors.tools.bench import measure_tool_routing

    from ..store.cache import EmbeddingCache

    if shots is not None and shots < 1:
        raise typer.BadParameter(f"--shots must be at least 1, got {shots}")
    if calibrate not in ("auto", "registry"):
        raise typer.BadParameter(f"--calibrate is 'auto' or 'registry', got {calibrate!r}")
    if max_false_reject is not None and not 0.0 <= max_false_reject <= 1.0:
        raise typer.BadParameter(f"--max-false-reject is a share between 0 and 1, got {max_false_reject}")
    edge = make_embedder(embedder, model, threads)
    store = EmbeddingCache(cache) if cache is not None else None
    try:

        def measure() -> dict[str, Any]:
            return measure_tool_routing(
                edge,
                data_dir=data,
                shots=shots,
                cache=store,
                timed=timed,
                calibrate=calibrate,
                max_false_reject=max_false_reject,
            )

        if as_json:
            print(json.dumps(measure(), indent=2))
            return
        with _console.status("fitting and routing the test requests", spinner="dots"):
            figures = measure()
    finally:
        if store is not None:
            store.close()
    table = Table(
        title=f"tool routing on {figures['data']} (fit on the fit split, measured on the test split)"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    _console.print(table)
