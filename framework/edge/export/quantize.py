"""Quantization recipes for the exported EmbeddingGemma graph (onnxruntime.quantization, no torch).

Measured on EmbeddingGemma-300m (see docs/edge-model.md): 4-bit round-to-nearest on every MatMul
loses too much on long documents (cosine 0.93), and onnxruntime's stock dynamic int8 (one activation
scale per tensor) loses even more (mean 0.919: Gemma's activations have outlier tokens). 8-bit
weight-only MatMul keeps cosine near 1 but, on an AVX2 CPU, runs no faster than fp32. The default,
``a8w7-e8``, quantizes activations per row instead (:mod:`.rowwise_int8`): integer GEMMs at
cosine >= 0.997. The 262k-token embedding table is 70% of the weights but only a few rows are read
per input; at 4 bits short queries lose about 0.01 cosine, at 8 bits nothing measurable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import ConfigurationError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipe:
    """A named quantization recipe and the parity floor the exporter holds it to."""

    name: str
    description: str
    min_cosine: float
    apply: Callable[[Any], Any] | None  # None: file-based quantize_dynamic (see quantize_onnx)


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise ConfigurationError(
            "quantizing needs the onnx package: pip install 'edgeroute[export]'"
        ) from exc
    return onnx


def _nbits(
    model: Any, *, bits: int, ops: tuple[str, ...], block_size: int, accuracy_level: int | None
) -> Any:
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    config = DefaultWeightOnlyQuantConfig(
        block_size=block_size,
        is_symmetric=True,
        accuracy_level=accuracy_level,
        op_types_to_quantize=ops,
        bits=bits,
    )
    quantizer = MatMulNBitsQuantizer(model, algo_config=config)
    quantizer.process()
    return quantizer.model.model


def _w8_e4(model: Any) -> Any:
    # accuracy_level=4 lets MatMulNBits run int8 x int8 kernels on CPU: faster, accuracy unchanged at 8 bits.
    model = _nbits(model, bits=8, ops=("MatMul",), block_size=32, accuracy_level=4)
    return _nbits(model, bits=4, ops=("Gather",), block_size=32, accuracy_level=None)


def _e4(model: Any) -> Any:
    # fp32 MatMuls (MLAS sgemm, prepacked) + 4-bit embedding table.
    return _nbits(model, bits=4, ops=("Gather",), block_size=32, accuracy_level=None)


def _w8(model: Any) -> Any:
    return _nbits(model, bits=8, ops=("MatMul",), block_size=32, accuracy_level=4)


def _w4_e4(model: Any) -> Any:
    model = _nbits(model, bits=4, ops=("MatMul",), block_size=32, accuracy_level=4)
    return _nbits(model, bits=4, ops=("Gather",), block_size=32, accuracy_level=None)


def _a8w7_e8(model: Any) -> Any:
    from .rowwise_int8 import quantize_embedding_8bit, quantize_matmuls_rowwise

    quantize_matmuls_rowwise(model)
    quantize_embedding_8bit(model, block_size=64)
    return model


def _a8w8_e8(model: Any) -> Any:
    from .rowwise_int8 import quantize_embedding_8bit, quantize_matmuls_rowwise

    quantize_matmuls_rowwise(model, weight_levels=127)
    quantize_embedding_8bit(model, block_size=64)
    return model


RECIPES: dict[str, Recipe] = {
    "a8w7-e8": Recipe(
        "a8w7-e8",
        "row-wise dynamic int8: MatMulIntegerToFloat with 7-bit per-column weights and uint8 per-row "
        "activations + GatherBlockQuantized 8-bit embedding table (block 64)",
        0.99,
        _a8w7_e8,
    ),
    "a8w8-e8": Recipe(
        "a8w8-e8",
        "row-wise dynamic int8 as a8w7-e8 but full 8-bit weights (-127..127): exact only on CPUs whose u8 x s8 "
        "kernel accumulates in int32 (AVX-512 VNNI, AVX-VNNI, AMX, ARM); AVX2 without VNNI saturates int16 pairs",
        0.99,
        _a8w8_e8,
    ),
    "w8-e4": Recipe(
        "w8-e4",
        "MatMulNBits bits=8 block 32 symmetric accuracy_level=4 + GatherBlockQuantized 4-bit embedding table",
        0.99,
        _w8_e4,
    ),
    "e4": Recipe(
        "e4",
        "fp32 MatMuls (MLAS sgemm) + GatherBlockQuantized 4-bit embedding table: on an AVX2 CPU the fp32 "
        "kernels beat 8-bit MatMulNBits on long batches, at ~500 MB more resident weights",
        0.99,
        _e4,
    ),
    "w8": Recipe(
        "w8", "MatMulNBits bits=8 block 32 symmetric accuracy_level=4; fp32 embedding table", 0.99, _w8
    ),
    "int8": Recipe(
        "int8",
        "onnxruntime quantize_dynamic: MatMul int8 weights per-channel, dynamic int8 activations "
        "(fails parity on EmbeddingGemma: cosine min 0.836, mean 0.919; kept for fine-tunes that tolerate it)",
        0.99,
        None,
    ),
    "w4-e4": Recipe(
        "w4-e4",
        "MatMulNBits bits=4 block 32 + 4-bit embedding table (smallest; loses accuracy on long documents)",
        0.9,
        _w4_e4,
    ),
}
DEFAULT_RECIPE = "a8w7-e8"
ROWWISE_RECIPES = frozenset({"a8w7-e8", "a8w8-e8"})
"""Recipes built by :mod:`.rowwise_int8`, whose per-row scales :mod:`.row_scales` folds."""


def quantize_onnx(
    src: Path, dst: Path, recipe: str, *, fuse: bool = True, max_positions: int | None = None
) -> dict[str, Any]:
    """Write ``src`` fused (see :mod:`.optimize_graph` and :mod:`.fuse_attention`) and quantized with
    ``recipe`` ("none": fp32) to ``dst`` (graph) and ``dst.data`` (weights). ``max_positions`` is the
    longest input the fused rotary embedding accepts (default :data:`.fuse_attention.MAX_POSITIONS`).
    Returns the fusion figures (empty without ``fuse``)."""
    if recipe != "none" and recipe not in RECIPES:
        raise ConfigurationError(f"unknown quantization recipe {recipe!r}; use one of {', '.join(RECIPES)}.")
    onnx = _onnx()
    model = onnx.load(str(src))
    fusion: dict[str, Any] = {}
    if fuse:
        from .fuse_attention import MAX_POSITIONS, fuse_attention
        from .optimize_graph import fuse_graph

        fusion = fuse_graph(model).to_json()
        fusion.update(fuse_attention(model, max_positions=max_positions or MAX_POSITIONS))
        from .fold_dense import fold_dense_layers

        # The two dense layers after pooling are linear maps in a row: one 768 x 768 Gemm (16.5 MB less).
        fusion["dense"] = fold_dense_layers(model)
        fusion["nodes_after"] = len(model.graph.node)
    if recipe == "int8":
        import tempfile

        from onnxruntime.quantization import QuantType, quantize_dynamic

        with tempfile.TemporaryDirectory(dir=dst.parent) as tmp:
            fused = Path(tmp) / "fused.onnx"
            onnx.save_model(
                model, str(fused), save_as_external_data=True, location="fused.onnx.data", size_threshold=1024
            )
            quantize_dynamic(
                str(fused),
                str(dst),
                use_external_data_format=True,
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["MatMul"],
            )
        return fusion
    if recipe == "none":
        quantized = model
    else:
        apply = RECIPES[recipe].apply
        assert apply is not None  # only "int8" has none, handled above
        quantized = apply(model)
        if recipe in ROWWISE_RECIPES:
            from .row_scales import fold_row_scales

            # The per-row scales ride on QuantizeLinear/MatMulIntegerToFloat (graph version 5). In the fused
            # graph every projection reads token states, so one zero-point tensor from input_ids serves all.
            fusion["row_scales_folded"] = fold_row_scales(quantized, rows_from="input_ids" if fuse else None)
    # Weights go to a side file: onnxruntime memory-maps external data instead of copying it out of
    # the protobuf, which cut peak RSS of a query process from 548 to 412 MB on w8-e4.
    onnx.save_model(
        quantized, str(dst), save_as_external_data=True, location=dst.name + ".data", size_threshold=1024
    )
    return fusion


__all__ = ["DEFAULT_RECIPE", "RECIPES", "ROWWISE_RECIPES", "Recipe", "quantize_onnx"]
