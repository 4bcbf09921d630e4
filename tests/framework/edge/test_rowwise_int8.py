"""Row-wise dynamic int8 rewrites (framework/rowwise_int8.py) on small generated graphs, run by onnxruntime."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeroute.framework.edge.embedder import EdgeEmbedder
from edgeroute.framework.edge.export.quantize import DEFAULT_RECIPE, ROWWISE_RECIPES, quantize_onnx
from edgeroute.framework.edge.export.rowwise_int8 import (
    ACTIVATION_LEVELS,
    quantize_embedding_8bit,
    quantize_matmuls_rowwise,
    quantize_table_8bit,
    quantize_weight_per_column,
)
from edgeroute.framework.testing.tiny_model import build_tiny_model

RNG = np.random.default_rng(7)


def _run(model: Any, feeds: dict[str, np.ndarray[Any, Any]]) -> list[np.ndarray[Any, Any]]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return [np.asarray(out) for out in session.run(None, feeds)]


def _two_projections() -> tuple[Any, np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """x -> x @ Wa and x @ Wb: two MatMuls reading the same activation (like q/k/v)."""
    wa = RNG.normal(0, 0.05, (64, 48)).astype(np.float32)
    wb = RNG.normal(0, 0.05, (64, 32)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "wa"], ["ya"]), helper.make_node("MatMul", ["x", "wb"], ["yb"])],
        "two_projections",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", 64])],
        [
            helper.make_tensor_value_info("ya", TensorProto.FLOAT, ["b", "s", 48]),
            helper.make_tensor_value_info("yb", TensorProto.FLOAT, ["b", "s", 32]),
        ],
        [numpy_helper.from_array(wa, "wa"), numpy_helper.from_array(wb, "wb")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), wa, wb


def _row_cosines(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    a2, b2 = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    return np.asarray((a2 * b2).sum(1) / np.linalg.norm(a2, axis=1) / np.linalg.norm(b2, axis=1))


def test_matmuls_become_integer_gemms_sharing_one_activation_quantization() -> None:
    model, _, _ = _two_projections()
    assert quantize_matmuls_rowwise(model) == 2
    onnx.checker.check_model(model)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("MatMulIntegerToFloat") == 2 and "MatMul" not in ops
    assert ops.count("QuantizeLinear") == 1  # x is quantized once for both projections
    assert {i.name for i in model.graph.initializer}.isdisjoint({"wa", "wb"})  # fp32 weights dropped


def _exact(x: np.ndarray[Any, Any], w: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """What the rewrite computes, in exact integer arithmetic (numpy)."""
    w_q, w_scale = quantize_weight_per_column(w)
    x_scale = np.abs(x).max(axis=-1, keepdims=True) / ACTIVATION_LEVELS
    x_q = np.rint(x / x_scale).astype(np.int64)
    return np.asarray((x_q @ w_q.astype(np.int64)) * w_scale * x_scale, dtype=np.float32)


def test_one_scale_per_row_survives_an_outlier_token() -> None:
    """One outlier row must not ruin the others: the reason for per-row rather than per-tensor scales."""
    model, wa, wb = _two_projections()
    quantize_matmuls_rowwise(model)
    x = RNG.normal(0, 1, (2, 6, 64)).astype(np.float32)
    x[0, 0] *= 1000.0  # a Gemma-style massive activation on one token
    ya, yb = _run(model, {"x": x})
    assert _row_cosines(ya, x @ wa).min() > 0.999
    assert _row_cosines(yb, x @ wb).min() > 0.999


def test_integer_products_are_exact_on_this_cpu() -> None:
    """No int16 saturation in the u8 x s8 kernel (AVX2 without VNNI): the integer product is exact."""
    model, wa, _ = _two_projections()
    quantize_matmuls_rowwise(model)
    x = RNG.normal(0, 3, (4, 16, 64)).astype(np.float32)
    ya, _ = _run(model, {"x": x})
    np.testing.assert_allclose(ya, _exact(x, wa), rtol=1e-4, atol=1e-4)


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return set()
    line = next((x for x in text.splitlines() if x.startswith(("flags", "Features"))), "")
    return set(line.split(":", 1)[-1].split())


@pytest.mark.skipif(
    not _cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"},
    reason="8-bit weights are exact only where u8 x s8 products accumulate in int32 (VNNI, AMX, ARM dot)",
)
def test_full_8_bit_weights_are_exact_on_a_vnni_cpu() -> None:
    """a8w8-e8's weights use all of -127..127: exact where the kernel has no int16 pair sums."""
    model, wa, _ = _two_projections()
    quantize_matmuls_rowwise(model, weight_levels=127)
    x = RNG.normal(0, 3, (4, 16, 64)).astype(np.float32)
    x[0, 0] *= 40.0
    ya, _ = _run(model, {"x": x})
    w_q, w_scale = quantize_weight_per_column(wa, 127)
    x_scale = np.abs(x).max(axis=-1, keepdims=True) / ACTIVATION_LEVELS
    exact = (np.rint(x / x_scale).astype(np.int64) @ w_q.astype(np.int64)) * w_scale * x_scale
    np.testing.assert_allclose(ya, exact.astype(np.float32), rtol=1e-4, atol=1e-4)


