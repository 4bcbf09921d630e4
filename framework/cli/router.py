"""Router commands on the shared app (see cli.app): query, audit, soak, eval-routes (index and delete: cli.indexing; sync and status: cli.sync).

Settings come from options, then environment variables, then defaults (:mod:`.settings`).
Every command takes ``--json`` for scripts; errors are edgeroute errors with a fix in the message.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import InputError
from ..settings import build_engine, resolve_settings
from .app import app, bench_app, model_app, policy_app  # noqa: F401
from .exit_codes import ExitCode
from .format import rounded, snippet
from .options import (
    ChromaUrlOpt,
    CollectionOpt,
    EdgeOpt,
    JsonOpt,
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


@app.command("query")
def query_command(
    text: Annotated[str, typer.Argument(help="The query text")],
    store: StoreOpt = None,
    collection: CollectionOpt = None,
    k: Annotated[int, typer.Option("-k", "--k", help="How many hits")] = 10,
    sensitivity: Annotated[
        str, typer.Option(help="public, internal, confidential or restricted")
    ] = "internal",
    stakes: Annotated[str, typer.Option(help="'normal' or 'high' (high: both indexes, fused)")] = "normal",
    image: Annotated[
        list[Path] | None,
        typer.Option("--image", help="Image file(s) for one interleaved query (cloud only)"),
    ] = None,
    deadline_ms: Annotated[
        float | None,
        typer.Option(help="Answer within this many ms (edge if late); default: the policy's, 3000"),
    ] = None,
    policy: PolicyOpt = None,
    edge: EdgeOpt = None,
    model: ModelOpt = None,
    offline: OfflineOpt = False,
    chroma_url: ChromaUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer a query and print the route decision, its reasons and the hits.

    Exit codes: 0 answered on the planned route; 3 answered at the edge because the cloud it wanted did
    not answer (degraded); 1 not answered (a media query whose cloud call failed); 2 bad input.
    Reads only: works on a read-only store, never waits for a writer, and writes nothing into it but
    the audit record.
    """
    from ..parts import Part

    check_sensitivity_option(sensitivity)
    query: Any = text
    if image:
        missing = [str(p) for p in image if not p.is_file()]
        if missing:
            raise InputError(f"--image file(s) not found: {', '.join(missing)}")
        query = [Part.text(text), *(Part.file(p) for p in image)]
    settings = settings_from(store, collection, policy, edge, model, offline, chroma_url=chroma_url)
    with build_engine(settings, read_only=True) as engine:
        result = engine.retrieve(query, k, sensitivity=sensitivity, stakes=stakes, deadline_ms=deadline_ms)
        truncated = int(getattr(engine.edge, "truncated_count", 0))
    d = result.decision
    code = ExitCode.EDGE_ONLY if d.degraded else ExitCode.OK
    if truncated:
        warn("the query was truncated at the model's token limit; only its start was embedded")
    if as_json:
        print_json(
            {
                "decision": d.to_dict(),
                "hits": [dataclasses.asdict(h) for h in result.hits],
                "audit": result.audit,
                "truncated": bool(truncated),
                "exit_code": int(code),
            }
        )
        exit_with(code)
        return
    flag = " [yellow](degraded)[/]" if d.degraded else ""
    out.print(f"route: [bold]{d.route.value}[/]{flag}")
    for r in d.reasons:
        out.print(f"  - {r.code}: {escape(r.message)}")
    table = Table("rank", "id", "score", "index", "title / text")
    for h in result.hits:
        table.add_row(str(h.rank), h.id, f"{h.score:.4f}", h.index, escape(snippet(h.title or h.text, 80)))
    out.print(table)
    exit_with(code)


