"""Rich progress bars for long commands, on stderr, only for a person at a terminal.

Library code reports progress through a plain callback, ``progress(stage, done, total)``; this module
turns those calls into bars. It is quiet (a no-op callback) with ``--json`` or when stderr is not a
terminal, so pipes, scripts and logs get clean output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

ProgressFn = Callable[[str, int, int | None], None]

STAGE_LABELS = {
    "files": "reading files",
    "chunks": "chunking",
    "edge": "edge embedding",
    "embedded": "embedded (workers)",
    "written": "written",
    "queued": "queued",
    "cloud": "cloud sends",
    "batch": "batch results",
    "queries": "running queries",
    "index": "embedding documents",
    "export": "exporting",
}


def quiet(stage: str, done: int, total: int | None) -> None:
    """The callback when nobody is watching."""


@contextmanager
def progress_bars(*, enabled: bool, console: Console | None = None) -> Iterator[ProgressFn]:
    """A callback that draws one bar per stage while the block runs (transient: gone afterwards).

    ``enabled`` is False for ``--json``; the bars also stay off when the console is not a terminal.
    """
    out = console or Console(stderr=True)
    if not enabled or not out.is_terminal:
        yield quiet
        return
    tasks: dict[str, TaskID] = {}
    with Progress(
        TextColumn("{task.description:<20}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=out,
        transient=True,
    ) as bars:

        def update(stage: str, done: int, total: int | None) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(STAGE_LABELS.get(stage, stage), total=total)
            bars.update(tasks[stage], completed=done, total=total)

        yield update


__all__ = ["STAGE_LABELS", "ProgressFn", "progress_bars", "quiet"]
