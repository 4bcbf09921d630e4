"""``edgeroute`` console entry point: imports the command modules so they register, then runs."""

from __future__ import annotations

import sys

from rich.console import Console

from . import cli_cloud, cli_edge, cli_policy, cli_router, cli_store  # noqa: F401  (they register commands)
from .cli_app import app
from .errors import EdgeRouteError


def main() -> None:
    try:
        app()
    except EdgeRouteError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}")
        sys.exit(2)


if __name__ == "__main__":
    main()
