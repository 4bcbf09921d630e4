"""Commands that write documents: index and delete."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..errors import InputError
from ..settings import build_engine
from .app import app, bench_app
from .exit_codes import ExitCode
from .options import (
    ChromaUrlOpt,
    CollectionOpt,
    EdgeOpt,
    JsonOpt,
    LockTimeoutOpt,
    ModelOpt,
    OfflineOpt,
    PolicyOpt,
    StoreOpt,
    check_sensitivity_option,
    err,
    exit_with,
    out,
    print_json,
    settings_from,
    warn,
)
from .progress import progress_bars


@app.command("index")
def index_command(
    paths: Annotated[
        list[Path],
        typer.Argument(help=".txt/.md files, images (.png/.jpg), PDFs, directories, BEIR corpus.jsonl"),
    ],
    store: StoreOpt = None,
    collection: CollectionOpt = None,
    sensitivity: Annotated[
        str, typer.Option(help="Sensitivity of every document: public, internal, confidential, restricted")
    ] = "internal",
    prune: Annotated[
        bool,
        typer.Option(
            "--prune/--no-prune",
            help="Mirror each PATH: remove documents and chunks indexed from it before that it no longer "
            "holds (default). Only documents indexed from the same PATH are ever removed.",
        ),
    ] = True,
    skip_bad: Annotated[
        bool,
        typer.Option(
            "--skip-bad", help="Index the good files and list the bad ones, instead of refusing the run"
        ),
    ] = False,
    id_prefix: Annotated[
        str | None,
        typer.Option(
            "--id-prefix",
            help="Ids become NAME/<path in PATH>#<chunk>, so two folders with files of the same names can "
            "share a collection. Recorded: re-indexing PATH keeps it without the option.",
            metavar="NAME",
        ),
    ] = None,
    policy: PolicyOpt = None,
    edge: EdgeOpt = None,
    model: ModelOpt = None,
    offline: OfflineOpt = False,
    chroma_url: ChromaUrlOpt = None,
    lock_timeout: LockTimeoutOpt = None,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            help="Run the model passes on a Ray cluster: `local` starts one on this machine for the run, "
            "an address (`auto`, `ray://HOST:10001`) joins one. Needs --chroma-url and the ray extra "
            "(pip install 'edgeroute\\[ray]'); everything else (checks, writes, outbox, pruning) stays here",
            metavar="ADDRESS",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Ray actors, one edge model each (default: one per --cpus-per-worker CPUs of the "
            "cluster, this machine's cores with --ray local)",
        ),
    ] = None,
    cpus_per_worker: Annotated[
        int,
        typer.Option("--cpus-per-worker", min=1, help="CPUs of each Ray actor (its ONNX Runtime threads)"),
    ] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Index documents: all into the edge index, the cloud-eligible ones into the cloud index (or the outbox).

    Ids are each file's path relative to PATH (`faq.md#0`). Re-indexing a PATH makes the collection
    mirror what it holds now (see --no-prune). A run that would replace a document indexed from another
    file (same id), or store a file a second time (indexed before from an overlapping PATH), is refused
    with exit 2 and nothing written; --id-prefix keeps two folders apart. Every bad file is listed;
    without --skip-bad nothing is written when any file is bad. Exit codes: 0 all done; 2 bad input or
    refused ids; 3 indexed at the edge, cloud work queued or failed (`edgeroute sync` later); 1 failed
    (for example another process kept the embedded store locked past --lock-timeout).

    An embedded store takes one writer at a time: a second `index`, `delete` or `sync` on it waits
    for the first (--lock-timeout), then fails. For several writers at once use --chroma-url.

    Re-indexing unchanged PATHs into an embedded store with the cloud absent or --offline is answered
    from the record the last run left (STORE/.edgeroute-index-runs.json) when the files, the options
    and the store are all as that run left them: nothing is opened, loaded or written. Anything else
    (a changed, added, removed or relabelled file, another writer, a run cut short) runs in full.

    With --ray ADDRESS the model passes (each changed document's vector and PII findings) run on a Ray
    actor pool and the vectors go to the --chroma-url server; ids, metadata, privacy decisions and
    outbox rows are the same as without it (docs/deployment.md, "Indexing on a Ray cluster").
    """
    from ..router.provenance import check_prefix
    from .index_run import run_index

    level = check_sensitivity_option(sensitivity)
    id_prefix = check_prefix(id_prefix)
    if ray is None and (workers is not None or cpus_per_worker != 1):
        raise InputError("--workers and --cpus-per-worker size a Ray actor pool: give --ray ADDRESS too")
    settings = settings_from(
        store, collection, policy, edge, model, offline, chroma_url=chroma_url, lock_timeout=lock_timeout
    )
    pool: dict[str, object] | None = None
    with progress_bars(enabled=not as_json, console=err) as progress:
        if ray is None:
            done = run_index(
                settings, paths, level, prune=prune, skip_bad=skip_bad, id_prefix=id_prefix, progress=progress
            )
        else:
            from ..distributed import index_with_ray

            done = index_with_ray(
                paths,
                address=ray,
                settings=settings,
                workers=workers,
                cpus_per_worker=cpus_per_worker,
                sensitivity=level,
                prune=prune,
                skip_bad=skip_bad,
                id_prefix=id_prefix,
                progress=progress,
            )
            pool = {"address": ray, "workers": done.workers, "cpus_per_worker": done.cpus_per_worker}
    loaded, report, not_indexable, pruned = done.loaded, done.report, done.not_indexable, done.pruned
    truncated = done.truncated
    code = ExitCode.EDGE_ONLY if done.queued > 0 or done.failed > 0 else ExitCode.OK
    if as_json:
        print_json({**done.to_dict(settings), **({"ray": pool} if pool else {}), "exit_code": int(code)})
        exit_with(code)
        return
    for problem in loaded.bad:
        warn(f"skipped {problem.path}: {problem.reason}")
    for doc in not_indexable:
        warn(
            f"{doc.id} is not indexable: the edge model reads text only, and the policy keeps this "
            f"{doc.sensitivity} file off the cloud index (lower --sensitivity to index it in the cloud)"
        )
    if report is not None:
        out.print(
            f"indexed {report.documents} documents into [bold]{settings.collection}[/] at {settings.store}: "
            f"edge {report.edge_written} written, {report.edge_unchanged} unchanged"
            + (f" ({report.edge_updated} relabelled)" if report.edge_updated else "")
            + (
                f" ({report.edge_redetected} re-checked for PII by the model: no findings stored "
                "under this detector version)"
                if report.edge_redetected
                else ""
            )
            + f"; cloud {report.cloud.written} written, {report.cloud.unchanged} unchanged; "
            f"{report.private} kept private; {report.queued} queued in the outbox"
            + (f" ({escape(report.cloud.error)})" if report.cloud.error else "")
            + (f"; {pruned} removed (gone from the source)" if pruned else "")
        )
    if truncated:
        warn(f"{truncated} input(s) were truncated at the model's token limit; only their start is embedded")
    if code == ExitCode.EDGE_ONLY:
        warn(
            "indexed at the edge; cloud work is queued or failed: run `edgeroute sync` when the cloud is back"
        )
    exit_with(code)


