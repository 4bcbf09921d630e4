"""Expose EmbeddingGemma's token states as extra graph outputs, for the on-device PII head.

One forward pass then gives a text its sentence embedding *and* the per-token states the PII
token-classification head (:mod:`edgeroute.framework.pii.head`) reads, so detection adds no second
model run. Two outputs, float32 ``(batch, sequence, 768)``:

- ``token_states``: the encoder's final normalised hidden states (the tensor mean pooling reads);
- ``token_states_mid``: the normalised residual stream after layer :data:`MID_LAYER` (the input norm of
  the next layer), where surface features such as capitalisation and digit shape are still explicit.

The edit only adds graph outputs: no node, weight or the ``sentence_embedding`` output changes, so the
external weight file is untouched and embeddings stay bit-identical. ``onnx`` (the ``export`` extra) is
needed to edit a graph, never to run one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import ConfigurationError, ModelIntegrityError
from ..model_dir import Manifest, read_manifest, write_manifest

TOKEN_STATES = "token_states"
TOKEN_STATES_MID = "token_states_mid"
MID_LAYER = 12
"""Layer (1-based) whose output ``token_states_mid`` holds; EmbeddingGemma has 24."""


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise ConfigurationError(
            "adding token-state outputs needs the onnx package: pip install 'edgeroute[export]'"
        ) from exc
    return onnx


def _skip_norms(graph: Any) -> list[Any]:
    return [n for n in graph.node if n.op_type == "SkipSimplifiedLayerNormalization"]


def add_token_state_outputs(model: Any) -> dict[str, Any]:
    """Add :data:`TOKEN_STATES` and :data:`TOKEN_STATES_MID` to a fused EmbeddingGemma graph in place.

    In the fused graph every layer ends in two SkipSimplifiedLayerNormalization nodes (post-attention
    and post-MLP residual adds); the last one is the model's final norm. Returns what was added, for the
    manifest. Idempotent. Raises :class:`ModelIntegrityError` when the graph is not a fused export.
    """
    onnx = _onnx()
    graph = model.graph
    present = {o.name for o in graph.output}
    norms = _skip_norms(graph)
    layers = len(norms) // 2
    if len(norms) < 4 or len(norms) % 2:
        raise ModelIntegrityError(
            f"the graph has {len(norms)} SkipSimplifiedLayerNormalization nodes, not two per layer: it is not "
            "a fused edgeroute export; re-export it with `edgeroute model export`."
        )
    mid_layer = min(MID_LAYER, layers - 1)
    sources = {
        TOKEN_STATES: norms[-1].output[0],
        TOKEN_STATES_MID: norms[2 * mid_layer - 1].output[0],
    }
    for name, tensor in sources.items():
        if name in present:
            continue
        # An Identity gives the output a stable name without renaming a tensor other nodes consume.
        graph.node.append(onnx.helper.make_node("Identity", [tensor], [name], name=f"{name}_out"))
        graph.output.append(
            onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["batch", "sequence", 768])
        )
    return {"last": TOKEN_STATES, "mid": TOKEN_STATES_MID, "mid_layer": mid_layer, "layers": layers}


def add_token_states_to_file(model_file: Path) -> dict[str, Any]:
    """Edit ``model_file`` (a graph whose weights live in external data) to add the token-state outputs."""
    onnx = _onnx()
    model = onnx.load(str(model_file), load_external_data=False)
    info = add_token_state_outputs(model)
    tmp = model_file.with_suffix(".onnx.tmp")
    onnx.save(model, str(tmp))
    tmp.replace(model_file)
    return info


def upgrade_model_dir(directory: str | Path, graph_version: int) -> Manifest:
    """Add the token-state outputs to an exported model directory and re-hash its manifest.

    For directories exported before the outputs existed (graph version 2): seconds instead of a
    fresh export. The manifest records the outputs and the new ``graph_version``.
    """
    path = Path(directory).expanduser()
    manifest = read_manifest(path)
    info = add_token_states_to_file(path / manifest.model_file)
    export = {**manifest.export, "token_states": info, "graph_version": graph_version}
    return write_manifest(path, Manifest(**{**manifest.__dict__, "export": export}))


def main(argv: list[str] | None = None) -> None:
    """``python -m edgeroute.framework.edge.export.token_states DIR``: upgrade a version-2 DIR to version 3."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m edgeroute.framework.edge.export.token_states MODEL_DIR")
    # Version 3 is what this edit makes; later versions have upgrades of their own (fold_dense: 4).
    manifest = upgrade_model_dir(args[0], 3)
    print(f"{args[0]}: token-state outputs added; graph_version {manifest.export.get('graph_version')}")


if __name__ == "__main__":
    main()


__all__ = [
    "MID_LAYER",
    "TOKEN_STATES",
    "TOKEN_STATES_MID",
    "add_token_state_outputs",
    "add_token_states_to_file",
    "upgrade_model_dir",
]
