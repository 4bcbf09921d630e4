"""The rows of ``edgeroute bench edge`` when it compares several model directories (quantizations and
runtimes) in one run: which directories can run here, each row's ratios against the first (the default
model), and the quality figures of :mod:`.bench_quality`.

A row's speed ratios are against the first row measured in the same run (``query_speedup`` > 1: this row
answers a short query faster; ``docs_ratio`` > 1: it embeds documents faster). Only side-by-side ratios
are worth comparing across days on a shared machine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .bench_edge import EngineFigures


@dataclass(frozen=True)
class Row:
    """One engine's figures and, with ``--quality``, the .npz its worker wrote."""

    label: str
    figures: EngineFigures
    vectors: Path | None


def skip_reason(model_dir: str) -> str | None:
    """Why ``model_dir`` cannot be measured here (not a model directory, or its runtime's package is
    missing), else None."""
    from ..edge.model_dir import ModelDirectory
    from ..edge.runtimes import EXTRA, runtime_available, runtime_of
    from ..errors import EdgeRouteError

    try:
        directory = ModelDirectory.open(Path(model_dir).expanduser(), verify=False)
        runtime = runtime_of(directory.model_path)
    except EdgeRouteError as exc:
        return f"not a usable model directory: {exc}"
    if runtime_available(runtime):
        return None
    module, extra = EXTRA[runtime]
    return f"{runtime} not installed ({module}): pip install 'edgeroute[{extra}]'"


def finish_rows(
    rows: list[Row],
    st_row: Row | None,
    data_dir: Path,
    subset: tuple[int, int | None] | None,
    model_dir: str | None,
    checkpoint: Path,
) -> list[dict[str, Any]]:
    """Every row as a dict: figures, ratios against the first row, and quality when it was measured.
    ``subset``: the quality subset's (extra documents, query limit), None without ``--quality``."""
    from .bench_quality import build_quality_set, prompts_of, score

    every = [*rows, *([st_row] if st_row is not None else [])]
    qs = None
    if subset is not None:
        prompts = prompts_of(model_dir, checkpoint)
        qs = build_quality_set(data_dir, prompts, extra_docs=subset[0], max_queries=subset[1])
    reference = st_row.vectors if st_row is not None else None
    first = rows[0].figures
    out: list[dict[str, Any]] = []
    for row in every:
        fig = row.figures
        entry: dict[str, Any] = {
            "label": row.label,
            **asdict(fig),
            "query_speedup": round(first.query_p50_ms / fig.query_p50_ms, 2),
            "docs_ratio": round(fig.docs_per_s / first.docs_per_s, 2),
        }
        if qs is not None and row.vectors is not None and row.vectors.is_file():
            entry.update(score(qs, row.vectors, reference))
        out.append(entry)
    return out


__all__ = ["Row", "finish_rows", "skip_reason"]
