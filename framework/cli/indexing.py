"""Commands that write documents: index and delete."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..documents import Document
from ..errors import InputError, RoutingError
from ..settings import build_engine, load_policy
from .app import app
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
    """
    from ...policies.pii import detect_pii
    from ..router.placement import cloud_allowed, pii_text
    from ..router.provenance import check_prefix
    from .sources import claim_ids, load_sources

    level = check_sensitivity_option(sensitivity)
    id_prefix = check_prefix(id_prefix)
    settings = settings_from(
        store, collection, policy, edge, model, offline, chroma_url=chroma_url, lock_timeout=lock_timeout
    )
    with progress_bars(enabled=not as_json, console=err) as progress:
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
            lock = engine.store.writer_lock
            waited = lock.waited_s if lock is not None else 0.0
            # In the session that writes: checked and written under one hold of the store.
            docs, not_indexable = claim_ids(engine, loaded, [docs, not_indexable], id_prefix)
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
        print_json(
            {
                "collection": settings.collection,
                "store": str(settings.store),
                **(report.to_dict() if report is not None else {}),
                "pruned": pruned,
                "skipped": [p.to_dict() for p in loaded.bad],
                "empty": [p.path for p in loaded.empty],
                "not_indexable": [d.id for d in not_indexable],
                "truncated_inputs": truncated,
                "lock_wait_s": round(waited, 3),
                "exit_code": int(code),
            }
        )
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
