"""Helpers for the slow tests that run the real EmbeddingGemma model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgeroute.framework.edge.embedder import EdgeEmbedder
from edgeroute.framework.edge.model_dir import default_model_cache


def token_state_edge() -> EdgeEmbedder:
    """The real model (``EDGEROUTE_EDGE_MODEL`` or the default cache) with token-state outputs.

    Skips when the model is absent, fails when it is absent under CI or lacks token states.
    """
    path = Path(os.environ.get("EDGEROUTE_EDGE_MODEL") or default_model_cache())
    if not path.is_dir():
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"model directory {path} is missing under CI; run scripts/prepare-model first")
        pytest.skip(f"model directory {path} absent (run scripts/prepare-model)")
    e = EdgeEmbedder.load(path)
    if not e.has_token_states:
        pytest.fail(f"{path} has no token-state outputs; run scripts/prepare-model to upgrade it")
    return e
