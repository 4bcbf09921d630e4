"""Router commands on the shared app (see cli.app): index, query, sync, status, audit, soak, eval-routes.

Settings come from options, then environment variables, then defaults (:mod:`.settings`).
Every command takes ``--json`` for scripts; errors are edgeroute errors with a fix in the message.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ...policies.sensitivity import SENSITIVITY_LEVELS, SensitivityError, check_sensitivity
from ..errors import InputError
from ..settings import RouterSettings, build_engine, resolve_settings
from .app import app, bench_app, model_app, policy_app  # noqa: F401

_out = Console()
_err = Console(stderr=True)

StoreOpt = Annotated[Path | None, typer.Option("--store", help="Store directory [env EDGEROUTE_STORE]")]
CollectionOpt = Annotated[
    str | None, typer.Option("--collection", "-c", help="Logical collection [env EDGEROUTE_COLLECTION]")
]
PolicyOpt = Annotated[
    Path | None, typer.Option("--policy", help="Policy TOML/YAML file [env EDGEROUTE_POLICY]")
]
EdgeOpt = Annotated[
    str | None,
    typer.Option("--edge", help="'model' (EmbeddingGemma) or 'hashing' (no model) [env EDGEROUTE_EDGE]"),
]
ModelOpt = Annotated[
    Path | None, typer.Option("--model", help="On-device model directory [env EDGEROUTE_EDGE_MODEL]")
]
OfflineOpt = Annotated[
    bool, typer.Option("--offline", help="Never call the cloud; queue documents in the outbox")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables")]


def _settings(
    store: Path | None,
    collection: str | None,
    policy: Path | None = None,
    edge: str | None = None,
    model: Path | None = None,
    offline: bool = False,
) -> RouterSettings:
    return resolve_settings(
        store=store,
        collection=collection,
        policy_file=policy,
        edge=edge,
        model_dir=model,
        offline=True if offline else None,
    )


def _check_sensitivity(level: str) -> str:
    try:
        return check_sensitivity(level)
    except SensitivityError:
        raise InputError(
            f"--sensitivity {level!r} is unknown; use one of {', '.join(SENSITIVITY_LEVELS)}"
        ) from None


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str, ensure_ascii=False))


@app.command("index")
def index_command(
    paths: Annotated[list[Path], typer.Argument(help=".txt/.md files, directories, BEIR corpus.jsonl")],
    store: StoreOpt = None,
    collection: CollectionOpt = None,
    sensitivity: Annotated[
        str, typer.Option(help="Sensitivity of every document: public, internal, confidential, restricted")
    ] = "internal",
    policy: PolicyOpt = None,
    edge: EdgeOpt = None,
    model: ModelOpt = None,
    offline: OfflineOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Index documents: all into the edge index, the cloud-eligible ones into the cloud index (or the outbox)."""
    from ..store.loaders import load_paths

    level = _check_sensitivity(sensitivity)
    settings = _settings(store, collection, policy, edge, model, offline)
    docs = [dataclasses.replace(d, sensitivity=level) for d in load_paths(paths)]  # type: ignore[arg-type]
    if not docs:
        raise InputError(
            f"no documents found in {', '.join(map(str, paths))}: give .txt, .md or corpus.jsonl files"
        )
    with build_engine(settings) as engine:
        report = engine.ingest(docs)
        # Chunks are sized well under the model's limit, so this is rare; when it happens it is reported.
        truncated = int(getattr(engine.edge, "truncated_count", 0))
    if as_json:
        _print_json(
            {
                "collection": settings.collection,
                "store": str(settings.store),
                **report.to_dict(),
                "truncated_inputs": truncated,
            }
        )
        return
    _out.print(
        f"indexed {report.documents} documents into [bold]{settings.collection}[/] at {settings.store}: "
        f"edge {report.edge_written} written, {report.edge_unchanged} unchanged; "
        f"cloud {report.cloud.written} written, {report.cloud.unchanged} unchanged; "
        f"{report.private} kept private; {report.queued} queued in the outbox"
        + (f" ({report.cloud.error})" if report.cloud.error else "")
        + (f"; {truncated} input(s) truncated at the model's token limit" if truncated else "")
    )


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
        float | None, typer.Option(help="Answer within this many ms (edge if late)")
    ] = None,
    policy: PolicyOpt = None,
    edge: EdgeOpt = None,
    model: ModelOpt = None,
    offline: OfflineOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Answer a query and print the route decision, its reasons and the hits."""
    from ..parts import Part

    _check_sensitivity(sensitivity)
    query: Any = text
    if image:
        missing = [str(p) for p in image if not p.is_file()]
        if missing:
            raise InputError(f"--image file(s) not found: {', '.join(missing)}")
        query = [Part.text(text), *(Part.file(p) for p in image)]
    settings = _settings(store, collection, policy, edge, model, offline)
    with build_engine(settings, read_only=True) as engine:
        result = engine.retrieve(query, k, sensitivity=sensitivity, stakes=stakes, deadline_ms=deadline_ms)
    d = result.decision
    if as_json:
        _print_json(
            {
                "decision": d.to_dict(),
                "hits": [dataclasses.asdict(h) for h in result.hits],
                "audit": result.audit,
            }
        )
        return
    flag = " [yellow](degraded)[/]" if d.degraded else ""
    _out.print(f"route: [bold]{d.route.value}[/]{flag}")
    for r in d.reasons:
        _out.print(f"  - {r.code}: {r.message}")
    table = Table("rank", "id", "score", "index", "title / text")
    for h in result.hits:
        table.add_row(str(h.rank), h.id, f"{h.score:.4f}", h.index, (h.title or h.text)[:80])
    _out.print(table)


@app.command("sync")
def sync_command(
    store: StoreOpt = None,
    collection: CollectionOpt = None,
    limit: Annotated[int | None, typer.Option(help="Send at most N documents")] = None,
    batch_size: Annotated[int, typer.Option(help="Documents per cloud call")] = 32,
    watch: Annotated[
        bool, typer.Option("--watch", help="Keep draining in the background until Ctrl-C")
    ] = False,
    interval: Annotated[float, typer.Option(help="Seconds between drains with --watch")] = 5.0,
    policy: PolicyOpt = None,
    edge: EdgeOpt = None,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Drain the outbox into the cloud index. Safe to interrupt (even kill -9) and to rerun."""
    settings = _settings(store, collection, policy, edge, model)
    with build_engine(settings, read_only=True) as engine:
        while True:
            report = engine.sync(limit, batch_size=batch_size)
            if as_json:
                print(json.dumps(report.to_dict()), flush=True)
            else:
                _out.print(
                    f"synced {report.written} written, {report.unchanged} unchanged, {report.refused} refused "
                    f"by privacy, {report.failed} failed; {report.remaining} still queued"
                    + (f" ({report.error})" if report.error else "")
                )
            if not watch:
                break
            try:
                time.sleep(interval)
            except KeyboardInterrupt:
                break


