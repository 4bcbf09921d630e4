"""Shared setup for the examples: pick the edge embedder and the cloud (Gemini, or the in-process emulator)."""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgeroute.framework.cloud.embedder import CloudEmbedder
from edgeroute.framework.embedder import Embedder
from edgeroute.framework.errors import ModelNotFoundError
from edgeroute.framework.testing.emulator import GeminiEmulator
from edgeroute.framework.testing.hashing import HashingEmbedder


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--edge",
        choices=["auto", "model", "tiny", "hashing"],
        default="auto",
        help="on-device embedder: EmbeddingGemma (model), the generated tiny test model, the hashing "
        "embedder, or auto (EmbeddingGemma when installed, else hashing)",
    )
    p.add_argument("--model-dir", default=None, help="EmbeddingGemma model directory (default: the cache)")
    p.add_argument(
        "--emulator",
        action="store_true",
        help="use the in-process Gemini emulator even if GEMINI_API_KEY is set",
    )
    return p


def edge_embedder(kind: str, model_dir: str | None = None) -> Embedder:
    """The on-device embedder the examples run with."""
    if kind == "hashing":
        return HashingEmbedder(256)
    from edgeroute.framework.edge.embedder import EdgeEmbedder

    if kind == "tiny":
        from edgeroute.framework.testing.tiny_model import build_tiny_model

        return EdgeEmbedder.load(build_tiny_model(Path(tempfile.mkdtemp()) / "tiny"))
    try:
        return EdgeEmbedder.load(model_dir)
    except ModelNotFoundError:
        if kind == "model":
            raise
        print(
            "(EmbeddingGemma not installed: using the hashing embedder; `edgeroute model export` installs it)"
        )
        return HashingEmbedder(256)


@contextmanager
def cloud_embedder(
    force_emulator: bool = False, dims: int = 768
) -> Iterator[tuple[CloudEmbedder, GeminiEmulator | None]]:
    """Gemini Embedding 2 when ``GEMINI_API_KEY`` is set, else the emulator on loopback."""
    if os.environ.get("GEMINI_API_KEY") and not force_emulator:
        yield CloudEmbedder(dims=dims), None
        return
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    with GeminiEmulator(port=0) as emu:
        yield CloudEmbedder(dims=dims, api_key="emulator-key", base_url=emu.base_url), emu
