"""``python -m edgeroute.connectors.bench_tools``: the same measurement as ``edgeroute bench tools``.

The measurement lives in :mod:`edgeroute.connectors.tools.bench`; this module keeps the old entry
point and :func:`make_embedder` (which embedder to measure).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from ..framework.embedder import Embedder
from ..framework.errors import ConfigurationError
from .tools.bench import measure_tool_routing
from .tools.data import SHIPPED_DATA, load_tool_set

DEFAULT_TOOL_DATA = SHIPPED_DATA


def make_embedder(
    kind: str = "edge", model_dir: str | Path | None = None, threads: int | None = None
) -> Embedder:
    """The embedder to measure: ``edge`` (EmbeddingGemma), ``tiny`` (generated test model) or ``hashing``."""
    if kind == "hashing":
        from ..framework.testing.hashing import HashingEmbedder

        return HashingEmbedder(256)
    from ..framework.edge.embedder import EdgeEmbedder

    if kind == "tiny":
        from ..framework.testing.tiny_model import build_tiny_model

        return EdgeEmbedder.load(build_tiny_model(Path(tempfile.mkdtemp()) / "tiny"))
    if kind != "edge":
        raise ConfigurationError(f"embedder must be 'edge', 'tiny' or 'hashing', got {kind!r}")
    return EdgeEmbedder.load(model_dir, threads=threads)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edgeroute.connectors.bench_tools", description=__doc__)
    p.add_argument(
        "model_dir", nargs="?", default=None, help="EmbeddingGemma model directory (default: cache)"
    )
    p.add_argument("--tiny", action="store_true", help="use the generated tiny test model")
    p.add_argument("--hashing", action="store_true", help="use the hashing embedder (no model)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--data", default=None, help="data folder (default: the shipped set)")
    p.add_argument("--shots", type=int, default=None, help="registration examples per tool")
    args = p.parse_args(argv)
    kind = "hashing" if args.hashing else "tiny" if args.tiny else "edge"
    out = measure_tool_routing(
        make_embedder(kind, args.model_dir, args.threads), data_dir=args.data, shots=args.shots
    )
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


__all__ = ["DEFAULT_TOOL_DATA", "load_tool_set", "main", "make_embedder", "measure_tool_routing"]

if __name__ == "__main__":
    raise SystemExit(main())
