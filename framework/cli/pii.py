"""``edgeroute pii scan`` (audit a corpus before indexing it) and ``edgeroute bench pii``."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import InputError
from ..store.loaders import TEXT_SUFFIXES
from .app import app, bench_app

pii_app = typer.Typer(
    help="On-device PII detection: audit texts before they are indexed.", no_args_is_help=True
)
app.add_typer(pii_app, name="pii")

_console = Console(stderr=True)
BATCH_LINES = 256
"""Lines read per detection call: memory stays bounded by these lines (and one group of windows'
token states) whatever the file's size. Within a call the texts are sorted by length before they
go to the model, so the wider the window the less padding: 256 sentences of about 130 characters
cost 43.2 ms of CPU per text against 57.4 ms in the earlier windows of 32 lines (2-core box)."""


def _detector(
    policy: Path | None,
    model: Path | None,
    patterns_only: bool,
    backend: str | None = None,
    presidio_models: dict[str, str] | None = None,
    model_batch: int | None = None,
) -> Any:
    from ...policies.config import PolicyConfig
    from ..pii import PiiDetector
    from ..router.policy_files import load_policy_file

    config = load_policy_file(policy) if policy is not None else PolicyConfig()
    if backend is not None:
        pii = config.pii.model_copy(
            update={"entities": config.pii.entities.model_copy(update={"backend": backend})}
        )
        config = config.model_copy(update={"pii": pii})
    if patterns_only or not config.pii.entities.enabled:
        return PiiDetector(
            config.pii.model_copy(
                update={"entities": config.pii.entities.model_copy(update={"enabled": False})}
            )
        )
    if config.pii.entities.backend == "presidio":
        if presidio_models:
            from ..pii.presidio_backend import PresidioBackend

            return PiiDetector(config, backend=PresidioBackend(presidio_models))
        return PiiDetector(config)
    from ..edge.embedder import EdgeEmbedder

    # The scan's own model (its runs are its alone); elsewhere the library's batches.
    edge = EdgeEmbedder.load(model, batch_size=model_batch) if model_batch else EdgeEmbedder.load(model)
    if not edge.has_token_states:
        raise InputError(
            f"the edge model in {edge.model_dir} has no token-state outputs, so names, addresses and dates "
            "cannot be detected; run scripts/prepare-model to upgrade it, or pass --patterns-only"
        )
    return PiiDetector(config, embedder=edge)


SCAN_MODEL_BATCH = 8
"""Texts per model run of the scan's detection pass (the library's default is 16). On the 2-core AVX2
box, 256 XQuAD sentences of about 130 characters (47 tokens with the prompt), sorted by length, cost
32.7 ms of CPU per text in runs of 8, 44.7 in runs of 16 and 36.2 in runs of 4: the int8 GEMMs'
cost grows faster than the rows. A text's token states do not depend on its batch up to a padded
length of 64 tokens (docs/edge-model.md); beyond, smaller sorted batches pad less."""


# --- reading inputs --------------------------------------------------------------------------------------

Item = tuple[dict[str, Any], str | None, str | None]  # (fields to echo, text or None, error or None)


def _jsonl_items(path: Path) -> Iterator[Item]:
    from ..edge.batching import unpaired_surrogate  # numpy: not at CLI start-up

    with path.open("rb") as fh:
        for n, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield (
                    {"line": n},
                    None,
                    f"line {n} is not valid UTF-8 ({exc.reason} at byte {exc.start}); fix the encoding",
                )
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield {"line": n}, None, f"line {n} is not valid JSON ({exc.msg}, column {exc.colno})"
                continue
            if not isinstance(row, dict) or "text" not in row:
                yield {"line": n}, None, f'line {n} has no "text" field; every line needs {{"text": "..."}}'
                continue
            if not isinstance(row["text"], str):
                fields = {k: v for k, v in row.items() if k != "text"} | {"line": n}
                yield fields, None, f'line {n}: "text" is {type(row["text"]).__name__}, not a string'
                continue
            at = unpaired_surrogate(row["text"])
            if at is not None:
                fields = {k: v for k, v in row.items() if k != "text"} | {"line": n}
                code = f"U+{ord(row['text'][at]):04X}"
                yield fields, None, f'line {n}: "text" holds an unpaired surrogate ({code}) at character {at}'
                continue
            yield {"line": n, **row}, row["text"], None


def _folder_items(path: Path) -> Iterator[Item]:
    for f in sorted(path.rglob("*")):
        rel = f.relative_to(path)
        if (
            not f.is_file()
            or any(p.startswith(".") for p in rel.parts)
            or f.suffix.lower() not in TEXT_SUFFIXES
        ):
            continue
        try:
            text = f.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            yield (
                {"path": rel.as_posix()},
                None,
                f"{rel} is not valid UTF-8 ({exc.reason} at byte {exc.start})",
            )
            continue
        yield {"path": rel.as_posix(), "chars": len(text)}, text, None


def _count_items(path: Path) -> int | None:
    if path.is_dir():
        return sum(1 for f in path.rglob("*") if f.is_file() and f.suffix.lower() in TEXT_SUFFIXES)
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip())


# --- scan ------------------------------------------------------------------------------------------------------


@pii_app.command("scan")
def pii_scan(
    input_path: Annotated[
        Path,
        typer.Argument(metavar="INPUT", help='JSONL with a "text" field per line, or a folder of .txt/.md'),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="one JSON object per input, then a summary")
    ] = False,
    policy: Annotated[Path | None, typer.Option(help="policy file (default: the router's defaults)")] = None,
    model: Annotated[Path | None, typer.Option(help="on-device model directory")] = None,
    patterns_only: Annotated[
        bool, typer.Option("--patterns-only", help="no model: patterns and secret rules")
    ] = False,
) -> None:
    """Report PII found on-device in each text; with no options, exactly what the router would keep home."""
    if not input_path.exists():
        raise InputError(f"{input_path} does not exist; pass a JSONL file or a folder of .txt/.md documents")
    if input_path.is_file() and input_path.suffix.lower() not in (".jsonl", ".json", ".ndjson"):
        raise InputError(
            f'{input_path} is not a .jsonl file; pass JSONL lines with a "text" field, or a folder'
        )
    detector = _detector(policy, model, patterns_only, model_batch=SCAN_MODEL_BATCH)
    items = _folder_items(input_path) if input_path.is_dir() else _jsonl_items(input_path)
    kinds: Counter[str] = Counter()
    scanned = flagged = errors = 0
    t0 = time.perf_counter()
    show = not as_json and sys.stderr.isatty()
    progress = Progress(
        TextColumn("scanning"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_console,
        disable=not show,
    )
    flagged_rows: list[tuple[str, str]] = []

    def flush(batch: list[Item]) -> None:
        nonlocal scanned, flagged, errors
        texts = [t for _, t, err in batch if err is None and t is not None]
        results = iter(detector.detect_many(texts)) if texts else iter(())
        for fields, _text, err in batch:
            if err is not None:
                errors += 1
                if as_json:
                    print(json.dumps({**fields, "error": err}, ensure_ascii=False), flush=True)
                else:
                    _console.print(f"[yellow]skipped:[/] {err}")
                continue
            found = next(results)
            scanned += 1
            flagged += bool(found)
            kinds.update(f.kind for f in found)
            if as_json:
                out = {
                    **fields,
                    "findings": [
                        {
                            "kind": f.kind,
                            "start": f.start,
                            "end": f.end,
                            "score": f.score,
                            "detector": f.detector,
                        }
                        for f in found
                    ],
                }
                print(json.dumps(out, ensure_ascii=False), flush=True)
            elif found and len(flagged_rows) < 20:
                where = str(fields.get("path", f"line {fields.get('line')}"))
                flagged_rows.append((where, ", ".join(sorted({f.kind for f in found}))))
            progress.advance(task, 1)

    with progress:
        task = progress.add_task("scan", total=_count_items(input_path) if show else None)
        batch: list[Item] = []
        for item in items:
            batch.append(item)
            if len(batch) >= BATCH_LINES:
                flush(batch)
                batch = []
        if batch:
            flush(batch)
    summary = {
        "input": str(input_path),
        "texts": scanned,
        "texts_with_findings": flagged,
        "findings_by_kind": dict(kinds.most_common()),
        "errors": errors,
        "detectors": detector.detectors,
        "entities": detector.entities_available,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if as_json:
        print(json.dumps({"summary": summary}, ensure_ascii=False), flush=True)
    else:
        table = Table(
            title=f"PII in {input_path} ({scanned} texts, {flagged} with findings, {errors} skipped)"
        )
        table.add_column("input")
        table.add_column("kinds found")
        for where, ks in flagged_rows:
            table.add_row(where, ks)
        Console().print(table)
        Console().print(
            f"findings by kind: {summary['findings_by_kind']}; detectors: {', '.join(detector.detectors)}"
        )
    if errors:
        raise typer.Exit(1)


# --- bench -------------------------------------------------------------------------------------------------------


@bench_app.command("pii")
def bench_pii(
    data: Annotated[
        list[Path] | None,
        typer.Option(
            "--data",
            help="labelled set: JSONL with text and spans [{start, end, label}] (or pii scan --json output), "
            "or a BIO/CoNLL file (.conll/.conllu/.bio/.iob/.tsv); repeat for several",
        ),
    ] = None,
    lang: Annotated[str, typer.Option(help="language of BIO/CoNLL files (default: from the path)")] = "",
    path: Annotated[Path | None, typer.Option(hidden=True)] = None,
    model: Annotated[Path | None, typer.Option(help="on-device model directory")] = None,
    policy: Annotated[Path | None, typer.Option(help="policy file (default: the router's defaults)")] = None,
    against: Annotated[
        str | None, typer.Option("--against", help="also run another backend side by side: presidio")
    ] = None,
    patterns_only: Annotated[
        bool, typer.Option("--patterns-only", help="no model: patterns and secret rules")
    ] = False,
    latency_samples: Annotated[int, typer.Option(help="queries timed for the added latency (0: skip)")] = 100,
    presidio_model: Annotated[
        list[str] | None,
        typer.Option(
            "--presidio-model",
            help="LANG=PACKAGE: the spaCy pipeline presidio uses for a language (repeatable; "
            "default en_core_web_sm and es_core_news_sm)",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """PII detection quality and cost. Without --data: the shipped pattern regression set (pattern layer)."""
    from ..eval.bench_pii import BENCH_PII_CONFIG, load_labelled, measure_detection, measure_pii

    sets = list(data or ([path] if path is not None else []))
    if not sets:
        result = measure_pii(None, BENCH_PII_CONFIG)
        if as_json:
            print(json.dumps(result, indent=2, default=str))
            return
        _print_regression(result)
        return
    if against not in (None, "presidio"):
        raise InputError(f"--against {against!r} is not a known backend; use --against presidio")
    rows = [row for d in sets for row in load_labelled(d, lang=lang)]
    where = ", ".join(str(d) for d in sets)
    runs = {"edgeroute": _detector(policy, model, patterns_only)}
    if against == "presidio":
        models: dict[str, str] = {}
        for item in presidio_model or []:
            lang_code, sep, package = item.partition("=")
            if not sep or not lang_code or not package:
                raise InputError(f"--presidio-model {item!r}: expected LANG=PACKAGE, e.g. en=en_core_web_sm")
            models[lang_code] = package
        runs["presidio"] = _detector(policy, None, False, backend="presidio", presidio_models=models or None)
    results = {
        name: measure_detection(rows, det, latency_samples=latency_samples if name == "edgeroute" else 0)
        for name, det in runs.items()
    }
    if as_json:
        print(json.dumps(results if against else results["edgeroute"], indent=2, ensure_ascii=False))
        return
    for name, res in results.items():
        table = Table(title=f"{name}: {res['texts']} texts from {where} ({', '.join(res['detectors'])})")
        table.add_column("group")
        for col in ("pii texts", "doc recall", "person texts", "recall", "clean texts", "FP rate", "person spans", "location spans"):
            table.add_column(col)
        by_lang = res["span_recall_by_lang"]
        for g, d in res["documents"].items():
            labels = by_lang.get(g.removeprefix("lang:"), {}) if g.startswith("lang:") else res["span_recall"]
            table.add_row(
                g, str(d["pii_texts"]), str(d["doc_recall"]), str(d["person_texts"]), str(d["person_text_recall"]),
                str(d["clean_texts"]), str(d["fp_rate"]),
                str(labels.get("person", {}).get("recall")), str(labels.get("location", {}).get("recall")),
            )
        Console().print(table)
        Console().print(
            "span recall: "
            + ", ".join(f"{k} {v['recall']} ({v['spans']})" for k, v in res["span_recall"].items())
        )
        if "latency" in res:
            Console().print(f"latency: {res['latency']}")


def _print_regression(result: dict[str, Any]) -> None:
    table = Table(title=f"PII pattern detectors on {result.get('texts')} texts (shipped regression set)")
    for col in ("detector", "precision", "recall", "tp", "fp", "fn"):
        table.add_column(col)
    for name, m in [*result["detectors"].items(), ("overall", result["overall"])]:
        table.add_row(
            name, f"{m['precision']:.3f}", f"{m['recall']:.3f}", str(m["tp"]), str(m["fp"]), str(m["fn"])
        )
    Console().print(table)
    Console().print(f"latency per text: {result['latency_ms']}")