def test_embedding_table_in_8_bits() -> None:
    table = RNG.normal(0, 0.1, (2048, 64)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["rows"], axis=0)],
        "lookup",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["b", "s"])],
        [helper.make_tensor_value_info("rows", TensorProto.FLOAT, ["b", "s", 64])],
        [numpy_helper.from_array(table, "table")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    assert quantize_embedding_8bit(model, block_size=32) == 1
    (node,) = model.graph.node
    assert node.op_type == "GatherBlockQuantized"
    assert {a.name: a.i for a in node.attribute}["bits"] == 8
    ids = np.array([[0, 5, 2047], [17, 17, 1]], np.int64)
    (rows,) = _run(model, {"ids": ids})
    expected = table[ids]
    step = np.abs(table).max() / 127
    assert np.abs(rows - expected).max() <= step  # within one quantization step of the block's scale
    data, scales = quantize_table_8bit(table, 32, rows_per_chunk=100)  # chunking gives the same result
    assert data.dtype == np.uint8 and scales.shape == (2048, 2)


def test_small_tables_and_other_ops_are_left_alone() -> None:
    table = RNG.normal(0, 0.1, (10, 64)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["rows"], axis=0)],
        "tiny_lookup",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["n"])],
        [helper.make_tensor_value_info("rows", TensorProto.FLOAT, ["n", 64])],
        [numpy_helper.from_array(table, "table")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    assert quantize_embedding_8bit(model) == 0
    assert quantize_matmuls_rowwise(model) == 0
    assert [n.op_type for n in model.graph.node] == ["Gather"]
    assert [i.name for i in model.graph.initializer] == ["table"]


@pytest.mark.parametrize("recipe", sorted(ROWWISE_RECIPES))
def test_rowwise_recipes_on_the_tiny_model_keep_the_vectors(tmp_path: Path, recipe: str) -> None:
    assert DEFAULT_RECIPE == "a8w7-e8" and DEFAULT_RECIPE in ROWWISE_RECIPES
    tiny = build_tiny_model(tmp_path / "tiny")
    quantized = tmp_path / "quantized"
    shutil.copytree(tiny, quantized)
    quantize_onnx(tiny / "model.onnx", quantized / "model.onnx", recipe, fuse=False)
    ops = {n.op_type for n in onnx.load(str(quantized / "model.onnx"), load_external_data=False).graph.node}
    assert "MatMulIntegerToFloat" in ops and "MatMul" not in ops
    texts = ["a cat sat on the mat", "dogs", "the quick brown fox jumps over the lazy dog again"]
    reference = EdgeEmbedder.load(tiny).embed_queries(texts)
    got = EdgeEmbedder.load(quantized, verify=False).embed_queries(texts)  # graph changed: sha256 differs
    assert _row_cosines(got, reference).min() > 0.99
