"""``edgeroute model export|verify|info`` and ``edgeroute bench edge`` (registered on the shared app)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..edge.export.quantize import DEFAULT_RECIPE, RECIPES
from ..edge.model_dir import ModelDirectory
from .app import app, bench_app, model_app, policy_app  # noqa: F401

_out = Console()
_err = Console(stderr=True)


def _spinner() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=_err)


@model_app.command("export")
def export_command(
    checkpoint: Annotated[
        Path,
        typer.Option("--from", help="sentence-transformers checkpoint directory (official or a fine-tune)"),
    ],
    out: Annotated[Path, typer.Option("--out", help="model directory to write (replaced only on success)")],
    quantize: Annotated[
        str,
        typer.Option(help=f"none (fp32) or a recipe: {', '.join(RECIPES)}; see docs/edge-model.md"),
    ] = DEFAULT_RECIPE,
    verify: Annotated[
        bool, typer.Option(help="check parity against sentence-transformers before success")
    ] = True,
    fp32_onnx: Annotated[
        Path | None, typer.Option(help="reuse an earlier fp32 model.onnx instead of tracing again")
    ] = None,
    fuse: Annotated[
        bool,
        typer.Option(help="fuse norms, GELU and attention into ORT kernels (--no-fuse: the plain trace)"),
    ] = True,
    json_out: Annotated[bool, typer.Option("--json", help="print the manifest and parity as JSON")] = False,
) -> None:
    """Export CHECKPOINT to an ONNX model directory, quantize it, and verify parity."""
    from ..edge.export.exporter import export_model

    with _spinner() as progress:
        task = progress.add_task("starting", total=None)
        manifest, report = export_model(
            checkpoint,
            out,
            quantize=quantize,
            verify=verify,
            fp32_onnx=fp32_onnx,
            fuse=fuse,
            progress=lambda msg: progress.update(task, description=msg),
        )
    if json_out:
        _out.print_json(json.dumps({"model_dir": str(out), "manifest": manifest.to_json()}))
        return
    size = sum((out / f).stat().st_size for f in manifest.files) / 1e6
    _out.print(f"[green]exported[/] {out}  quantization={manifest.quantization}  {size:.0f} MB")
    if report is not None:
        _out.print(
            f"parity vs sentence-transformers: cosine min {report.cosine_min:.5f}, mean {report.cosine_mean:.5f}"
        )


@model_app.command("verify")
def verify_command(model_dir: Annotated[Path, typer.Argument(help="model directory to check")]) -> None:
    """Check every file's sha256 against the manifest and embed one text."""
    from ..edge.embedder import EdgeEmbedder

    directory = ModelDirectory.open(model_dir, verify=False)
    with _spinner() as progress:
        task = progress.add_task("hashing", total=None)
        directory.verify(progress=lambda name: progress.update(task, description=f"sha256 {name}"))
    edge = EdgeEmbedder(directory)
    vec = edge.embed_queries(["edgeroute verify"])
    _out.print(
        f"[green]ok[/] {model_dir}: {len(directory.manifest.files)} files match the manifest; "
        f"embedding shape {vec.shape}; tokenizer: {edge.tokenizer_kind}"
    )


@model_app.command("info")
def info_command(
    model_dir: Annotated[Path, typer.Argument(help="model directory")],
    json_out: Annotated[bool, typer.Option("--json", help="print the manifest as JSON")] = False,
) -> None:
    """Show a model directory's manifest (no hashing; use `model verify` for that)."""
    m = ModelDirectory.open(model_dir, verify=False).manifest
    if json_out:
        _out.print_json(json.dumps(m.to_json()))
        return
    table = Table(show_header=False)
    for key, value in [
        ("model", m.model_id),
        ("revision", m.revision[:16]),
        ("dims", f"{m.dims} (Matryoshka {', '.join(map(str, m.matryoshka_dims))})"),
        ("max tokens", str(m.max_tokens)),
        ("quantization", m.quantization),
        ("prompt format", m.prompt_format),
        ("prompts", ", ".join(sorted(m.prompts))),
        ("modalities", ", ".join(m.modalities)),
        ("files", ", ".join(f"{k} ({(Path(model_dir) / k).stat().st_size / 1e6:.1f} MB)" for k in m.files)),
    ]:
        table.add_row(key, value)
    parity = m.export.get("parity")
    if isinstance(parity, dict):
        table.add_row("parity", f"cosine min {parity.get('cosine_min')}, mean {parity.get('cosine_mean')}")
    _out.print(table)