@bench_app.command("index")
def bench_index_command(
    ray: Annotated[
        bool,
        typer.Option(
            "--ray/--no-ray",
            help="also 1 and 2 Ray workers of one CPU each, and one with every core (needs the ray extra)",
        ),
    ] = True,
    docs: Annotated[int, typer.Option(min=1, help="SciFact abstracts to index, one file each")] = 96,
    data: Annotated[
        Path | None,
        typer.Option(
            help="folder holding scifact/ (BEIR layout) \\[env EDGEROUTE_DATA]"
        ),
    ] = None,
    model: ModelOpt = None,
    rounds: Annotated[
        int, typer.Option(min=1, help="run everything this many times, interleaved; report the medians")
    ] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Documents/s of `edgeroute index` in one process and on 1 and 2 Ray workers, against the bare
    embed_documents of the same texts; per-worker overhead and the driver's own cost. Each run in a
    process of its own, into a `chroma run` server the bench starts on loopback (docs/deployment.md)."""
    from rich.table import Table

    from ..eval.bench_edge import resolve_data_dir
    from ..eval.bench_index import run_bench_index

    chosen = resolve_data_dir(data)  # refused before minutes of measuring
    if ray:
        from ..distributed.cluster import import_ray

        import_ray()  # the install hint before minutes of measuring
    with progress_bars(enabled=not as_json, console=err) as progress:
        result = run_bench_index(
            chosen.expanduser(),
            docs=docs,
            ray=ray,
            model_dir=str(model) if model else None,
            rounds=rounds,
            on_step=lambda name: progress(f"run {name}", 0, None),
        )
    if as_json:
        print_json(result)
        return
    table = Table("run", "documents/s", "seconds", "vs single", "notes")
    for name in [k for k in result if k.startswith(("bare", "single", "ray_"))]:
        row = result[name]
        if "docs_per_s" not in row:
            continue
        ratio = result["ratios"].get(f"{name}_vs_single", "-")
        notes = ""
        if name.startswith("ray_"):
            notes = (
                f"cluster start {row['cluster_start_s']} s; worker overhead {row['worker_overhead']:+.1%}; "
                f"driver {row['driver_cpu_ms_per_doc']} ms CPU/doc"
            )
        table.add_row(name, str(row["docs_per_s"]), str(row["seconds"]), str(ratio), notes)
    out.print(table)


@app.command("delete")
def delete_command(
    ids: Annotated[list[str] | None, typer.Argument(help="Document ids to delete")] = None,
    source: Annotated[
        Path | None,
        typer.Option(
            "--source", help="Delete every document indexed from this file, or folder (recursively)"
        ),
    ] = None,
    store: StoreOpt = None,
    collection: CollectionOpt = None,
    chroma_url: ChromaUrlOpt = None,
    lock_timeout: LockTimeoutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete documents from both indexes and the outbox (a queued document is never sent). Audited.

    Exit codes: 0 deleted; 2 nothing matched, or bad input; 1 failed (for example another process kept
    the embedded store locked past --lock-timeout).
    """
    from .sources import collections_in, require_collection

    if not ids and source is None:
        raise InputError("say what to delete: document ids (`edgeroute delete ID ...`) or --source PATH")
    settings = settings_from(store, collection, chroma_url=chroma_url, lock_timeout=lock_timeout)
    require_collection(settings, collections_in(settings))
    with build_engine(settings, existing=True, load_model=False) as engine:
        report = engine.delete(ids or None, source=source)
    if report.matched == 0:
        what = f"source {source}" if source is not None else f"ids {', '.join(ids or [])}"
        raise InputError(
            f"nothing in collection {settings.collection!r} matches {what}; check the ids or path"
        )
    if as_json:
        print_json(report.to_dict())
        return
    out.print(
        f"deleted {report.matched} document(s) from [bold]{settings.collection}[/]: {report.edge} from the "
        f"edge index, {report.cloud} from the cloud index, {report.queued} from the outbox"
    )
