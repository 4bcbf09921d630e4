"""Fold a8w7-e8's per-row activation scales into the quantize and GEMM nodes (graph version 5).

:mod:`.rowwise_int8` quantizes each projection's input per row with separate nodes::

    m   = Max(ReduceMax(Abs(x)), eps)                 # [batch, seq, 1]
    x_q = QuantizeLinear(Div(x, m), 1/127, 128)
    y   = Mul(MatMulIntegerToFloat(x_q, W_q, 1/127, s_w, 128), m)

Two of those are full-size passes over the activation (``Div``) and the output (``Mul``), 192 of the
1,143 nodes of the exported EmbeddingGemma graph. ONNX Runtime can take the row scale itself: the
opset-21 ``QuantizeLinear`` quantizes blockwise with a scale of shape ``[batch, seq, 1]`` (one block
= one row), and ``MatMulIntegerToFloat`` accepts an ``a_scale`` of that shape and applies it per row
inside the kernel. So::

    s   = Mul(Max(ReduceMax(Abs(x)), eps), 1/127)     # [batch, seq, 1], small
    x_q = QuantizeLinear(x, s, zp_row, axis=-1, block_size=K)
    y   = MatMulIntegerToFloat(x_q, W_q, s, s_w, 128)

``zp_row`` is uint8 128 in the scale's shape (blockwise quantization wants the zero point shaped
like the scale). In the fused EmbeddingGemma graph every projection reads token states ``[batch, seq,
K]``, so one ``zp_row`` is built from ``input_ids``' shape for all of them (``rows_from``); otherwise
each activation gets its own from its scale's shape (two small nodes more each). A zero-point-free
int8 activation (s8 x s8) would need none, but MLAS has no fast s8 x s8 kernel here: 96 GEMMs at 21
rows took 196 ms of CPU against 14 ms for u8 x s8. The integer codes and weights are the same; only where the float scale is applied moves, so outputs differ
by float rounding in the scales (a flipped quantization step here and there, see docs/edge-model.md).
The weights (external data) are untouched: an exported directory is upgraded by rewriting its graph
file only::

    python -m edgeroute.framework.edge.export.row_scales MODEL_DIR

Only graphs written by :func:`.rowwise_int8.quantize_matmuls_rowwise` (node names ``rowq_act<i>_*``,
``rowq<j>_matmul``, ``rowq<j>_rescale``) are rewritten; anything else is left as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import ConfigurationError
from ..model_dir import Manifest, read_manifest, write_manifest

OPSET = 21
"""Blockwise ``QuantizeLinear`` needs opset 21; every other op of the graph means the same there."""
_ZP_ROW = "rowq_zero_point_row"
_ZP_SCALAR = "rowq_zero_point_u8"


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise ConfigurationError(
            "folding the row scales needs the onnx package: pip install 'edgeroute[export]'"
        ) from exc
    return onnx


def _by_name(graph: Any) -> dict[str, Any]:
    return {n.name: n for n in graph.node}


def fold_row_scales(model: Any, *, rows_from: str | None = "input_ids") -> int:
    """Rewrite every row-quantized activation of ``model`` (in place) as in the module docstring.

    ``rows_from``: a graph input whose first two dims are every quantized activation's leading dims
    (``input_ids`` of a fused EmbeddingGemma graph: one shared zero-point tensor); ``None``: a zero
    point per activation. Returns how many activations were rewritten (0: not a row-wise int8 graph,
    already folded, or an opset below 18, whose reductions take their axes as attributes). The weights
    need not be loaded (``load_external_data=False``): only node wiring changes.
    """
    onnx = _onnx()
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    graph = model.graph
    nodes = _by_name(graph)
    inits = {i.name: i for i in graph.initializer}
    readers: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    quants = [n for n in graph.node if n.op_type == "QuantizeLinear" and n.name.startswith("rowq_act")]
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if not quants or opset < 18 or (rows_from is not None and rows_from not in {i.name for i in graph.input}):
        return 0
    drop: set[str] = set()
    rename: dict[str, str] = {}  # rescale Mul output -> GEMM output
    extra_after: dict[str, list[Any]] = {}  # scale node name -> the nodes that follow it
    for q in quants:
        act = q.name[: -len("_q")]
        div, scale = nodes.get(f"{act}_scaled"), nodes.get(f"{act}_scale")
        if div is None or scale is None or div.op_type != "Div" or div.output[0] != q.input[0]:
            continue
        gemms = [r for r in readers.get(q.output[0], []) if r.op_type == "MatMulIntegerToFloat"]
        if not gemms or len(gemms) != len(readers.get(q.output[0], [])):
            continue
        rescales = []
        for g in gemms:
            after = readers.get(g.output[0], [])
            if (
                len(after) != 1
                or after[0].op_type != "Mul"
                or list(after[0].input) != [g.output[0], scale.output[0]]
            ):
                break
            rescales.append(after[0])
        else:
            weight = inits.get(gemms[0].input[1])
            if weight is None or len(weight.dims) != 2:
                continue
            x, inv_levels, zero_point = div.input[0], q.input[1], q.input[2]
            row_scale = f"{act}_row_scale"
            zp_row = _ZP_ROW
            extra_after[scale.name] = [
                helper.make_node("Mul", [scale.output[0], inv_levels], [row_scale], name=row_scale)
            ]
            if rows_from is None:
                zp_row = f"{act}_zp_row"
                extra_after[scale.name] += [
                    helper.make_node("Shape", [row_scale], [f"{act}_scale_shape"], name=f"{act}_scale_shape"),
                    helper.make_node("Expand", [_ZP_SCALAR, f"{act}_scale_shape"], [zp_row], name=zp_row),
                ]
            q.CopyFrom(
                helper.make_node(
                    "QuantizeLinear",
                    [x, row_scale, zp_row],
                    list(q.output),
                    name=q.name,
                    axis=-1,
                    block_size=int(weight.dims[0]),
                )
            )
            for g, mul in zip(gemms, rescales, strict=True):
                g.input[2] = row_scale
                g.input[4] = zero_point
                rename[g.output[0]] = mul.output[0]
                drop.add(mul.name)
            drop.add(div.name)
    if not extra_after:
        return 0
    for g in graph.node:
        if g.op_type == "MatMulIntegerToFloat" and g.output[0] in rename:
            g.output[0] = rename[g.output[0]]
    import numpy as np

    graph.initializer.append(numpy_helper.from_array(np.array(128, np.uint8), _ZP_SCALAR))
    rebuilt: list[Any] = []
    if rows_from is not None:
        graph.initializer.append(numpy_helper.from_array(np.array([1], np.int64), "rowq_one"))
        rebuilt += [
            helper.make_node("Shape", [rows_from], ["rowq_rows"], name="rowq_rows", end=2),
            helper.make_node(
                "Concat", ["rowq_rows", "rowq_one"], ["rowq_row_shape"], name="rowq_row_shape", axis=0
            ),
            helper.make_node("Expand", [_ZP_SCALAR, "rowq_row_shape"], [_ZP_ROW], name=_ZP_ROW),
        ]
    for n in graph.node:
        if n.name in drop:
            continue
        rebuilt.append(n)
        rebuilt.extend(extra_after.get(n.name, []))
    del graph.node[:]
    graph.node.extend(rebuilt)
    for op in model.opset_import:
        if op.domain in ("", "ai.onnx"):
            op.version = max(op.version, OPSET)
    model.ir_version = max(model.ir_version, 10)  # opset 21 needs IR version 10
    return len(extra_after)


def fold_model_file(model_file: Path, *, rows_from: str | None = "input_ids") -> int:
    """Rewrite the graph file ``model_file`` (weights in external data, untouched); atomic rename."""
    onnx = _onnx()
    model = onnx.load(str(model_file), load_external_data=False)
    count = fold_row_scales(model, rows_from=rows_from)
    if count:
        tmp = model_file.with_name(model_file.name + ".tmp")
        onnx.save(model, str(tmp))
        tmp.replace(model_file)
    return count


def upgrade_model_dir(directory: str | Path, graph_version: int | None = None) -> Manifest:
    """Fold the row scales of an exported ``a8w7-e8`` directory in place and re-hash its manifest."""
    from .exporter import GRAPH_VERSION

    path = Path(directory).expanduser()
    manifest = read_manifest(path)
    count = fold_model_file(path / manifest.model_file)
    fusion = {**manifest.export.get("graph_fusion", {}), "row_scales_folded": count}
    export = {
        **manifest.export,
        "graph_fusion": fusion,
        "graph_version": graph_version if graph_version is not None else GRAPH_VERSION,
    }
    return write_manifest(path, Manifest(**{**manifest.__dict__, "export": export}))


def main(argv: list[str] | None = None) -> None:
    """``python -m edgeroute.framework.edge.export.row_scales MODEL_DIR``: upgrade in place."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m edgeroute.framework.edge.export.row_scales MODEL_DIR")
    manifest = upgrade_model_dir(args[0])
    folded = manifest.export.get("graph_fusion", {}).get("row_scales_folded")
    print(f"{args[0]}: {folded} row scales folded; graph_version {manifest.export.get('graph_version')}")


if __name__ == "__main__":
    main()


__all__ = ["OPSET", "fold_model_file", "fold_row_scales", "upgrade_model_dir"]
