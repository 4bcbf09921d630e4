"""``edgeroute serve`` (the HTTP service) and ``edgeroute keys`` (tenants and their API keys)."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..errors import InputError
from .app import app, bench_app

keys_app = typer.Typer(
    help="Create, list and revoke API keys of `edgeroute serve` tenants.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")

_err = Console(stderr=True)

KeysOpt = Annotated[
    Path | None,
    typer.Option("--keys", help="Keys file \\[env EDGEROUTE_KEYS; default STATE_DIR/keys.json]"),
]


def _keys_path(keys: Path | None, state: Path | None) -> Path:
    import os

    if keys is not None:
        return keys.expanduser()
    if os.environ.get("EDGEROUTE_KEYS"):
        return Path(os.environ["EDGEROUTE_KEYS"]).expanduser()
    base = state or Path(os.environ.get("EDGEROUTE_STORE") or "~/.edgeroute/store")
    return base.expanduser() / "keys.json"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command("serve")
def serve_command(
    store: Annotated[
        Path | None, typer.Option("--store", help="Embedded store directory \\[env EDGEROUTE_STORE]")
    ] = None,
    chroma_url: Annotated[
        str | None,
        typer.Option(
            "--chroma-url",
            help="A `chroma run` server (http://HOST:PORT) shared by replicas and other writers "
            "\\[env EDGEROUTE_CHROMA_URL, used when --store is not given]",
        ),
    ] = None,
    lock_timeout: Annotated[
        float | None,
        typer.Option(
            "--lock-timeout",
            help="Seconds to wait for another process writing the embedded store at start "
            "\\[env EDGEROUTE_LOCK_TIMEOUT_S; default 10]",
        ),
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            "--state-dir",
            help="Outbox, audit log and circuit state (default: --store, or ~/.edgeroute/serve)",
        ),
    ] = None,
    outbox: Annotated[
        Path | None,
        typer.Option(
            "--outbox", help="Outbox file; replicas on one host may share it \\[env EDGEROUTE_OUTBOX]"
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind")] = 8080,
    keys: KeysOpt = None,
    edge: Annotated[
        str | None, typer.Option("--edge", help="'model' (EmbeddingGemma) or 'hashing' \\[env EDGEROUTE_EDGE]")
    ] = None,
    model: Annotated[
        Path | None, typer.Option("--model", help="On-device model directory \\[env EDGEROUTE_EDGE_MODEL]")
    ] = None,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="Policy TOML/YAML file \\[env EDGEROUTE_POLICY]")
    ] = None,
    tools: Annotated[
        Path | None, typer.Option("--tools", help="Default tools for /v1/tools/route (JSON or YAML)")
    ] = None,
    max_batch: Annotated[int, typer.Option(help="Most texts per micro-batched model call")] = 32,
    max_wait_ms: Annotated[
        float, typer.Option(help="Longest a request waits for others to batch with")
    ] = 2.0,
    batching: Annotated[
        bool, typer.Option("--batching/--no-batching", help="Micro-batch edge embedding")
    ] = True,
    offline: Annotated[bool, typer.Option("--offline", help="Never call the cloud; queue documents")] = False,
    drain_interval: Annotated[float, typer.Option(help="Seconds between background outbox drains")] = 5.0,
    max_body_mb: Annotated[
        float,
        typer.Option(
            "--max-body-mb",
            envvar="EDGEROUTE_MAX_BODY_MB",
            help="Largest request body in MiB, refused with 413 before it is read "
            "\\[env EDGEROUTE_MAX_BODY_MB]",
        ),
    ] = 32.0,
    max_query_chars: Annotated[
        int,
        typer.Option(
            "--max-query-chars",
            envvar="EDGEROUTE_MAX_QUERY_CHARS",
            help="Longest query (retrieve, tool route) in characters \\[env EDGEROUTE_MAX_QUERY_CHARS]",
        ),
    ] = 32_768,
    allow_remote: Annotated[
        bool, typer.Option("--allow-remote", help="Permit binding a non-loopback address (put TLS in front)")
    ] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
) -> None:
    """Serve embeddings (OpenAI-compatible), routed retrieval, ingest and tool routing over HTTP.

    Loads the model once, checks the store and the keys file, then binds HOST:PORT (loopback unless
    --allow-remote). Requests need 'Authorization: Bearer KEY' (`edgeroute keys create`). OpenAPI
    docs at /docs. Ctrl-C or SIGTERM finishes in-flight requests; the outbox stays on disk.

    With --store the service is the embedded store's one writer and holds its lock while it runs, so
    `edgeroute index`, `delete` and `sync` on that store wait, then fail: to run them beside a
    service, keep the vectors on a Chroma server (`chroma run`) and give both --chroma-url.
    """
    from ..serve import require_serve

    require_serve()
    import uvicorn

    from ..serve.app import create_app
    from ..serve.service import ServeConfig, Service
    from ..serve.tools import load_tools_file
    from ..settings import resolve_settings

    if store is not None and chroma_url is not None:
        raise InputError("give --store DIR (embedded store) or --chroma-url URL (a Chroma server), not both")
    if store is None and chroma_url is None:
        chroma_url = os.environ.get("EDGEROUTE_CHROMA_URL") or None
    if not _is_loopback(host) and not allow_remote:
        raise InputError(
            f"--host {host} is not a loopback address; the service speaks plain HTTP, so pass --allow-remote "
            "and put a TLS proxy in front of it (see docs/deployment.md)"
        )
    if chroma_url is None and state_dir is not None:
        raise InputError(
            "--state-dir goes with --chroma-url; with --store the state lives in the store directory"
        )
    if not 0 < max_body_mb <= 4096:
        raise InputError(f"--max-body-mb {max_body_mb:g} must be above 0 and at most 4096")
    if max_query_chars < 1:
        raise InputError(f"--max-query-chars {max_query_chars} must be at least 1")
    settings = resolve_settings(
        store=(state_dir or Path("~/.edgeroute/serve")) if chroma_url else store,
        edge=edge,
        model_dir=model,
        policy_file=policy,
        offline=True if offline else None,
        outbox=outbox,
        cache="off",
        lock_timeout_s=lock_timeout,
    )
    settings = dataclasses.replace(settings, chroma_url=chroma_url)  # this command's choice, not the env's
    config = ServeConfig(
        settings=settings,
        keys_path=_keys_path(keys, settings.store),
        chroma_url=chroma_url,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        batching=batching,
        tools_file=tools,
        drain_interval_s=drain_interval,
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        max_query_chars=max_query_chars,
    )
    level = log_level.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise InputError(f"--log-level {log_level!r} is unknown; use debug, info, warning or error")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    service = Service.load(config)
    defaults = load_tools_file(tools) if tools else None
    where = config.chroma_url or str(settings.store)
    _err.print(
        f"edgeroute serve: model {service.edge_model} loaded, store {where}, keys {config.keys_path} "
        f"({time.perf_counter() - t0:.1f} s); listening on http://{host}:{port} (docs at /docs)"
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(service, tool_defaults=defaults),
            host=host,
            port=port,
            log_level=log_level.lower(),
            access_log=False,  # our own access line carries tenant, route and latency, never bodies
            timeout_graceful_shutdown=30,
            lifespan="on",
        )
    )
    # uvicorn re-raises SIGTERM after its graceful shutdown; a clean stop on request should exit 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.run()


@bench_app.command("limits")
def bench_limits_command(
    body_mb: Annotated[float, typer.Option(help="Size of the huge bodies sent, in MiB")] = 1024.0,
    phase: Annotated[float, typer.Option(help="Seconds of each alone / flood phase")] = 5.0,
    rounds: Annotated[int, typer.Option(help="Alone / flood rounds (medians are compared)")] = 3,
    flood_concurrency: Annotated[int, typer.Option(help="Refused requests in flight at once")] = 16,
    flood_body_kb: Annotated[int, typer.Option(help="KiB of query in each flood request")] = 16,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """A huge body refused (status, time, server RSS) and a tenant's p50 alone vs during another
    tenant's flood of refused (429) requests, on loopback with the hashing edge embedder."""
    from ..eval.bench_limits import run_limits_bench

    def say(msg: str) -> None:
        if not as_json:
            _err.print(f"[dim]{msg}[/]")

    result = run_limits_bench(
        body_mb=body_mb,
        phase_s=phase,
        rounds=rounds,
        flood_concurrency=flood_concurrency,
        flood_body_kb=flood_body_kb,
        progress=say,
    )
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    table = Table(
        "body", "status", "s to answer", "MiB sent", "RSS idle", "RSS peak", "RSS after", "/healthz ms"
    )
    for b in result.bodies:
        table.add_row(
            b.mode, str(b.status), f"{b.seconds_to_answer:.3f}", f"{b.sent_mb:g}", f"{b.rss_idle_mb:.0f}",
            f"{b.rss_peak_mb:.0f}", f"{b.rss_after_mb:.0f}", f"{b.healthz_ms_after:.1f}",
        )  # fmt: skip
    Console().print(table)
    f = result.flood
    Console().print(
        f"/v1/retrieve p50, one request at a time: alone {f.alone_p50_ms} ms, during the flood {f.flood_p50_ms} ms; "
        f"medians {f.alone_median_ms:.1f} vs {f.flood_median_ms:.1f} ms ({f.ratio:.2f}x). Flood: "
        f"{f.flood_requests} requests of {f.flood_body_kb} KiB ({f.flood_per_s:.0f}/s), {f.flood_refused_429} "
        f"refused with 429, {f.server_cpu_ms_per_refused:.3f} ms of server CPU each; {result.cores} cores"
    )


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant name (lower-case letters, digits, dashes)")],
    keys: KeysOpt = None,
    label: Annotated[str, typer.Option(help="A note to tell keys apart")] = "",
    ceiling: Annotated[
        str | None, typer.Option("--ceiling", help="Highest sensitivity this tenant may send to the cloud")
    ] = None,
    budget_usd: Annotated[float | None, typer.Option("--budget-usd", help="Cloud budget in USD")] = None,
    rate: Annotated[float | None, typer.Option("--rate", help="Requests per second (per replica)")] = None,
    burst: Annotated[
        int | None, typer.Option("--burst", help="Requests allowed at once above the rate")
    ] = None,
    no_cloud: Annotated[
        bool, typer.Option("--no-cloud", help="This tenant may not use the cloud model")
    ] = False,
) -> None:
    """Create an API key for TENANT (the tenant is created, or its limits updated). The key is the last line."""
    from ..serve.keys import KeyStore

    limits: dict[str, object] = {}
    if ceiling is not None:
        limits["cloud_ceiling"] = ceiling
    if budget_usd is not None:
        limits["budget_usd"] = budget_usd
    if rate is not None:
        limits["rate_per_s"] = rate
    if burst is not None:
        limits["burst"] = burst
    if no_cloud:
        limits["allow_cloud"] = False
    store = KeyStore(_keys_path(keys, None))
    key, rec = store.create(tenant, label=label, limits=limits)
    _err.print(f"created key {rec.id} for tenant {tenant!r} in {store.path}; it is shown once, store it now:")
    print(key)


