"""Router commands on the shared app (see cli.app): index, query, sync, status, audit, soak, eval-routes.

Settings come from options, then environment variables, then defaults (:mod:`.settings`).
Every command takes ``--json`` for scripts; errors are edgeroute errors with a fix in the message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ...policies.sensitivity import SENSITIVITY_LEVELS, SensitivityError, check_sensitivity
from ..documents import Document
from ..errors import CollectionNotFoundError, InputError, RoutingError
from ..settings import RouterSettings, build_engine, load_policy, require_store, resolve_settings
from .app import app, bench_app, model_app, policy_app  # noqa: F401
from .exit_codes import ExitCode
from .format import rounded, snippet
from .progress import progress_bars

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


def _exit(code: ExitCode) -> None:
    if code != ExitCode.OK:
        raise typer.Exit(int(code))


def _warn(message: str) -> None:
    _err.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


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
    policy: PolicyOpt = None,
    edge: EdgeOpt = None,
    model: ModelOpt = None,
    offline: OfflineOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Index documents: all into the edge index, the cloud-eligible ones into the cloud index (or the outbox).

    Re-indexing a PATH makes the collection mirror what it holds now (see --no-prune). Every bad file is
    listed; without --skip-bad nothing is written when any file is bad. Exit codes: 0 all done; 2 bad
    input; 3 indexed at the edge, cloud work queued or failed (`edgeroute sync` later).
    """
    from ...policies.pii import detect_pii
    from ..router.placement import cloud_allowed, pii_text
    from .sources import load_sources

    level = _check_sensitivity(sensitivity)
    settings = _settings(store, collection, policy, edge, model, offline)
    with progress_bars(enabled=not as_json, console=_err) as progress:
        loaded = load_sources(paths, level, progress)
        if loaded.bad and not skip_bad:
            listing = "\n".join(f"  {p.path}: {p.reason}" for p in loaded.bad)
            raise InputError(
                f"{len(loaded.bad)} file(s) cannot be indexed, so nothing was written:\n{listing}\n"
                "fix or remove them, or pass --skip-bad to index the rest and list these"
            )
        docs: list[Document] = []
        not_indexable: list[Document] = []
        policy_config = load_policy(settings)
        for doc in loaded.docs:
            if doc.text.strip():
                docs.append(doc)
                continue
            # Media only: the edge model reads text, so the cloud index is its one place.
            try:
                # Media only: its title is its one text, checked by the pattern layer (no model here).
                found = [detect_pii(pii_text(doc), policy_config)]
                allowed = cloud_allowed([doc], policy_config, found)[0]
            except RoutingError:
                allowed = False
            (docs if allowed else not_indexable).append(doc)
        if not docs and not not_indexable:
            raise InputError(
                f"no documents found in {', '.join(map(str, paths))}: give .txt, .md, .png, .jpg, .pdf "
                "or corpus.jsonl files"
            )
        pruned = 0
        with build_engine(settings) as engine:
            report = engine.ingest(docs, progress=progress) if docs else None
            if not_indexable:
                # Placed nowhere now (private media): an earlier copy in the cloud index must go too.
                engine.delete([d.id for d in not_indexable])
            if prune:
                protect = loaded.protected_paths()
                for origin, ids in loaded.origins.items():
                    pruned += engine.prune(origin, ids, protect=protect).matched
            # Chunks are sized well under the model's limit, so this is rare; when it happens it is reported.
            truncated = int(getattr(engine.edge, "truncated_count", 0))
    queued = report.queued - report.cloud.in_flight if report is not None else 0
    failed = report.cloud.failed if report is not None else 0
    code = ExitCode.EDGE_ONLY if queued > 0 or failed > 0 else ExitCode.OK
    if as_json:
        _print_json(
            {
                "collection": settings.collection,
                "store": str(settings.store),
                **(report.to_dict() if report is not None else {}),
                "pruned": pruned,
                "skipped": [p.to_dict() for p in loaded.bad],
                "empty": [p.path for p in loaded.empty],
                "not_indexable": [d.id for d in not_indexable],
                "truncated_inputs": truncated,
                "exit_code": int(code),
            }
        )
        _exit(code)
        return
    for problem in loaded.bad:
        _warn(f"skipped {problem.path}: {problem.reason}")
    for doc in not_indexable:
        _warn(
            f"{doc.id} is not indexable: the edge model reads text only, and the policy keeps this "
            f"{doc.sensitivity} file off the cloud index (lower --sensitivity to index it in the cloud)"
        )
    if report is not None:
        _out.print(
            f"indexed {report.documents} documents into [bold]{settings.collection}[/] at {settings.store}: "
            f"edge {report.edge_written} written, {report.edge_unchanged} unchanged"
            + (f" ({report.edge_updated} relabelled)" if report.edge_updated else "")
            + f"; cloud {report.cloud.written} written, {report.cloud.unchanged} unchanged; "
            f"{report.private} kept private; {report.queued} queued in the outbox"
            + (f" ({escape(report.cloud.error)})" if report.cloud.error else "")
            + (f"; {pruned} removed (gone from the source)" if pruned else "")
        )
    if truncated:
        _warn(f"{truncated} input(s) were truncated at the model's token limit; only their start is embedded")
    if code == ExitCode.EDGE_ONLY:
        _warn(
            "indexed at the edge; cloud work is queued or failed: run `edgeroute sync` when the cloud is back"
        )
    _exit(code)


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
    as_json: JsonOpt = False,
) -> None:
    """Delete documents from both indexes and the outbox (a queued document is never sent). Audited.

    Exit codes: 0 deleted; 2 nothing matched, or bad input.
    """
    from .sources import collections_in, require_collection

    if not ids and source is None:
        raise InputError("say what to delete: document ids (`edgeroute delete ID ...`) or --source PATH")
    settings = _settings(store, collection)
    require_collection(settings, collections_in(settings))
    with build_engine(settings, existing=True, load_model=False) as engine:
        report = engine.delete(ids or None, source=source)
    if report.matched == 0:
        what = f"source {source}" if source is not None else f"ids {', '.join(ids or [])}"
        raise InputError(
            f"nothing in collection {settings.collection!r} matches {what}; check the ids or path"
        )
    if as_json:
        _print_json(report.to_dict())
        return
    _out.print(
        f"deleted {report.matched} document(s) from [bold]{settings.collection}[/]: {report.edge} from the "
        f"edge index, {report.cloud} from the cloud index, {report.queued} from the outbox"
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
        float | None,
        typer.Option(help="Answer within this many ms (edge if late); default: the policy's, 3000"),
    ] = None,
    policy: PolicyOpt = None,
    edge: EdgeOpt = None,
    model: ModelOpt = None,
    offline: OfflineOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Answer a query and print the route decision, its reasons and the hits.

    Exit codes: 0 answered on the planned route; 3 answered at the edge because the cloud it wanted did
    not answer (degraded); 1 not answered (a media query whose cloud call failed); 2 bad input.
    Reads only: works on a read-only store, and writes nothing into it but the audit record.
    """
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
        truncated = int(getattr(engine.edge, "truncated_count", 0))
    d = result.decision
    code = ExitCode.EDGE_ONLY if d.degraded else ExitCode.OK
    if truncated:
        _warn("the query was truncated at the model's token limit; only its start was embedded")
    if as_json:
        _print_json(
            {
                "decision": d.to_dict(),
                "hits": [dataclasses.asdict(h) for h in result.hits],
                "audit": result.audit,
                "truncated": bool(truncated),
                "exit_code": int(code),
            }
        )
        _exit(code)
        return
    flag = " [yellow](degraded)[/]" if d.degraded else ""
    _out.print(f"route: [bold]{d.route.value}[/]{flag}")
    for r in d.reasons:
        _out.print(f"  - {r.code}: {escape(r.message)}")
    table = Table("rank", "id", "score", "index", "title / text")
    for h in result.hits:
        table.add_row(str(h.rank), h.id, f"{h.score:.4f}", h.index, escape(snippet(h.title or h.text, 80)))
    _out.print(table)
    _exit(code)


@contextlib.contextmanager
def _stop_on_signal(enabled: bool) -> Iterator[threading.Event]:
    """With ``enabled`` (``sync --watch``), Ctrl-C or SIGTERM ends the loop after the round in progress,
    so its leases are completed or released and the stores closed; a second Ctrl-C stops at once."""
    stop = threading.Event()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def on_signal(signum: int, _frame: object) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@app.command("sync")
def sync_command(
    store: StoreOpt = None,
    collection: Annotated[
        str | None,
        typer.Option(
            "--collection",
            "-c",
            help="Drain one collection (default: every collection with queued documents)",
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Send at most N documents per collection")] = None,
    batch_size: Annotated[int, typer.Option(help="Documents per cloud call")] = 32,
    watch: Annotated[
        bool, typer.Option("--watch", help="Keep draining in the background until Ctrl-C")
    ] = False,
    interval: Annotated[float, typer.Option(help="Seconds between drains with --watch")] = 5.0,
    policy: PolicyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Drain the outbox into the cloud index. Safe to interrupt (even kill -9), to rerun, and to run in
    several processes at once (each document is sent by one of them). Loads no model.

    Exit codes: 0 every queue drained; 3 documents still queued or failed (the error says why); 2 an
    unknown collection (the existing ones are listed).
    """
    from .sources import collection_given, collections_in, require_collection

    base = _settings(store, collection, policy)
    existing = collections_in(base)
    if collection_given(collection):
        require_collection(base, existing)
        names = [base.collection]
    else:
        names = existing
        if not names:
            raise CollectionNotFoundError(f"no collections in {base.store}: index documents first")
    code = ExitCode.OK
    with progress_bars(enabled=not as_json and not watch, console=_err) as progress, _stop_on_signal(
        watch
    ) as stop:
        while True:
            code = ExitCode.OK
            for name in names:
                if stop.is_set():
                    break
                settings = dataclasses.replace(base, collection=name)
                with build_engine(settings, existing=True, load_model=False) as engine:
                    report = engine.sync(limit, batch_size=batch_size, progress=progress)
                if not report.complete:
                    code = ExitCode.EDGE_ONLY
                if as_json:
                    print(json.dumps({"collection": name, **report.to_dict()}), flush=True)
                else:
                    _out.print(
                        f"[bold]{name}[/]: {report.written} sent, {report.unchanged} already there, "
                        f"{report.refused} refused by privacy, {report.failed} failed; "
                        f"{report.remaining} still queued"
                        + (f" ({report.in_flight} being sent by another process)" if report.in_flight else "")
                        + (f" ({escape(report.error)})" if report.error else "")
                    )
            if not watch or stop.wait(interval):
                break
    _exit(code)


