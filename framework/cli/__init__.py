"""``edgeroute`` console entry point: imports the command modules so they register, then runs."""

from __future__ import annotations

import sys

from rich.console import Console

from ..errors import EdgeRouteError
from . import cloud, edge, policy, router, serve, store  # noqa: F401  (they register commands)
from .app import app


def main() -> None:
    try:
        app()
    except EdgeRouteError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}")
        sys.exit(2)


if __name__ == "__main__":
    main()
