"""Commands registered on the shared app (see cli_app)."""

from __future__ import annotations

from .cli_app import app, bench_app, model_app, policy_app  # noqa: F401
