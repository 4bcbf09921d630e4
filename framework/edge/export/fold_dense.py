"""Fold EmbeddingGemma's two dense layers after pooling into one 768 x 768 projection.

sentence-transformers' EmbeddingGemma ends in ``Dense(768 -> 3072)`` then ``Dense(3072 -> 768)``, both
without bias and with the identity activation (``2_Dense/config.json``, ``3_Dense/config.json``): two
linear maps in a row, so ``y = (x W1^T) W2^T = x (W2 W1)^T``. One 768 x 768 float32 matrix replaces
9.4 M float32 weights (37.7 MB in the file, about 19 MB resident after ONNX Runtime pre-packs them;
they are the largest tensors that stay fp32 in the quantized recipes) with 0.59 M (2.4 MB), and one
small GEMM replaces two. The product is taken in float64 and rounded once, so the result differs from
the two-step float32 product by float rounding only (measured: cosine 1 - 1e-7 on the parity sample).

Only the exact pattern is rewritten: ``Gemm(x, W1)`` whose output only ``Gemm(., W2)`` reads, both with
constant weights, ``alpha = 1``, no ``C`` (bias), ``transA = 0``; anything else is left as it is.
``onnx`` (the ``export`` extra) is needed to edit a graph, never to run one.

An exported directory is upgraded without a re-export (writes ``OUT``, a new directory, unless ``OUT``
is ``SRC``, which is then replaced file by file with atomic renames)::

    python -m edgeroute.framework.edge.export.fold_dense SRC_DIR [OUT_DIR]
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigurationError
from ..model_dir import Manifest, read_manifest, write_manifest


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise ConfigurationError(
            "folding the dense layers needs the onnx package: pip install 'edgeroute[export]'"
        ) from exc
    return onnx


def _attrs(node: Any) -> dict[str, Any]:
    onnx = _onnx()
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _plain_gemm(node: Any, weights: dict[str, Any]) -> bool:
    """A Gemm ``x @ op(W)`` with a constant W and nothing else: no bias, alpha 1, x not transposed."""
    if node.op_type != "Gemm" or len([i for i in node.input if i]) != 2 or node.input[1] not in weights:
        return False
    a = _attrs(node)
    return float(a.get("alpha", 1.0)) == 1.0 and int(a.get("transA", 0)) == 0


def _weight(node: Any, weights: dict[str, Any]) -> np.ndarray[Any, Any]:
    """The Gemm's B as ``(in, out)`` float64 (transposed back when ``transB``)."""
    onnx = _onnx()
    w: np.ndarray[Any, Any] = np.asarray(onnx.numpy_helper.to_array(weights[node.input[1]]), dtype=np.float64)
    return w.T if int(_attrs(node).get("transB", 0)) else w


def fold_dense_layers(model: Any) -> dict[str, Any]:
    """Rewrite every ``Gemm -> Gemm`` chain of constant linear maps in ``model`` (loaded *with* its
    weights) into one Gemm, in place. Returns what was folded, for the manifest (empty dict: nothing)."""
    onnx = _onnx()
    graph = model.graph
    weights = {i.name: i for i in graph.initializer}
    outputs = {o.name for o in graph.output}
    readers: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    folded: list[dict[str, Any]] = []
    for first in list(graph.node):
        if not _plain_gemm(first, weights) or first.output[0] in outputs:
            continue
        after = readers.get(first.output[0], [])
        if len(after) != 1 or not _plain_gemm(after[0], weights) or after[0].input[0] != first.output[0]:
            continue
        second = after[0]
        w1, w2 = _weight(first, weights), _weight(second, weights)
        if w1.shape[1] != w2.shape[0]:
            continue
        # (in, mid) @ (mid, out): stored as (out, in) with transB = 1, the layout the export uses.
        product = (w1 @ w2).T.astype(np.float32)
        name = f"{second.input[1]}_folded"
        graph.initializer.append(onnx.numpy_helper.from_array(product, name))
        fused = onnx.helper.make_node(
            "Gemm", [first.input[0], name], [second.output[0]], name=f"{second.name}_folded", transB=1
        )
        nodes = list(graph.node)
        at = nodes.index(first)
        graph.node.remove(first)
        graph.node.remove(second)
        graph.node.insert(at, fused)
        folded.append(
            {
                "layers": [first.input[1], second.input[1]],
                "shape": list(product.shape),
                "weights_before": int(w1.size + w2.size),
                "weights_after": int(product.size),
            }
        )
        for n in (first, second):
            for i in n.input[1:]:
                if i in weights and not any(i in m.input for m in graph.node):
                    graph.initializer.remove(weights.pop(i))
    return {"folded": folded} if folded else {}


