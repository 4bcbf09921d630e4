"""Commands on the shared app (see cli.app): ``edgeroute emulator`` and ``edgeroute bench cloud``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table

from .app import app, bench_app, model_app, policy_app  # noqa: F401

# Spelled out, not imported: importing the emulator (numpy, and pytest through the testing package)
# at CLI start-up would slow every command; tests check it equals testing.emulator.FAULT_KINDS.
ALL_FAULTS = "429,500,503,timeout,drop"


@app.command("emulator")
def emulator_command(
    host: Annotated[str, typer.Option(help="Interface to bind (keep it on loopback).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one.")] = 8089,
    fault_rate: Annotated[float, typer.Option(help="Share of requests (0-1) that get a random fault.")] = 0.0,
    faults: Annotated[str, typer.Option(help="Comma-separated fault kinds drawn at random.")] = ALL_FAULTS,
    latency_ms: Annotated[float, typer.Option(help="Added latency per request, in milliseconds.")] = 0.0,
    record: Annotated[
        Path | None, typer.Option(help="Append one JSON line per request to this file.")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(help="Accept only this api key (default: any non-empty key).")
    ] = None,
) -> None:
    """Serve a loopback emulator of Gemini's embedding endpoints until Ctrl-C."""
    from ..testing.emulator import GeminiEmulator

    kinds = [k.strip() for k in faults.split(",") if k.strip()]
    try:
        emu = GeminiEmulator(
            host,
            port,
            fault_rate=fault_rate,
            faults=kinds,
            latency_ms=latency_ms,
            record_path=record,
            api_key=api_key,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    with emu:
        console = Console()
        console.print(f"Gemini emulator on [bold]{emu.base_url}[/] (protocol only, not Gemini's quality)")
        console.print(f"  export GOOGLE_GEMINI_BASE_URL={emu.base_url} GEMINI_API_KEY={api_key or 'any-key'}")
        console.print("  export NO_PROXY=127.0.0.1,localhost")
        try:
            # Wake now and then: a signal the kernel hands to a server thread only runs its handler (the
            # KeyboardInterrupt) once the main thread wakes, and an endless wait never would.
            while True:
                time.sleep(0.2)
        except KeyboardInterrupt:
            console.print("stopped")


@bench_app.command("cloud")
def bench_cloud_command(
    texts: Annotated[int, typer.Option(help="Documents to ingest.")] = 1000,
    latency_ms: Annotated[float, typer.Option(help="Latency the emulator injects per call.")] = 50.0,
    concurrency: Annotated[int, typer.Option(help="Concurrent batch calls.")] = 8,
    calls: Annotated[int, typer.Option(help="Single-query calls timed for the overhead figure.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Texts/s for an ingest and the client's own overhead per call, against the loopback emulator."""
    from ..eval.bench_cloud import run_cloud_bench

    if as_json:
        result = run_cloud_bench(
            texts=texts, latency_ms=latency_ms, concurrency=concurrency, overhead_calls=calls
        )
        typer.echo(json.dumps(result.as_dict()))
        return
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}")
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        result = run_cloud_bench(
            texts=texts,
            latency_ms=latency_ms,
            concurrency=concurrency,
            overhead_calls=calls,
            progress=progress,
        )
    table = Table(title="edgeroute bench cloud (loopback emulator)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_row(
        f"ingest of {result.texts} texts ({result.calls} calls)", f"{result.ingest_s:.3f} s", "<= 3 s"
    )
    table.add_row("texts/s", f"{result.texts_per_s:.0f}", "")
    table.add_row("client overhead per call, p50", f"{result.overhead_p50_ms:.2f} ms", "<= 5 ms")
    table.add_row("client overhead per call, p90", f"{result.overhead_p90_ms:.2f} ms", "")
    table.add_row("same call straight through the SDK, p50", f"{result.sdk_only_p50_ms:.2f} ms", "")
    Console().print(table)
