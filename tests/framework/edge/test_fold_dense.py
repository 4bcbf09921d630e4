"""framework/edge/export/fold_dense.py: two bias-free linear layers in a row become one Gemm, checked
against onnxruntime on the unfolded graph, and only the exact pattern is rewritten."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgeroute.framework.edge.export.fold_dense import fold_dense_layers, upgrade_model_dir  # noqa: E402
from edgeroute.framework.edge.model_dir import Manifest, ModelDirectory, write_manifest  # noqa: E402


def _dense_chain(*, bias: bool = False, extra_reader: bool = False) -> Any:
    """x (b, 32) -> Gemm(W1 (64, 32), transB) -> Gemm(W2 (32, 64), transB) -> L2-normalised y, as exported."""
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((64, 32)).astype(np.float32)
    w2 = rng.standard_normal((32, 64)).astype(np.float32)
    inits = [
        numpy_helper.from_array(w1, "st.2.linear.weight"),
        numpy_helper.from_array(w2, "st.3.linear.weight"),
    ]
    first_inputs = ["x", "st.2.linear.weight"]
    if bias:
        inits.append(numpy_helper.from_array(np.ones(64, np.float32), "b1"))
        first_inputs.append("b1")
    nodes = [
        helper.make_node("Gemm", first_inputs, ["mid"], name="node_linear_168", transB=1),
        helper.make_node("Gemm", ["mid", "st.3.linear.weight"], ["y"], name="node_linear_169", transB=1),
        helper.make_node("LpNormalization", ["y"], ["out"], axis=-1, p=2),
    ]
    outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["b", 32])]
    if extra_reader:
        nodes.append(helper.make_node("Identity", ["mid"], ["mid_copy"]))
        outputs.append(helper.make_tensor_value_info("mid_copy", TensorProto.FLOAT, ["b", 64]))
    graph = helper.make_graph(
        nodes, "dense", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 32])], outputs, inits
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _run(model: Any, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(["out"], {"x": x})[0])


def test_two_linear_layers_fold_into_one_gemm_with_the_same_outputs() -> None:
    model = _dense_chain()
    x = np.random.default_rng(1).standard_normal((5, 32)).astype(np.float32)
    before = _run(model, x)
    info = fold_dense_layers(model)
    assert [n.op_type for n in model.graph.node] == ["Gemm", "LpNormalization"]
    assert {i.name for i in model.graph.initializer} == {"st.3.linear.weight_folded"}
    assert info["folded"][0]["shape"] == [32, 32]
    assert (
        info["folded"][0]["weights_before"] == 2 * 64 * 32 and info["folded"][0]["weights_after"] == 32 * 32
    )
    np.testing.assert_allclose(_run(model, x), before, atol=2e-6)


@pytest.mark.parametrize("variant", [{"bias": True}, {"extra_reader": True}])
def test_a_chain_with_a_bias_or_a_second_reader_is_left_alone(variant: dict[str, bool]) -> None:
    model = _dense_chain(**variant)
    assert fold_dense_layers(model) == {}
    assert [n.op_type for n in model.graph.node][:2] == ["Gemm", "Gemm"]


def _model_dir(path: Path) -> Path:
    path.mkdir()
    onnx.save_model(
        _dense_chain(),
        str(path / "model.onnx"),
        save_as_external_data=True,
        location="model.onnx.data",
        size_threshold=0,
    )
    (path / "tokenizer.json").write_text("{}")
    write_manifest(path, Manifest(model_id="test/dense", revision="r1", export={"graph_version": 3}))
    return path


def test_a_model_directory_is_upgraded_into_a_new_one_and_in_place(tmp_path: Path) -> None:
    src = _model_dir(tmp_path / "src")
    x = np.random.default_rng(2).standard_normal((3, 32)).astype(np.float32)
    before = _run(onnx.load(str(src / "model.onnx")), x)
    out = upgrade_model_dir(src, tmp_path / "out", graph_version=4)
    assert out.export["graph_version"] == 4 and out.revision == "r1"
    assert out.export["graph_fusion"]["dense"]["folded"]
    ModelDirectory.open(tmp_path / "out")  # every sha256 matches the rewritten files
    after = ort.InferenceSession(str(tmp_path / "out" / "model.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(after.run(["out"], {"x": x})[0], before, atol=2e-6)
    # The source is untouched; then upgraded in place, with no temporary files left behind.
    assert json.loads((src / "manifest.json").read_text())["export"]["graph_version"] == 3
    upgrade_model_dir(src, graph_version=4)
    ModelDirectory.open(src)
    assert sorted(p.name for p in src.iterdir()) == [
        "manifest.json",
        "model.onnx",
        "model.onnx.data",
        "tokenizer.json",
    ]
    with pytest.raises(Exception, match="not empty"):
        upgrade_model_dir(src, tmp_path / "out")
