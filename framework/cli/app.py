"""The Typer application object shared by the command modules (each registers its own commands)."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="edgeroute",
    help="Hybrid edge-cloud retrieval: EmbeddingGemma on-device, Gemini Embedding 2 in the cloud, one router.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
model_app = typer.Typer(help="Export, inspect and verify on-device model directories.", no_args_is_help=True)
bench_app = typer.Typer(
    help="Benchmarks that print measured figures (use --json for scripts).", no_args_is_help=True
)
policy_app = typer.Typer(help="Fit and inspect routing policies.", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.add_typer(bench_app, name="bench")
app.add_typer(policy_app, name="policy")
