"""What the store-and-router commands share: their options, settings from them, output helpers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from ...policies.sensitivity import SENSITIVITY_LEVELS, SensitivityError, check_sensitivity
from ..errors import InputError
from ..settings import RouterSettings, resolve_settings
from .exit_codes import ExitCode

out = Console()
err = Console(stderr=True)

StoreOpt = Annotated[Path | None, typer.Option("--store", help="Store directory \\[env EDGEROUTE_STORE]")]
CollectionOpt = Annotated[
    str | None, typer.Option("--collection", "-c", help="Logical collection \\[env EDGEROUTE_COLLECTION]")
]
PolicyOpt = Annotated[
    Path | None, typer.Option("--policy", help="Policy TOML/YAML file \\[env EDGEROUTE_POLICY]")
]
EdgeOpt = Annotated[
    str | None,
    typer.Option("--edge", help="'model' (EmbeddingGemma) or 'hashing' (no model) \\[env EDGEROUTE_EDGE]"),
]
ModelOpt = Annotated[
    Path | None, typer.Option("--model", help="On-device model directory \\[env EDGEROUTE_EDGE_MODEL]")
]
OfflineOpt = Annotated[
    bool, typer.Option("--offline", help="Never call the cloud; queue documents in the outbox")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables")]
ChromaUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--chroma-url",
        help="A `chroma run` server (http://HOST:PORT) holding the vectors, for several writers at once; "
        "--store then keeps only the outbox, audit log, cache and ledger \\[env EDGEROUTE_CHROMA_URL]",
    ),
]
LockTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--lock-timeout",
        help="Seconds to wait for another process writing the embedded store, then fail (exit 1) "
        "\\[env EDGEROUTE_LOCK_TIMEOUT_S; default 10]",
    ),
]


def settings_from(
    store: Path | None,
    collection: str | None,
    policy: Path | None = None,
    edge: str | None = None,
    model: Path | None = None,
    offline: bool = False,
    *,
    chroma_url: str | None = None,
    lock_timeout: float | None = None,
) -> RouterSettings:
    return resolve_settings(
        store=store,
        collection=collection,
        policy_file=policy,
        edge=edge,
        model_dir=model,
        offline=True if offline else None,
        chroma_url=chroma_url,
        lock_timeout_s=lock_timeout,
    )


def check_sensitivity_option(level: str) -> str:
    try:
        return check_sensitivity(level)
    except SensitivityError:
        raise InputError(
            f"--sensitivity {level!r} is unknown; use one of {', '.join(SENSITIVITY_LEVELS)}"
        ) from None


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str, ensure_ascii=False))


def exit_with(code: ExitCode) -> None:
    if code != ExitCode.OK:
        raise typer.Exit(int(code))


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)