@keys_app.command("list")
def keys_list(
    keys: KeysOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Key ids, tenants and state (never the keys: only their hashes are stored)."""
    from ..serve.keys import KeyStore

    store = KeyStore(_keys_path(keys, None))
    recs = store.list()
    tenants = store.tenants()
    if as_json:
        print(
            json.dumps(
                {
                    "keys": [
                        {
                            "id": r.id,
                            "tenant": r.tenant,
                            "label": r.label,
                            "created": r.created,
                            "revoked": r.revoked,
                        }
                        for r in recs
                    ],
                    "tenants": {
                        n: {k: getattr(t, k) for k in t.__slots__ if k != "name"} for n, t in tenants.items()
                    },
                },
                indent=2,
            )
        )
        return
    table = Table("id", "tenant", "label", "created", "state")
    for r in recs:
        created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(r.created))
        table.add_row(r.id, r.tenant, r.label, created, "active" if r.active else "revoked")
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id from `keys list` (or the whole key)")],
    keys: KeysOpt = None,
) -> None:
    """Revoke a key; running servers stop accepting it within a second."""
    from ..serve.keys import KeyStore

    store = KeyStore(_keys_path(keys, None))
    rec = store.revoke(key_id)
    _err.print(f"revoked key {rec.id} of tenant {rec.tenant!r}")


__all__ = ["keys_app", "serve_command"]


@bench_app.command("serve")
def bench_serve_command(
    concurrency: Annotated[int, typer.Option(help="Requests in flight at once")] = 32,
    duration: Annotated[float, typer.Option(help="Seconds of load per server")] = 30.0,
    url: Annotated[
        str | None, typer.Option(help="Measure a running loopback server instead of starting two")
    ] = None,
    key: Annotated[str | None, typer.Option(help="API key for --url")] = None,
    collection: Annotated[str, typer.Option(help="Collection the bench indexes and queries")] = "bench",
    endpoint: Annotated[str, typer.Option(help="'retrieve' or 'embeddings'")] = "retrieve",
    edge: Annotated[str, typer.Option(help="'model' (EmbeddingGemma) or 'hashing'")] = "model",
    model: Annotated[Path | None, typer.Option(help="On-device model directory")] = None,
    compare: Annotated[
        bool, typer.Option("--compare/--no-compare", help="Also measure the server with batching off")
    ] = True,
    max_batch: Annotated[int, typer.Option(help="Micro-batch size of the servers started")] = 32,
    max_wait_ms: Annotated[float, typer.Option(help="Micro-batch wait of the servers started")] = 2.0,
    docs: Annotated[int, typer.Option(help="Documents in the synthetic corpus indexed for retrieval")] = 400,
    single_only: Annotated[
        bool,
        typer.Option(
            "--single-only",
            help="Only single requests (and, with the real model, their side-by-side with the query's "
            "own embedding and PII findings in this process); no concurrent runs",
        ),
    ] = False,
    side_requests: Annotated[
        int, typer.Option(help="Single requests of the side-by-side, each followed by the same query in process")
    ] = 80,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Requests/s, p50/p95/p99 and errors of `edgeroute serve` on loopback, micro-batching on vs off;
    with the real model, single retrievals against the query's own embedding with PII findings."""
    from ..eval.bench_serve import run_serve_bench

    def say(msg: str) -> None:
        if not as_json:
            _err.print(f"[dim]{msg}[/]")

    result = run_serve_bench(
        concurrency,
        duration,
        url=url,
        key=key,
        collection=collection,
        endpoint=endpoint,
        edge=edge,
        model=model,
        compare=compare,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        docs=docs,
        progress=say,
        load=not single_only,
        side_requests=side_requests,
    )
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    table = Table("server", "requests/s", "p50 ms", "p95 ms", "p99 ms", "errors", "mean batch")
    for r in (result.batched, result.unbatched):
        if r is None:
            continue
        table.add_row(
            r.label, f"{r.requests_per_s:.1f}", f"{r.p50_ms:.1f}", f"{r.p95_ms:.1f}", f"{r.p99_ms:.1f}",
            str(r.errors), "-" if r.mean_batch is None else f"{r.mean_batch:.1f}",
        )  # fmt: skip
    if result.batched is not None:
        Console().print(table)
    Console().print(
        f"/v1/{result.endpoint}, concurrency {result.concurrency}, {result.duration_s:g} s each, {result.cores} cores; "
        f"single request p50 {result.single_p50_ms:.1f} ms; speedup "
        f"{'-' if result.speedup is None else f'{result.speedup:.2f}x'}; p99 / single {result.p99_over_single:.2f}"
    )
    sbs = result.side_by_side
    if sbs is not None:
        cpu = (
            f"; CPU per request: server {sbs.served_cpu_ms:.1f} ms against {sbs.embed_query_cpu_ms:.1f} ms "
            f"in process ({sbs.cpu_ratio:.2f}x)"
            if sbs.cpu_ratio is not None and sbs.served_cpu_ms is not None and sbs.embed_query_cpu_ms is not None
            else ""
        )
        Console().print(
            f"single requests side by side ({sbs.requests}, alternating query by query): served p50 "
            f"{sbs.served_p50_ms:.1f} ms; in this process embed_query with PII findings "
            f"{sbs.embed_query_p50_ms:.1f} ms, the embedding alone {sbs.embed_p50_ms:.1f} ms; served / "
            f"embed_query with findings [bold]{sbs.served_over_embed_query:.2f}x[/] (target <= 1.3x), "
            f"served / embedding {sbs.served_over_embed:.2f}x{cpu}"
        )
