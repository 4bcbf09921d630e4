"""framework/edge/export/row_scales.py: the row-wise int8 graph with its per-row scales folded into a
blockwise QuantizeLinear and MatMulIntegerToFloat's per-row a_scale, checked by onnxruntime against
the unfolded graph on small generated graphs (no real model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgeroute.framework.digest import sha256_file  # noqa: E402
from edgeroute.framework.edge.export.row_scales import fold_row_scales, upgrade_model_dir  # noqa: E402
from edgeroute.framework.edge.export.rowwise_int8 import quantize_matmuls_rowwise  # noqa: E402
from edgeroute.framework.edge.model_dir import Manifest, write_manifest  # noqa: E402

RNG = np.random.default_rng(11)


def _token_graph() -> Any:
    """input_ids -> table rows x (b, s, 64) -> x @ Wa (64 -> 48) and x @ Wb, then (x @ Wa) @ Wc (48 -> 32):
    two projections reading one activation (like q/k/v) and one reading another, as in a layer."""
    table = RNG.normal(0, 1, (50, 64)).astype(np.float32)
    table[7] *= 300.0  # an outlier token, Gemma-style
    wa = RNG.normal(0, 0.05, (64, 48)).astype(np.float32)
    wb = RNG.normal(0, 0.05, (64, 16)).astype(np.float32)
    wc = RNG.normal(0, 0.05, (48, 32)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "input_ids"], ["x"], axis=0),
            helper.make_node("MatMul", ["x", "wa"], ["ya"]),
            helper.make_node("MatMul", ["x", "wb"], ["yb"]),
            helper.make_node("MatMul", ["ya", "wc"], ["yc"]),
        ],
        "token_projections",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"])],
        [
            helper.make_tensor_value_info("yb", TensorProto.FLOAT, ["b", "s", 16]),
            helper.make_tensor_value_info("yc", TensorProto.FLOAT, ["b", "s", 32]),
        ],
        [numpy_helper.from_array(a, n) for a, n in ((table, "table"), (wa, "wa"), (wb, "wb"), (wc, "wc"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model


def _run(model: Any, feeds: dict[str, np.ndarray[Any, Any]]) -> list[np.ndarray[Any, Any]]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return [np.asarray(out) for out in session.run(None, feeds)]


def _ids() -> dict[str, np.ndarray[Any, Any]]:
    return {"input_ids": np.array([[1, 7, 3, 9, 0], [4, 4, 2, 7, 49]], np.int64)}


def _copy(model: Any) -> Any:
    other = onnx.ModelProto()
    other.CopyFrom(model)
    return other


def test_folded_scales_give_the_same_outputs_with_fewer_full_size_nodes() -> None:
    model = _token_graph()
    assert quantize_matmuls_rowwise(model) == 3
    before = _run(model, _ids())
    folded = _copy(model)
    assert fold_row_scales(folded) == 2  # two activations: x (shared by Wa and Wb) and ya
    onnx.checker.check_model(folded)
    ops = [n.op_type for n in folded.graph.node]
    assert "Div" not in ops  # no x / scale pass
    assert ops.count("Mul") == 2  # the two small scale * 1/127, no rescale of a GEMM output
    assert ops.count("MatMulIntegerToFloat") == 3 and ops.count("Expand") == 1  # one shared zero point
    quant = [n for n in folded.graph.node if n.op_type == "QuantizeLinear"]
    assert sorted({a.name: a.i for a in n.attribute}["block_size"] for n in quant) == [48, 64]
    assert next(o.version for o in folded.opset_import if o.domain == "") == 21
    after = _run(folded, _ids())
    for a, b in zip(before, after, strict=True):
        # Same integer codes; only where the float scale is applied moved (rounding).
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5 * float(np.abs(a).max()))
    assert fold_row_scales(folded) == 0  # idempotent: nothing left to fold


def test_a_zero_point_per_activation_when_rows_are_not_token_shaped() -> None:
    """rows_from=None: each activation gets a zero point of its own scale's shape (2-D input here)."""
    w = RNG.normal(0, 0.05, (64, 24)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "pooled",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 24])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    quantize_matmuls_rowwise(model)
    x = RNG.normal(0, 2, (3, 64)).astype(np.float32)
    (before,) = _run(model, {"x": x})
    assert fold_row_scales(_copy(model)) == 0  # no input_ids: the shared zero point cannot be built
    assert fold_row_scales(model, rows_from=None) == 1
    (after,) = _run(model, {"x": x})
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-5 * float(np.abs(before).max()))


def test_graphs_without_row_quantization_or_below_opset_18_are_left_alone() -> None:
    plain = _token_graph()
    assert fold_row_scales(plain) == 0
    assert [n.op_type for n in plain.graph.node] == ["Gather", "MatMul", "MatMul", "MatMul"]
    old = _token_graph()
    old.opset_import[0].version = 17  # ReduceMax takes its axes as an attribute there
    quantize_matmuls_rowwise(old)
    assert fold_row_scales(old) == 0


def test_a_model_directory_is_upgraded_in_place_without_touching_the_weights(tmp_path: Path) -> None:
    model = _token_graph()
    quantize_matmuls_rowwise(model)
    before = _run(model, _ids())
    path = tmp_path / "model"
    path.mkdir()
    onnx.save_model(
        model,
        str(path / "model.onnx"),
        save_as_external_data=True,
        location="model.onnx.data",
        size_threshold=1024,
    )
    write_manifest(path, Manifest(model_id="test/rows", revision="r1", export={"graph_version": 4}))
    weights = sha256_file(path / "model.onnx.data")
    manifest = upgrade_model_dir(path, graph_version=5)
    assert manifest.export["graph_version"] == 5 and manifest.revision == "r1"
    assert manifest.export["graph_fusion"]["row_scales_folded"] == 2
    assert sha256_file(path / "model.onnx.data") == weights
    assert json.loads((path / "manifest.json").read_text())["files"]["model.onnx"] == sha256_file(
        path / "model.onnx"
    )
    session = ort.InferenceSession(str(path / "model.onnx"), providers=["CPUExecutionProvider"])
    after = [np.asarray(o) for o in session.run(None, _ids())]
    for a, b in zip(before, after, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5 * float(np.abs(a).max()))