@app.command("status")
def status_command(
    store: StoreOpt = None,
    collection: Annotated[
        str | None,
        typer.Option("--collection", "-c", help="One collection (default: every collection in the store)"),
    ] = None,
    policy: PolicyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Queue depth, circuit state, budget left, cloud spend, cache hit rate and index sizes. Loads no model
    and creates nothing. With --json and no --collection: {"collections": [...]} (one object each)."""
    from .sources import collection_given, collections_in, require_collection

    base = _settings(store, collection, policy)
    require_store(base)
    existing = collections_in(base)
    given = collection_given(collection)
    if given:
        require_collection(base, existing)
    names = [base.collection] if given else existing
    statuses = []
    for name in names:
        with build_engine(
            dataclasses.replace(base, collection=name), read_only=True, load_model=False
        ) as engine:
            statuses.append(engine.status())
    if as_json:
        _print_json(statuses[0] if given else {"store": str(base.store), "collections": statuses})
        return
    if not statuses:
        _out.print(f"no collections in {base.store}")
    for status in statuses:
        _print_status(status)


def _print_status(status: dict[str, Any]) -> None:
    table = Table("", "value", show_header=False, title=f"{status['collection']} at {status['store']}")
    spend = status["cloud"].get("store_spend") or status["cloud"].get("usage", {})
    rate = status["cache_hit_rate"]
    leased = status["outbox"].get("leased", 0)
    rows = {
        "edge index": f"{status['edge_count']} records ({status['edge_space']})",
        "cloud index": f"{status['cloud_count']} records ({status['cloud_space'] or 'no cloud configured'})",
        "outbox depth": str(status["outbox_depth"]) + (f" ({leased} being sent)" if leased else ""),
        "circuit": status["circuit"],
        "budget left": "unlimited"
        if status["budget_left_usd"] is None
        else f"${status['budget_left_usd']:.6f}",
        "cloud spend": f"${spend.get('cost_usd', 0.0):.6f} ({spend.get('total_tokens', 0)} tokens, "
        f"{spend.get('calls', 0)} calls, every process on this store)",
        "cache hit rate": "n/a" if rate is None else f"{rate:.1%}",
    }
    for key, value in rows.items():
        table.add_row(key, escape(value))
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
        _print_json({"summary": rounded(summary.to_dict()), "tail": rounded(records)})
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
    _out.print(table)
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
        _out.print(tail_table)


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
        progress = stack.enter_context(progress_bars(enabled=not as_json, console=_err))
        report = run_route_eval(
            dataset_dir,
            engine,
            routes=routes,
            limit_queries=limit_queries,
            deadline_ms=deadline_ms,
            progress=progress,
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
