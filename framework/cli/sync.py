"""The outbox commands: sync (drain it into the cloud index) and status (queues, circuit, spend)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import threading
import time
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import CollectionNotFoundError
from ..router.reports import BatchSyncReport, SyncReport
from ..settings import RouterSettings, build_engine, require_store
from .app import app
from .exit_codes import ExitCode
from .options import (
    ChromaUrlOpt,
    JsonOpt,
    LockTimeoutOpt,
    PolicyOpt,
    StoreOpt,
    err,
    exit_with,
    out,
    print_json,
    settings_from,
)
from .progress import ProgressFn, progress_bars


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


TURN_BATCHES = 8
"""Cloud batches one `sync` sends per hold of an embedded store's writer lock, so a long drain never
keeps other writers (`index`, another `sync`) waiting past their lock timeout."""
_YIELD_S = 0.2  # between turns: longer than a waiting writer's poll (50 ms), so it takes the lock


def _drain_in_turns(
    settings: RouterSettings, limit: int | None, batch_size: int, progress: ProgressFn, stop: threading.Event
) -> tuple[SyncReport, float]:
    """Drain one collection; on an embedded store in turns of ``TURN_BATCHES`` batches, each its own
    open/close of the store (so its lock), one report for them all, and the seconds spent waiting for
    the lock. A Chroma server needs no turns."""
    turn = None if settings.chroma_url else max(1, batch_size) * TURN_BATCHES
    left = limit
    total = SyncReport()
    waited = 0.0
    while True:
        size = turn if left is None else left if turn is None else min(turn, left)
        with build_engine(settings, existing=True, load_model=False) as engine:
            lock = engine.store.writer_lock
            waited += lock.waited_s if lock is not None else 0.0
            report = engine.sync(size, batch_size=batch_size, progress=progress)
        handled = report.written + report.unchanged + report.refused
        total = dataclasses.replace(
            report,
            written=total.written + report.written,
            unchanged=total.unchanged + report.unchanged,
            refused=total.refused + report.refused,
            failed=total.failed + report.failed,
        )
        if left is not None:
            left -= handled + report.failed
        done = report.failed > 0 or handled == 0 or report.remaining <= report.in_flight
        if turn is None or done or (left is not None and left <= 0) or stop.is_set():
            return total, waited
        time.sleep(_YIELD_S)


def _merge(total: BatchSyncReport, r: BatchSyncReport) -> BatchSyncReport:
    """One report for several rounds: counts added, the queue's figures and the note from the last."""
    add = ("written", "unchanged", "refused", "failed", "jobs_submitted", "jobs_resumed", "jobs_done")
    more = ("jobs_failed", "polls", "claimed")
    return dataclasses.replace(
        r,
        **{k: getattr(total, k) + getattr(r, k) for k in (*add, *more)},
        error=r.error or total.error,
        fallback=r.fallback or total.fallback,
    )


def _batch_in_rounds(
    settings: RouterSettings,
    limit: int | None,
    options: dict[str, Any],
    progress: ProgressFn,
    stop: threading.Event,
) -> tuple[BatchSyncReport, float]:
    """Drain one collection through the Batch API in rounds: each round opens the store (its writer
    lock), polls the recorded jobs once, writes what ended, submits what fits, and closes it; between
    rounds it waits --poll-interval. One drainer id across rounds keeps the jobs' poll leases."""
    from ..router.outbox import Outbox, new_owner_id
    from ..router.outbox_jobs import BatchJobs

    owner = new_owner_id()
    tried: set[str] = set()
    total = BatchSyncReport()
    waited = 0.0
    left = limit
    deadline = None if options["timeout"] is None else time.monotonic() + options["timeout"]
    try:
        while True:
            with build_engine(settings, existing=True, load_model=False) as engine:
                lock = engine.store.writer_lock
                waited += lock.waited_s if lock is not None else 0.0
                report = engine.batch_drain(
                    left,
                    job_size=options["job_size"],
                    max_jobs=options["max_jobs"],
                    poll_interval_s=0.0,
                    wait=False,
                    owner=owner,
                    tried=tried,
                    progress=progress,
                )
            total = _merge(total, report)
            if left is not None:
                left = max(0, left - report.claimed)
            idle = report.jobs_open == 0 and report.claimed == 0
            if (
                report.fallback
                or idle
                or not options["wait"]
                or (left is not None and left <= 0 and not report.jobs_open)
            ):
                return total, waited
            if deadline is not None and time.monotonic() >= deadline:
                return total, waited
            if stop.wait(options["poll_interval"]):
                return total, waited
    finally:
        with Outbox(settings.outbox_path) as outbox:
            BatchJobs(outbox).release_polls(owner)


