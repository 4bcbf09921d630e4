"""framework/optimize_graph.py: the RMSNorm / tanh-GELU / softmax-guard fusions on a small synthetic graph
laid out like the dynamo exporter's, checked against onnxruntime on the unfused graph."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgeroute.framework.edge.export.optimize_graph import fuse_graph  # noqa: E402

D = 16


def _const(name: str, value: Any) -> Any:
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


def _dynamo_like_model() -> Any:
    rng = np.random.default_rng(0)
    inits = [
        _const("two", 2.0),
        _const("three", 3.0),
        _const("eps", 1e-6),
        _const("c", math.sqrt(2 / math.pi)),
        _const("k", 0.044715),
        _const("one", 1.0),
        _const("half", 0.5),
        _const("zero", 0.0),
        _const("w_norm", 1.0 + 0.1 * rng.standard_normal(D)),
        _const("w_mm", 0.3 * rng.standard_normal((D, D))),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "axes"),
    ]
    n = helper.make_node
    nodes = [
        # RMSNorm(x) * w
        n("Pow", ["x", "two"], ["p"]),
        n("ReduceMean", ["p", "axes"], ["m"], keepdims=1),
        n("Add", ["m", "eps"], ["a"]),
        n("Sqrt", ["a"], ["s"]),
        n("Reciprocal", ["s"], ["r"]),
        n("Mul", ["x", "r"], ["xr"]),
        n("Mul", ["xr", "w_norm"], ["normed"]),
        n("MatMul", ["normed", "w_mm"], ["h"]),
        # tanh-GELU(h)
        n("Pow", ["h", "three"], ["h3"]),
        n("Mul", ["k", "h3"], ["kh3"]),
        n("Add", ["h", "kh3"], ["inner"]),
        n("Mul", ["c", "inner"], ["scaled"]),
        n("Tanh", ["scaled"], ["t"]),
        n("Add", ["t", "one"], ["t1"]),
        n("Mul", ["half", "t1"], ["ht"]),
        n("Mul", ["h", "ht"], ["g"]),
        # guarded softmax
        n("Softmax", ["g"], ["sm"], axis=-1),
        n("IsNaN", ["sm"], ["nan"]),
        n("Where", ["nan", "zero", "sm"], ["guarded"]),
        n("Identity", ["guarded"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "dynamo_like",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", D])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "s", D])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _run(model: Any, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {"x": x})[0])


def test_fuses_rmsnorm_gelu_and_softmax_guard_without_changing_outputs() -> None:
    model = _dynamo_like_model()
    x = np.random.default_rng(1).standard_normal((2, 5, D)).astype(np.float32)
    expected = _run(model, x)

    stats = fuse_graph(model)

    ops = Counter(node.op_type for node in model.graph.node)
    assert stats.fused["SimplifiedLayerNormalization"] == 1
    assert stats.fused["FastGelu"] == 1
    assert stats.fused["SoftmaxNaNGuardRemoved"] == 1
    assert ops == {"SimplifiedLayerNormalization": 1, "MatMul": 1, "FastGelu": 1, "Softmax": 1, "Identity": 1}
    assert stats.nodes_before == 20 and stats.nodes_after == 5
    # The fused patterns' constants are gone; only the norm weight and the MatMul weight remain.
    assert {i.name for i in model.graph.initializer} == {"w_norm", "w_mm"}
    # (onnx.checker does not know SimplifiedLayerNormalization, an ORT kernel in the ONNX domain.)
    np.testing.assert_allclose(_run(model, x), expected, rtol=1e-4, atol=1e-5)


def test_leaves_non_matching_patterns_alone() -> None:
    model = _dynamo_like_model()
    # An eps that is not a constant, and a second reader of the normalised intermediate: no RMSNorm fusion.
    for node in model.graph.node:
        if node.op_type == "Mul" and list(node.input) == ["x", "r"]:
            extra = helper.make_node("Identity", ["xr"], ["xr_copy"])
    model.graph.node.append(extra)
    model.graph.output.append(helper.make_tensor_value_info("xr_copy", TensorProto.FLOAT, None))
    stats = fuse_graph(model)
    assert stats.fused["SimplifiedLayerNormalization"] == 0
    assert stats.fused["FastGelu"] == 1
    x = np.random.default_rng(2).standard_normal((1, 3, D)).astype(np.float32)
    _run(model, x)  # still a valid graph