@bench_app.command("edge")
def bench_edge_command(
    model: Annotated[
        Path | None, typer.Option(help="model directory (default: resolved as at run time)")
    ] = None,
    checkpoint: Annotated[
        Path | None, typer.Option(help="sentence-transformers checkpoint for the reference figures")
    ] = None,
    reference: Annotated[
        bool, typer.Option(help="also measure sentence-transformers when importable")
    ] = True,
    data: Annotated[
        Path | None,
        typer.Option(
            help="folder holding scifact/ (the document sample, BEIR layout) \\[env EDGEROUTE_DATA]"
        ),
    ] = None,
    threads: Annotated[int | None, typer.Option(help="intra-op threads (default: all cores)")] = None,
    baseline: Annotated[
        list[Path] | None,
        typer.Option(
            help="another model directory to measure in the same run (repeatable; any runtime: ONNX, "
            "OpenVINO model.xml, llama.cpp model.gguf; e.g. a --no-fuse fp32 export)"
        ),
    ] = None,
    runtimes: Annotated[
        Path | None,
        typer.Option(
            help="measure every model directory under this folder too (scripts/convert-runtimes writes "
            "~/.cache/edgeroute-dev/runtimes); one whose runtime is not installed is skipped, and said so"
        ),
    ] = None,
    quality: Annotated[
        bool,
        typer.Option(
            help="also parity cosine vs sentence-transformers (64 texts) and nDCG@10 on a fixed SciFact "
            "subset for every row (minutes per row)"
        ),
    ] = False,
    quality_extra_docs: Annotated[
        int, typer.Option(help="SciFact subset: every relevant abstract plus this many others (seed 0)")
    ] = 300,
    quality_queries: Annotated[
        int | None, typer.Option(help="SciFact subset: only the first N test queries (default all 300)")
    ] = None,
    n_docs: Annotated[int, typer.Option(help="SciFact abstracts in the throughput sample")] = 64,
    query_rounds: Annotated[int, typer.Option(help="rounds of the 10 short queries")] = 5,
    doc_repeats: Annotated[int, typer.Option(help="repeats of the document pass (median)")] = 3,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Short-query latency, document throughput, cold load and peak RSS, each engine in its own process."""
    from ..eval.bench_edge import resolve_data_dir, run_bench

    data_dir = resolve_data_dir(data)  # refused before the spinner starts
    others = [str(b) for b in baseline or []]
    if runtimes is not None:
        if not runtimes.expanduser().is_dir():
            raise typer.BadParameter(f"{runtimes} is not a folder; run scripts/convert-runtimes first.")
        others += [str(d) for d in sorted(runtimes.expanduser().iterdir()) if (d / "manifest.json").is_file()]
    with _spinner() as progress:
        task = progress.add_task("measuring", total=None)
        result = run_bench(
            str(model) if model else None,
            checkpoint=str(checkpoint) if checkpoint else None,
            reference=reference,
            data_dir=data_dir,
            threads=threads,
            n_docs=n_docs,
            query_rounds=query_rounds,
            doc_repeats=doc_repeats,
            baseline_dir=others,
            quality=quality,
            quality_extra_docs=quality_extra_docs,
            quality_queries=quality_queries,
            on_step=lambda engine: progress.update(task, description=f"measuring {engine} (own process)"),
        )
    if json_out:
        print(json.dumps(result))
        return
    if len(result["rows"]) > 2 or others or quality:
        _print_rows(result)
        return
    table = Table("figure", "onnx", "sentence-transformers", "ratio")
    st = result["sentence_transformers"] or {}
    ratios = result["ratios"] or {}
    onnx = result["onnx"]
    for key, label, ratio in [
        ("query_p50_ms", "short query p50 (ms)", "query_p50_speedup"),
        ("query_p95_ms", "short query p95 (ms)", None),
        ("query_9w_p50_ms", "9-word query p50 (ms)", "query_9w_p50_speedup"),
        ("docs_per_s", f"documents/s (batch {onnx['doc_batch_size']})", "throughput_ratio"),
        ("load_s", "cold load (s)", "load_speedup"),
        ("query_peak_rss_mb", "peak RSS, queries only (MB)", "query_rss_ratio"),
        ("peak_rss_mb", "peak RSS, after documents (MB)", "rss_ratio"),
    ]:
        table.add_row(
            label, str(onnx[key]), str(st.get(key, "-")), str(ratios.get(ratio, "-")) if ratio else "-"
        )
    _out.print(table)
    _out.print(
        f"{onnx['engine']}, {onnx['n_docs']} SciFact abstracts (mean {onnx['mean_doc_tokens']} tokens), "
        f"{onnx['threads']} threads"
    )


def _print_rows(result: dict[str, object]) -> None:
    """One row per model directory (and sentence-transformers): speed against the first row, quality."""
    from ..eval.bench_quality import summary

    rows = result["rows"]
    assert isinstance(rows, list)
    table = Table(
        "engine / directory",
        "query p50 ms",
        "x first",
        "9-word p50 ms",
        "docs/s",
        "x first",
        "query RSS MB",
        "peak RSS MB",
        "parity mean / min",
        "nDCG@10 subset",
    )
    for r in rows:
        parity = f"{r['parity_cos_mean']} / {r['parity_cos_min']}" if "parity_cos_mean" in r else "-"
        table.add_row(
            escape(f"{r['engine']}\n{Path(r['label']).name}"),
            str(r["query_p50_ms"]),
            str(r["query_speedup"]),
            str(r.get("query_9w_p50_ms", "-")),
            str(r["docs_per_s"]),
            str(r["docs_ratio"]),
            str(r["query_peak_rss_mb"]),
            str(r["peak_rss_mb"]),
            parity,
            str(r.get("ndcg@10", "-")),
        )
    Console(width=max(_out.width, 176)).print(table)  # ten columns: never squeezed to 80 in a pipe
    first = rows[0]
    _out.print(
        f"{first['n_docs']} SciFact abstracts (mean {first['mean_doc_tokens']} tokens) for docs/s, "
        f"{first['threads']} threads; ratios against the first row, measured in this run"
    )
    for line in summary(rows):
        _out.print(f"[yellow]below the fidelity bar[/] {escape(line)}")
    skipped = result.get("skipped")
    for s in skipped if isinstance(skipped, list) else []:
        _out.print(f"[yellow]skipped[/] {escape(s['label'])}: {escape(s['reason'])}")