def fold_model_file(src: Path, dst: Path) -> dict[str, Any]:
    """Read ``src`` (graph + external data), fold, write ``dst`` and ``dst.data`` (new files, renamed
    into place at the end so a process that has the old weights memory-mapped keeps reading them)."""
    onnx = _onnx()
    model = onnx.load(str(src))
    info = fold_dense_layers(model)
    tmp = dst.with_name(dst.name + ".tmp")
    data_name = dst.name + ".data"
    # onnx appends to an existing data file: start from none.
    for stale in (tmp, tmp.parent / (data_name + ".tmp")):
        stale.unlink(missing_ok=True)
    onnx.save_model(
        model, str(tmp), save_as_external_data=True, location=data_name + ".tmp", size_threshold=1024
    )
    # The graph names its data file; rewrite that to the final name before the renames.
    saved = onnx.load(str(tmp), load_external_data=False)
    for init in saved.graph.initializer:
        for entry in init.external_data:
            if entry.key == "location":
                entry.value = data_name
    onnx.save_model(saved, str(tmp))
    written = tmp.parent / (data_name + ".tmp")
    if written.is_file():
        written.replace(dst.parent / data_name)
    else:  # every weight left is small enough to live in the graph itself
        (dst.parent / data_name).unlink(missing_ok=True)
    tmp.replace(dst)
    return info


def upgrade_model_dir(
    src: str | Path, out: str | Path | None = None, graph_version: int | None = None
) -> Manifest:
    """Fold the dense layers of the exported directory ``src`` into ``out`` (default: ``src`` itself).

    The embedding space (revision, recipe) is unchanged: the vectors differ by float rounding only.
    """
    from .exporter import GRAPH_VERSION

    source = Path(src).expanduser()
    target = Path(out).expanduser() if out is not None else source
    manifest = read_manifest(source)
    if target == source:
        info = fold_model_file(source / manifest.model_file, target / manifest.model_file)
    else:
        if target.exists() and any(target.iterdir()):
            raise ConfigurationError(f"{target} exists and is not empty; choose a new OUT directory.")
        target.mkdir(parents=True, exist_ok=True)
        try:
            for name in manifest.files:
                if name not in (manifest.model_file, manifest.model_file + ".data"):
                    shutil.copy2(source / name, target / name)
            info = fold_model_file(source / manifest.model_file, target / manifest.model_file)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
    fusion = {**manifest.export.get("graph_fusion", {}), "dense": info}
    export = {
        **manifest.export,
        "graph_fusion": fusion,
        "graph_version": graph_version if graph_version is not None else GRAPH_VERSION,
    }
    return write_manifest(target, Manifest(**{**manifest.__dict__, "export": export}))


def main(argv: list[str] | None = None) -> None:
    """``python -m edgeroute.framework.edge.export.fold_dense SRC_DIR [OUT_DIR]``."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2):
        raise SystemExit("usage: python -m edgeroute.framework.edge.export.fold_dense SRC_DIR [OUT_DIR]")
    # Version 4 is what this edit makes; version 5 has an upgrade of its own (row_scales).
    manifest = upgrade_model_dir(args[0], args[1] if len(args) == 2 else None, graph_version=4)
    dense = manifest.export.get("graph_fusion", {}).get("dense", {})
    print(
        f"{args[-1]}: {len(dense.get('folded', []))} dense chain(s) folded; "
        f"graph_version {manifest.export.get('graph_version')}"
    )


if __name__ == "__main__":
    main()


__all__ = ["fold_dense_layers", "fold_model_file", "upgrade_model_dir"]