@app.command("audit")
def audit_command(
    store: StoreOpt = None,
    tail: Annotated[int, typer.Option(help="Also print the last N records")] = 0,
    audit_file: Annotated[Path | None, typer.Option("--file", help="Audit log \\[env EDGEROUTE_AUDIT]")] = None,
    chroma_url: ChromaUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Summarise the audit log: routes, degraded share, latency, cloud spend; --tail N shows records.

    The log is a file in --store, with --chroma-url too (the option is accepted, so one set of options
    serves every command)."""
    from ..router.audit import AuditLog

    settings = resolve_settings(store=store, audit=audit_file, chroma_url=chroma_url)
    if not settings.audit_path.is_file():
        raise InputError(
            f"no audit log at {settings.audit_path}: run some queries first, or point --file (or "
            "$EDGEROUTE_AUDIT) at the log"
        )
    log = AuditLog(settings.audit_path, read_only=True)
    try:
        summary = log.summary()
        records = log.tail(tail) if tail > 0 else []
    finally:
        log.close()
    if as_json:
        print_json({"summary": rounded(summary.to_dict()), "tail": rounded(records)})
        return
    table = Table("", "value", show_header=False, title=f"audit log {settings.audit_path}")
    share = f"{summary.degraded_share:.1%}"
    rows = {
        "queries": str(summary.queries),
        "routes": ", ".join(f"{k} {v}" for k, v in sorted(summary.routes.items())) or "-",
        "degraded": f"{summary.degraded} ({share})",
        "reasons": ", ".join(f"{k} {v}" for k, v in sorted(summary.reasons.items(), key=lambda kv: -kv[1]))
        or "-",
        "latency p50 / p95": "-"
        if summary.latency_p50_ms is None
        else f"{summary.latency_p50_ms:.1f} / {(summary.latency_p95_ms or 0.0):.1f} ms",
        "cloud calls": f"{summary.cloud_calls} ({summary.cloud_failures} failed, {summary.cloud_late} late)",
        "cloud tokens / bytes": f"{summary.cloud_tokens} / {summary.cloud_bytes}",
        "cloud spend": f"${summary.cloud_cost_usd:.6f}",
    }
    for key, value in rows.items():
        table.add_row(key, escape(value))
    out.print(table)
    if records:
        tail_table = Table(
            "time", "type", "route / purpose", "outcome", "ms", title=f"last {len(records)} records"
        )
        for rec in records:
            latency = rec.get("latency_ms")
            ms = latency.get("total") if isinstance(latency, dict) else latency
            tail_table.add_row(
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(rec.get("time", 0)))),
                str(rec.get("type", "")),
                str(rec.get("route") or rec.get("purpose") or rec.get("reason") or ""),
                str(
                    rec.get("cloud")
                    or rec.get("outcome")
                    or (f"{rec.get('matched')} deleted" if rec.get("type") == "delete" else "")
                ),
                "" if ms is None else f"{float(ms):.1f}",
            )
        out.print(tail_table)


@app.command("soak")
def soak_command(
    queries: Annotated[int, typer.Option(help="How many queries")] = 1000,
    fault_rate: Annotated[float, typer.Option(help="Share of cloud requests that fail (0-1)")] = 0.3,
    latency_ms: Annotated[float, typer.Option(help="Emulator latency per request")] = 50.0,
    deadline_ms: Annotated[float, typer.Option(help="Per-query deadline")] = 300.0,
    edge: Annotated[
        str, typer.Option(help="'hashing' (fast, default) or 'model' (EmbeddingGemma)")
    ] = "hashing",
    model: ModelOpt = None,
    seed: Annotated[int, typer.Option(help="Seed for faults, corpus and queries")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Run queries against a faulty loopback emulator and print failures, degraded share, p95 and leaks."""
    from ..embedder import Embedder
    from ..eval.soak import run_soak

    # Thousands of injected faults are the point here; one warning line per fault is noise.
    logging.getLogger("edgeroute.framework.cloud").setLevel(logging.ERROR)

    emb: Embedder | None = None
    if edge == "model":
        from ..edge.embedder import EdgeEmbedder

        emb = EdgeEmbedder.load(model)
    elif edge != "hashing":
        raise InputError(f"--edge must be 'hashing' or 'model', got {edge!r}")
    report = run_soak(
        queries, fault_rate, latency_ms=latency_ms, deadline_ms=deadline_ms, edge=emb, seed=seed
    )
    if as_json:
        print_json(report.to_dict())
    else:
        verdict = "[green]PASS[/]" if report.passed else "[red]FAIL[/]"
        out.print(
            f"{verdict} {report.queries} queries, fault rate {report.fault_rate:.0%}, "
            f"latency {report.latency_ms:g} ms, deadline {report.deadline_ms:g} ms"
        )
        out.print(
            f"failed {report.failed}; degraded {report.degraded}; cloud-less but unflagged "
            f"{report.cloudless_unflagged}; privacy leaks {report.privacy_leaks}"
        )
        out.print(f"latency p50 {report.p50_ms} ms, p95 {report.p95_ms} ms, max {report.max_ms} ms")
        out.print(f"routes {report.routes}; cloud {report.cloud_outcomes}; faults {report.faults_injected}")
        out.print(f"degraded because {report.degraded_reasons}")
    if not report.passed:
        raise typer.Exit(1)


@app.command("eval-routes")
def eval_routes_command(
    dataset_dir: Annotated[
        Path, typer.Argument(help="BEIR-layout directory: corpus.jsonl, queries.jsonl, qrels/")
    ],
    route: Annotated[
        list[str] | None, typer.Option("--route", help="edge, cloud, hybrid or auto; repeat for several")
    ] = None,
    limit_queries: Annotated[int | None, typer.Option(help="Score only the first N judged queries")] = None,
    deadline_ms: Annotated[float | None, typer.Option(help="Per-query deadline")] = None,
    store: Annotated[
        Path | None, typer.Option("--store", help="Store directory (default: a temporary one)")
    ] = None,
    edge: EdgeOpt = None,
    model: ModelOpt = None,
    policy: PolicyOpt = None,
    emulator: Annotated[
        bool | None,
        typer.Option(
            "--emulator/--no-emulator", help="Start a loopback emulator (default: when no api key is set)"
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Quality, share escalated, cloud tokens and cost, latency and routing regret per route, side by side."""
    import contextlib
    import tempfile

    from ..eval.routes import ROUTES, run_route_eval
    from ..testing.emulator import GeminiEmulator

    routes = route or list(ROUTES)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="edgeroute-eval-")))
        settings = settings_from(store or tmp / "store", "eval-routes", policy, edge, model)
        if emulator or (emulator is None and not settings.cloud_configured):
            emu = stack.enter_context(GeminiEmulator())
            settings = dataclasses.replace(settings, api_key="emulator-key", base_url=emu.base_url)
        engine = stack.enter_context(build_engine(settings))
        progress = stack.enter_context(progress_bars(enabled=not as_json, console=err))
        report = run_route_eval(
            dataset_dir,
            engine,
            routes=routes,
            limit_queries=limit_queries,
            deadline_ms=deadline_ms,
            progress=progress,
        )
    if as_json:
        print_json(report.to_dict())
        return
    out.print(
        f"{report.dataset}: {report.documents} documents, {report.queries} queries, indexed in {report.index_seconds:.1f} s"
    )
    table = Table(
        "route",
        "nDCG@10",
        "R@100",
        "escalated",
        "degraded",
        "cloud tokens",
        "cost $",
        "p50 ms",
        "p95 ms",
        "regret/$",
    )
    for f in report.routes:
        table.add_row(
            f.route,
            f"{f.ndcg_at_10:.4f}",
            f"{f.recall_at_100:.4f}",
            f"{f.escalated_share:.1%}",
            f"{f.degraded_share:.1%}",
            str(f.cloud_tokens),
            f"{f.cloud_cost_usd:.6f}",
            f"{f.latency_p50_ms:.1f}",
            f"{f.latency_p95_ms:.1f}",
            "-" if f.regret_per_usd is None else f"{f.regret_per_usd:.1f}",
        )
    out.print(table)