def _retry_dead(settings: RouterSettings) -> int:
    """Queue a collection's dead letters again; the outbox is SQLite with its own locking, so this
    needs no hold of the store."""
    from ..router.outbox import Outbox

    with Outbox(settings.outbox_path) as outbox:
        return outbox.retry_dead(settings.collection)


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
    retry_dead: Annotated[
        bool,
        typer.Option(
            "--retry-dead",
            help="First put the dead-lettered documents (ones the cloud refused for good) back in the queue",
        ),
    ] = False,
    batch_api: Annotated[
        bool,
        typer.Option(
            "--batch-api",
            help="Send through Gemini's Batch API: half price, its own limits, results within 24 h "
            "(a model without one is sent interactively)",
        ),
    ] = False,
    job_size: Annotated[int, typer.Option(help="With --batch-api: documents per batch job")] = 1000,
    max_jobs: Annotated[int, typer.Option(help="With --batch-api: jobs open at once (1-100)")] = 4,
    poll_interval: Annotated[
        float, typer.Option(help="With --batch-api: seconds between polls of the open jobs")
    ] = 30.0,
    no_wait: Annotated[
        bool,
        typer.Option(
            "--no-wait",
            help="With --batch-api: submit and poll once, then exit; a later sync --batch-api polls on",
        ),
    ] = False,
    timeout: Annotated[
        float | None, typer.Option(help="With --batch-api: stop polling after this many seconds")
    ] = None,
    policy: PolicyOpt = None,
    chroma_url: ChromaUrlOpt = None,
    lock_timeout: LockTimeoutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Drain the outbox into the cloud index. Safe to interrupt (even kill -9) and to rerun; each queued
    document is sent once even when several `sync` processes share the outbox. Loads no model.

    Writing an embedded store takes its writer lock, one collection's drain at a time, so `sync`
    processes, `index` and `delete` on one store take turns (waiting up to --lock-timeout each);
    `--watch` lets go of the store between rounds. For writers that run at the same moment (or beside
    `serve`), put the vectors on a Chroma server and pass --chroma-url.

    A document the cloud refuses for good (over the token limit, 400 INVALID_ARGUMENT) becomes a dead
    letter after EDGEROUTE_OUTBOX_MAX_ATTEMPTS refusals (default 3): kept, shown by `edgeroute status`,
    no longer sent; --retry-dead queues the dead letters again (after you fix the cause) and drains.

    --batch-api drains a large backlog through Gemini's Batch API (half the interactive price, its own
    rate limits, results within 24 h): it submits jobs of --job-size documents (at most --max-jobs
    open), polls them every --poll-interval seconds and writes the cloud index as each job ends. The jobs
    are recorded in the outbox: an interrupted run (kill -9 included) is resumed by the next
    `sync --batch-api`, which polls them and submits nothing twice; a job that fails or expires returns
    its documents to the queue. Every document is checked by the privacy guard before it goes into a job.

    Exit codes: 0 every queue drained; 3 documents still queued, failed or dead-lettered, or batch jobs
    still open (the error says why); 2 an unknown collection (the existing ones are listed); 1 failed
    (for example the store stayed locked).
    """
    from .sources import collection_given, collections_in, require_collection

    if batch_api and watch:
        raise typer.BadParameter(
            "--batch-api polls its jobs until they end; drop --watch", param_hint="--watch"
        )
    batch_options = {
        "job_size": job_size,
        "max_jobs": max_jobs,
        "poll_interval": poll_interval,
        "wait": not no_wait,
        "timeout": timeout,
    }
    if batch_api:
        from ..router.batch_drain import check_batch

        check_batch(job_size, max_jobs, poll_interval)

    base = settings_from(store, collection, policy, chroma_url=chroma_url, lock_timeout=lock_timeout)
    existing = collections_in(base)
    if collection_given(collection):
        require_collection(base, existing)
        names = [base.collection]
    else:
        names = existing
        if not names:
            raise CollectionNotFoundError(f"no collections in {base.store}: index documents first")
    code = ExitCode.OK
    with (
        progress_bars(enabled=not as_json and not watch, console=err) as progress,
        _stop_on_signal(watch) as stop,
    ):
        while True:
            code = ExitCode.OK
            for name in names:
                if stop.is_set():
                    break
                settings = dataclasses.replace(base, collection=name)
                revived = _retry_dead(settings) if retry_dead else 0
                if revived and not as_json:
                    out.print(f"[bold]{name}[/]: {revived} dead-lettered document(s) queued again")
                report: SyncReport
                if batch_api:
                    report, waited = _batch_in_rounds(settings, limit, batch_options, progress, stop)
                else:
                    report, waited = _drain_in_turns(settings, limit, batch_size, progress, stop)
                if not report.complete:
                    code = ExitCode.EDGE_ONLY
                if as_json:
                    line: dict[str, Any] = {
                        "collection": name,
                        **report.to_dict(),
                        "lock_wait_s": round(waited, 3),
                    }
                    if retry_dead:
                        line["retried_dead"] = revived
                    print(json.dumps(line), flush=True)
                else:
                    out.print(
                        f"[bold]{name}[/]: {report.written} sent, {report.unchanged} already there, "
                        f"{report.refused} refused by privacy, {report.failed} failed; "
                        f"{report.remaining} still queued"
                        + (f" ({report.in_flight} being sent by another process)" if report.in_flight else "")
                        + (f"; {report.dead} dead-lettered (see edgeroute status)" if report.dead else "")
                        + (f" ({escape(report.error)})" if report.error else "")
                    )
                    if isinstance(report, BatchSyncReport):
                        out.print(_batch_line(report))
            if not watch or stop.wait(interval):
                break
    exit_with(code)


def _batch_line(r: BatchSyncReport) -> str:
    line = (
        f"  batch jobs: {r.jobs_submitted} submitted, {r.jobs_resumed} resumed, {r.jobs_done} done, "
        f"{r.jobs_failed} failed or expired (their documents queued again), {r.jobs_open} still open"
    )
    if r.jobs_open:
        line += "; run edgeroute sync --batch-api again to poll them"
    if r.fallback:
        line += f"\n  {escape(r.fallback)}"
    return line


@app.command("status")
def status_command(
    store: StoreOpt = None,
    collection: Annotated[
        str | None,
        typer.Option("--collection", "-c", help="One collection (default: every collection in the store)"),
    ] = None,
    policy: PolicyOpt = None,
    chroma_url: ChromaUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Queue depth, circuit state, budget left, cloud spend, cache hit rate and index sizes. Loads no model
    and creates nothing; never waits for a writer. With --json and no --collection: {"collections": [...]}
    (one object each)."""
    from .sources import collection_given, collections_in, require_collection

    base = settings_from(store, collection, policy, chroma_url=chroma_url)
    if base.chroma_url is None:
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
        print_json(statuses[0] if given else {"store": str(base.store), "collections": statuses})
        return
    if not statuses:
        out.print(f"no collections in {base.store}")
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
        "dead letters": _dead_line(status),
        "batch jobs open": str(status.get("batch_jobs_open", 0))
        + (" (edgeroute sync --batch-api polls them)" if status.get("batch_jobs_open") else ""),
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
    out.print(table)


def _dead_line(status: dict[str, Any]) -> str:
    dead = int(status.get("outbox_dead") or 0)
    if not dead:
        return "0"
    return (
        f"{dead} refused by the cloud for good, no longer sent (last error: {status.get('outbox_dead_error')}); "
        "fix the cause (chunk long documents), then edgeroute sync --retry-dead"
    )