@app.command("status")
def status_command(
    store: StoreOpt = None,
    collection: CollectionOpt = None,
    policy: PolicyOpt = None,
    edge: EdgeOpt = None,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Queue depth, circuit state, budget left, cache hit rate and index sizes."""
    settings = _settings(store, collection, policy, edge, model)
    with build_engine(settings, read_only=True) as engine:
        status = engine.status()
    if as_json:
        _print_json(status)
        return
    table = Table("", "value", show_header=False)
    usage = status["cloud"].get("usage", {})
    rate = status["cache_hit_rate"]
    rows = {
        "collection": f"{status['collection']} at {status['store']}",
        "edge index": f"{status['edge_count']} records ({status['edge_space']})",
        "cloud index": f"{status['cloud_count']} records ({status['cloud_space'] or 'no cloud configured'})",
        "outbox depth": str(status["outbox_depth"]),
        "circuit": status["circuit"],
        "budget left": "unlimited"
        if status["budget_left_usd"] is None
        else f"${status['budget_left_usd']:.4f}",
        "cloud spend": f"${usage.get('cost_usd', 0.0):.6f} ({usage.get('total_tokens', 0)} tokens)",
        "cache hit rate": "n/a" if rate is None else f"{rate:.1%}",
    }
    for key, value in rows.items():
        table.add_row(key, value)
    _out.print(table)


@app.command("audit")
def audit_command(
    store: StoreOpt = None,
    tail: Annotated[int, typer.Option(help="Also print the last N records")] = 0,
    audit_file: Annotated[Path | None, typer.Option("--file", help="Audit log [env EDGEROUTE_AUDIT]")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Summarise the audit log: routes, degraded share, latency, cloud spend; --tail N shows records."""
    from ..router.audit import AuditLog

    settings = resolve_settings(store=store, audit=audit_file)
    if not settings.audit_path.is_file():
        raise InputError(f"no audit log at {settings.audit_path}: run some queries first, or pass --file")
    log = AuditLog(settings.audit_path)
    try:
        summary = log.summary()
        records = log.tail(tail) if tail > 0 else []
    finally:
        log.close()
    if as_json:
        _print_json({"summary": summary.to_dict(), "tail": records})
        return
    _out.print(
        f"{summary.queries} queries; routes {summary.routes}; degraded {summary.degraded} "
        f"({summary.degraded_share:.1%}); p50 {summary.latency_p50_ms} ms, p95 {summary.latency_p95_ms} ms"
    )
    _out.print(
        f"cloud: {summary.cloud_calls} calls ({summary.cloud_failures} failed, {summary.cloud_late} late), "
        f"{summary.cloud_tokens} tokens, {summary.cloud_bytes} bytes, ${summary.cloud_cost_usd:.6f}"
    )
    for rec in records:
        print(json.dumps(rec, default=str, ensure_ascii=False))


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
        _print_json(report.to_dict())
    else:
        verdict = "[green]PASS[/]" if report.passed else "[red]FAIL[/]"
        _out.print(
            f"{verdict} {report.queries} queries, fault rate {report.fault_rate:.0%}, "
            f"latency {report.latency_ms:g} ms, deadline {report.deadline_ms:g} ms"
        )
        _out.print(
            f"failed {report.failed}; degraded {report.degraded}; cloud-less but unflagged "
            f"{report.cloudless_unflagged}; privacy leaks {report.privacy_leaks}"
        )
        _out.print(f"latency p50 {report.p50_ms} ms, p95 {report.p95_ms} ms, max {report.max_ms} ms")
        _out.print(f"routes {report.routes}; cloud {report.cloud_outcomes}; faults {report.faults_injected}")
        _out.print(f"degraded because {report.degraded_reasons}")
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
        settings = _settings(store or tmp / "store", "eval-routes", policy, edge, model)
        if emulator or (emulator is None and not settings.cloud_configured):
            emu = stack.enter_context(GeminiEmulator())
            settings = dataclasses.replace(settings, api_key="emulator-key", base_url=emu.base_url)
        engine = stack.enter_context(build_engine(settings))
        report = run_route_eval(
            dataset_dir, engine, routes=routes, limit_queries=limit_queries, deadline_ms=deadline_ms
        )
    if as_json:
        _print_json(report.to_dict())
        return
    _out.print(
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
    _out.print(table)
