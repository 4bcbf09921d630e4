"""framework/fuse_attention.py and the skip-norm fusion: rewrites checked against onnxruntime on the
unfused graph, and (slow) on a tiny Gemma3 encoder traced by the project's own dynamo exporter."""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgeroute.framework.edge.export.fuse_attention import fuse_attention, merge_sibling_matmuls  # noqa: E402
from edgeroute.framework.edge.export.optimize_graph import fuse_graph, fuse_skip_norms  # noqa: E402

D = 8


def _model(nodes: list[Any], inits: list[Any], outputs: list[str]) -> Any:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", D])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _run(model: Any, feeds: dict[str, Any]) -> list[np.ndarray[Any, Any]]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return [np.asarray(y) for y in sess.run(None, feeds)]


def _w(name: str, shape: tuple[int, ...], seed: int) -> Any:
    return numpy_helper.from_array(
        np.random.default_rng(seed).standard_normal(shape).astype(np.float32), name
    )


def test_residual_add_and_norm_become_one_skip_norm_that_also_returns_the_sum() -> None:
    n = helper.make_node
    nodes = [
        n("MatMul", ["x", "w_mm"], ["h"]),
        n("Add", ["x", "h"], ["res"]),  # residual: read by the norm and by the next residual
        n("SimplifiedLayerNormalization", ["res", "w_norm"], ["normed"], axis=-1, epsilon=1e-6),
        n("Add", ["res", "normed"], ["y"]),
        n("Add", ["x", "bias"], ["c"]),  # a constant operand: not a residual, left alone
        n("SimplifiedLayerNormalization", ["c", "w_norm"], ["y2"], axis=-1, epsilon=1e-6),
    ]
    model = _model(nodes, [_w("w_mm", (D, D), 0), _w("w_norm", (D,), 1), _w("bias", (D,), 2)], ["y", "y2"])
    x = np.random.default_rng(3).standard_normal((2, 5, D)).astype(np.float32)
    expected = _run(model, {"x": x})

    assert fuse_skip_norms(model) == 1

    ops = Counter(node.op_type for node in model.graph.node)
    assert ops["SkipSimplifiedLayerNormalization"] == 1 and ops["SimplifiedLayerNormalization"] == 1
    for got, want in zip(_run(model, {"x": x}), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_matmuls_reading_one_activation_are_merged_into_one_wide_matmul() -> None:
    n = helper.make_node
    nodes = [
        n("MatMul", ["x", "wq"], ["q"]),
        n("MatMul", ["x", "wk"], ["k"]),
        n("MatMul", ["x", "wv"], ["v"]),
        n("Relu", ["x"], ["r"]),
        n("MatMul", ["r", "wo"], ["o"]),  # the only MatMul on its input: untouched
    ]
    inits = [_w("wq", (D, 12), 0), _w("wk", (D, 4), 1), _w("wv", (D, 4), 2), _w("wo", (D, D), 3)]
    model = _model(nodes, inits, ["q", "k", "v", "o"])
    x = np.random.default_rng(4).standard_normal((2, 3, D)).astype(np.float32)
    expected = _run(model, {"x": x})

    assert merge_sibling_matmuls(model) == 2

    ops = Counter(node.op_type for node in model.graph.node)
    assert ops == {"MatMul": 2, "Split": 1, "Relu": 1}
    assert {i.name for i in model.graph.initializer} >= {"wo"} and "wq" not in {
        i.name for i in model.graph.initializer
    }
    for got, want in zip(_run(model, {"x": x}), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_graphs_without_the_attention_pattern_are_left_alone() -> None:
    nodes = [helper.make_node("Softmax", ["x"], ["y"], axis=-1)]
    model = _model(nodes, [], ["y"])
    stats = fuse_attention(model)
    assert stats["MultiHeadAttention"] == 0 and [n.op_type for n in model.graph.node] == ["Softmax"]


@pytest.fixture(scope="module")
def tiny_gemma(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tiny_gemma import export_tiny_gemma

    path = tmp_path_factory.mktemp("tiny-gemma") / "model.onnx"
    return path, export_tiny_gemma(path)


def _batch() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    # 12 tokens against a sliding window of 4: the local layer's band mask matters; rows 1 and 2 padded.
    from tiny_gemma import VOCAB

    rng = np.random.default_rng(0)
    ids = rng.integers(3, VOCAB, (3, 12)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 3:] = 0
    ids[mask == 0] = 0
    return ids, mask


@pytest.mark.slow
def test_exported_gemma_attention_is_fused_with_the_same_outputs(tiny_gemma: tuple[Path, Any]) -> None:
    path, reference = tiny_gemma
    model = onnx.load(str(path))
    fuse_graph(model)
    unfused = copy.deepcopy(model)

    stats = fuse_attention(model, max_positions=16)

    assert stats["MultiHeadAttention"] == 2 and stats["RotaryEmbedding"] == 4
    assert stats["MatMulsMerged"] == 6  # q/k/v -> 1 and gate/up -> 1, in each of the 2 layers
    ops = Counter(node.op_type for node in model.graph.node)
    assert ops["MultiHeadAttention"] == 2 and ops["Softmax"] == 0 and ops["Neg"] == 0 and ops["Cos"] == 0
    ids, mask = _batch()
    feeds = {"input_ids": ids, "attention_mask": mask}
    (fused_out,) = _run(model, feeds)
    (unfused_out,) = _run(unfused, feeds)
    want = reference(ids, mask)
    np.testing.assert_allclose(fused_out, unfused_out, atol=2e-6)
    np.testing.assert_allclose(fused_out, want, atol=2e-6)
    # Past the rotary cache the graph refuses instead of reading out of bounds.
    long_ids = np.full((1, 20), 5, dtype=np.int64)
    with pytest.raises(Exception, match="cos_cache"):
        _run(model, {"input_ids": long_ids, "attention_mask": np.ones_like(long_ids)})


@pytest.mark.slow
def test_default_recipe_on_the_fused_gemma_graph(tiny_gemma: tuple[Path, Any], tmp_path: Path) -> None:
    from edgeroute.framework.edge.export.quantize import DEFAULT_RECIPE, quantize_onnx

    path, reference = tiny_gemma
    out = tmp_path / "q.onnx"
    fusion = quantize_onnx(path, out, DEFAULT_RECIPE, max_positions=16)

    assert fusion["MultiHeadAttention"] == 2
    ops = Counter(node.op_type for node in onnx.load(str(out), load_external_data=False).graph.node)
    assert ops["MatMulIntegerToFloat"] == 2 * 4  # qkv, o, gate/up, down per layer
    ids, mask = _batch()
    (got,) = _run(onnx.load(str(out)), {"input_ids": ids, "attention_mask": mask})
    cos = np.sum(got * reference(ids, mask), axis=1)
    assert cos.min() > 0.99, cos
