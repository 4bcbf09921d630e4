from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeroute.framework.cli import app

CHECKPOINT = Path(
    os.environ.get("EDGEROUTE_CHECKPOINT", Path.home() / ".cache/edgeroute-dev/embeddinggemma-300m")
)


def test_sentence_transformers_eval_needs_a_checkpoint(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["eval", str(tmp_path), "--embedder", "sentence-transformers"])
    assert result.exit_code != 0
    assert "--model CHECKPOINT_DIR" in str(result.exception)


@pytest.mark.slow
def test_reference_matches_the_onnx_model() -> None:
    if not (CHECKPOINT / "modules.json").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"no checkpoint at {CHECKPOINT}; scripts/prepare-model fetches it")
        pytest.skip("checkpoint not fetched")
    from edgeroute.framework.edge.embedder import EdgeEmbedder
    from edgeroute.framework.edge.export.reference import SentenceTransformersEmbedder

    ref = SentenceTransformersEmbedder(CHECKPOINT)
    edge = EdgeEmbedder.load()
    assert ref.space != edge.space  # never mixed in one collection or cache
    for dims in (768, 128):
        q = ["what causes dehydration?"]
        d = ["Dehydration is the loss of more water than the body takes in."]
        assert float(np.sum(ref.embed_queries(q, dims=dims) * edge.embed_queries(q, dims=dims))) > 0.99
        cos = ref.embed_documents(d, titles=["Health"], dims=dims) * edge.embed_documents(
            d, titles=["Health"], dims=dims
        )
        assert float(np.sum(cos)) > 0.99
