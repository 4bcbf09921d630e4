"""``edgeroute`` console entry point: imports the command modules so they register, then runs."""

from __future__ import annotations

import os
import sys

# Before numpy loads: one OpenBLAS thread in edgeroute's own processes. ONNX Runtime already uses every
# core, and OpenBLAS's pool for the small products beside it (the PII head's, the tool router's) made
# them wait on busy cores: a served query took 149 ms at p50 with the default and 118 ms with one
# thread (`edgeroute bench serve`, 2 cores). An explicit setting in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from rich.console import Console
from rich.markup import escape

from ..errors import EdgeRouteError
from . import cloud, edge, indexing, pii, policy, router, serve, store, sync  # noqa: F401  (they register commands)
from .app import app
from .exit_codes import exit_code_for


def main() -> None:
    """Run the command; an edgeroute error prints one line and exits with its documented code."""
    try:
        app()
    except EdgeRouteError as exc:
        # soft_wrap: no line breaks inside paths and ids, so scripts can grep the message.
        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(int(exit_code_for(exc)))


if __name__ == "__main__":
    main()
