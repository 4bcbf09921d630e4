"""The real exported EmbeddingGemma model against sentence-transformers (slow: loads both).

Locally these skip when the model directory or the checkpoint is absent; under CI=true a missing
model fails, because CI prepares it with scripts/prepare-model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeroute.framework.edge.embedder import EdgeEmbedder
from edgeroute.framework.edge.export.exporter import PARITY_SAMPLE, reference_embeddings
from edgeroute.framework.edge.model_dir import default_model_cache

pytestmark = pytest.mark.slow

CHECKPOINT = Path(
    os.environ.get("EDGEROUTE_CHECKPOINT", Path.home() / ".cache" / "edgeroute-dev" / "embeddinggemma-300m")
)

# First five components of embed_queries(["what causes dehydration?"]) at 768 dims, per build,
# measured with onnxruntime 1.32 on x86-64 (AVX2). Tolerance covers other CPUs' kernels.
GOLDEN: dict[str, list[float]] = {
    "none": [-0.123425, 0.067718, -0.036661, 0.0472, -0.016187],
    "w8-e4": [-0.124206, 0.069409, -0.036322, 0.048179, -0.013364],  # fused graph (optimize_graph.py)
    # row-wise int8, graph version 5 (row scales folded: float rounding moves these by up to 0.0025)
    "a8w7-e8": [-0.121773, 0.067948, -0.037796, 0.044206, -0.018215],
    "a8w8-e8": [-0.122062, 0.068319, -0.037181, 0.046795, -0.016364],  # measured on AVX-512 VNNI / AMX
}
GOLDEN_BEFORE_V5: dict[str, list[float]] = {
    "a8w7-e8": [-0.122696, 0.070493, -0.038236, 0.045529, -0.017645],  # graph versions 2 to 4
}


def _need(path: Path, what: str) -> Path:
    if path.is_dir():
        return path
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{what} {path} is missing under CI; run scripts/prepare-model first")
    pytest.skip(f"{what} {path} absent (run scripts/prepare-model)")


@pytest.fixture(scope="module")
def edge() -> EdgeEmbedder:
    path = Path(os.environ.get("EDGEROUTE_EDGE_MODEL") or default_model_cache())
    return EdgeEmbedder.load(_need(path, "model directory"))


@pytest.fixture(scope="module")
def reference() -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(_need(CHECKPOINT, "checkpoint")), device="cpu")


def test_parity_with_sentence_transformers_on_mixed_sample(edge: EdgeEmbedder, reference: Any) -> None:
    ref = reference_embeddings(reference, PARITY_SAMPLE)
    formatted = [edge.format_prompt(text, name) for name, text in PARITY_SAMPLE]
    assert max(edge.count_tokens(formatted)) > 512  # the long document really is long
    got = edge.embed(formatted, None)
    cos = (got * ref).sum(axis=1)
    floor_min, floor_mean = (0.9999, 0.9999) if edge.manifest.quantization == "none" else (0.99, 0.995)
    assert cos.min() >= floor_min, cos
    assert cos.mean() >= floor_mean, cos


def test_golden_first_values(edge: EdgeEmbedder) -> None:
    before_v5 = edge.manifest.export.get("graph_version", 1) < 5
    quantization = edge.manifest.quantization
    golden = (GOLDEN_BEFORE_V5.get(quantization) if before_v5 else None) or GOLDEN.get(quantization)
    if golden is None:
        pytest.skip(f"no golden values pinned for quantization {edge.manifest.quantization!r}")
    got = edge.embed_queries(["what causes dehydration?"])[0, :5]
    np.testing.assert_allclose(got, golden, atol=1e-3)


def test_retrieval_sense_and_matryoshka(edge: EdgeEmbedder) -> None:
    docs = [
        "Dehydration happens when the body loses more water than it takes in, through sweat, fever or diarrhoea.",
        "The Eiffel Tower was completed in 1889 for the World's Fair in Paris.",
    ]
    for dims in (768, 512, 256, 128):
        q = edge.embed_queries(["what causes dehydration?"], dims=dims)
        d = edge.embed_documents(docs, titles=["Dehydration", None], dims=dims)
        scores = (q @ d.T)[0]
        assert scores[0] > scores[1] + 0.1, (dims, scores)
    assert edge.space.dims == 768 and edge.space.provider == "edge"


def test_truncation_at_2048_tokens_is_counted(edge: EdgeEmbedder) -> None:
    before = edge.truncated_count
    long_text = "water cycle " * 1500
    vec = edge.embed_documents([long_text])
    assert vec.shape == (1, 768)
    assert edge.truncated_count == before + 1
    assert edge.count_tokens([long_text]) == [2048]


def test_exported_graph_is_fused(edge: EdgeEmbedder) -> None:
    """The exporter's fusion step ran (framework/optimize_graph.py): no decomposed RMSNorm left."""
    fusion = edge.manifest.export.get("graph_fusion")
    if not fusion:
        pytest.skip("model directory predates the graph-fusion step (scripts/prepare-model re-exports it)")
    assert fusion["SimplifiedLayerNormalization"] == 145
    assert fusion["FastGelu"] == 24
    assert fusion["nodes_after"] < fusion["nodes_before"]
    import onnx

    ops = {
        n.op_type for n in onnx.load(str(edge.model_dir / "model.onnx"), load_external_data=False).graph.node
    }
    assert "SimplifiedLayerNormalization" in ops and "IsNaN" not in ops and "Tanh" not in ops
    if edge.manifest.export.get("graph_version", 1) >= 2:  # framework/fuse_attention.py
        assert fusion["MultiHeadAttention"] == 24 and fusion["RotaryEmbedding"] == 48
        assert "MultiHeadAttention" in ops and "Softmax" not in ops and "Neg" not in ops
    if edge.manifest.export.get("graph_version", 1) >= 4:  # export/fold_dense.py: one Gemm after pooling
        (folded,) = fusion["dense"]["folded"]
        assert folded["shape"] == [768, 768] and folded["weights_before"] == 2 * 768 * 3072
        gemms = [
            n for n in onnx.load(str(edge.model_dir / "model.onnx"), load_external_data=False).graph.node
        ]
        assert [n.op_type for n in gemms].count("Gemm") == 1


def test_default_recipe_runs_integer_gemms(edge: EdgeEmbedder) -> None:
    """The a8w7-e8 build really is row-wise int8: every projection an integer GEMM, 8-bit table."""
    if edge.manifest.quantization != "a8w7-e8":
        pytest.skip(f"model directory holds {edge.manifest.quantization!r}, not the default a8w7-e8")
    import onnx

    graph = onnx.load(str(edge.model_dir / "model.onnx"), load_external_data=False).graph
    ops = [n.op_type for n in graph.node]
    # q/k/v merged, o, gate/up merged, down in each of 24 layers (before graph version 2: seven)
    per_layer = 4 if edge.manifest.export.get("graph_version", 1) >= 2 else 7
    assert ops.count("MatMulIntegerToFloat") == 24 * per_layer
    if edge.manifest.export.get("graph_version", 1) >= 5:  # export/row_scales.py: no Div, no rescale Mul
        assert edge.manifest.export["graph_fusion"]["row_scales_folded"] == 96
        assert "Div" not in {n.op_type for n in graph.node if n.name.startswith("rowq")}
        assert not [n for n in graph.node if n.name.endswith("_rescale")]
    (gather,) = [n for n in graph.node if n.op_type == "GatherBlockQuantized"]
    assert {a.name: a.i for a in gather.attribute}["bits"] == 8
