"""Fuse EmbeddingGemma's attention blocks into ONNX Runtime's contrib kernels (no torch).

After :func:`.optimize_graph.fuse_graph`, each of the 24 attention blocks of the dynamo export is
still about 45 small nodes: reshape/transpose to heads, two per-head RMSNorms, rotary embedding as
``Slice/Neg/Concat/Mul/Add`` for q and k, the GQA expand of the single key/value head, a transpose of
K through three reshapes, the two ``sqrt(scale)`` multiplies, and ``MatMul/Add/Softmax/MatMul`` over
the mask bias. At a 16-token query every node costs more in dispatch than in arithmetic, so the
block is rewritten as

    q = RotaryEmbedding(reshape(RMSNorm(reshape(q_proj, heads)), back))   # com.microsoft
    k = RotaryEmbedding(RMSNorm(k_proj))
    MultiHeadAttention(q, concat(k x heads), concat(v x heads), attention_bias=<the export's bias>)

and the projections that read one activation (q/k/v, gate/up) become one MatMul over concatenated
weights and a ``Split``: fewer, wider GEMMs. The rotary caches are the export's own frequencies
evaluated at positions ``0..max_positions-1`` (the export computes them at run time from the same
``inv_freq`` initializers); the additive bias (padding and the sliding window) is the export's, so
local and global layers keep their masks. The arithmetic is the same up to float rounding.

Only exact matches are rewritten: one key/value head, rotary over positions ``arange(seq)``, and a
scalar scale; anything else is left as it is.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from .optimize_graph import MS_DOMAIN, _Graph, _other, ensure_ms_opset, prune_graph

logger = logging.getLogger(__name__)

MAX_POSITIONS = 2048  # EmbeddingGemma's max_position_embeddings; the embedder truncates inputs to it


@dataclass
class _Rope:
    normed_input: str  # the per-head RMSNorm's input, shaped [batch, heads, seq, head_dim]
    norm_weight: str
    epsilon: float
    inv_freq: np.ndarray[Any, Any]


@dataclass
class _Block:
    q_proj: str
    k_proj: str
    v_proj: str
    q_rope: _Rope
    k_rope: _Rope
    scale: float
    bias: str
    output: str
    heads: int
    head_dim: int
    anchor: Any  # the block's last node: the fused nodes go where it was


def _attr(node: Any, name: str, default: Any = None) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _is_arange_from_zero(g: _Graph, name: str) -> bool:
    """``name`` is ``Range(0, n, 1)`` seen through casts, unsqueezes and reshapes."""
    node = g.producer.get(name)
    while node is not None and node.op_type in ("Cast", "Unsqueeze", "Reshape"):
        node = g.producer.get(node.input[0])
    return (
        node is not None
        and node.op_type == "Range"
        and g.scalar(node.input[0]) == 0.0
        and g.scalar(node.input[2]) == 1.0
    )


def _inv_freq(g: _Graph, cos4: str, sin4: str) -> np.ndarray[Any, Any] | None:
    """``Unsqueeze(Cos(Concat(f, f)))`` with ``f = positions * inv_freq``: return ``inv_freq``."""
    uc, us = g.prod(cos4, "Unsqueeze"), g.prod(sin4, "Unsqueeze")
    if uc is None or us is None:
        return None
    cos, sin = g.prod(uc.input[0], "Cos"), g.prod(us.input[0], "Sin")
    if cos is None or sin is None or cos.input[0] != sin.input[0]:
        return None
    cat = g.prod(cos.input[0], "Concat")
    if cat is None or len(cat.input) != 2 or cat.input[0] != cat.input[1]:
        return None
    mul = g.prod(cat.input[0], "Mul")
    if mul is None:
        return None
    for i, other in ((0, 1), (1, 0)):
        inv = g.array(mul.input[i])
        if inv is not None and _is_arange_from_zero(g, mul.input[other]):
            flat: np.ndarray[Any, Any] = np.asarray(inv, dtype=np.float32).reshape(-1)
            return flat
    return None


def _match_rope(g: _Graph, rotated: str) -> _Rope | None:
    """``x*cos + concat(-x[..., h:], x[..., :h])*sin`` on ``x = SimplifiedLayerNorm(heads)``."""
    add = g.prod(rotated, "Add")
    if add is None:
        return None
    muls = [g.prod(i, "Mul") for i in add.input]
    if any(m is None for m in muls):
        return None
    rot_mul = next((m for m in muls if any(g.prod(i, "Concat") is not None for i in m.input)), None)
    if rot_mul is None:
        return None
    cos_mul = muls[1] if rot_mul is muls[0] else muls[0]
    cat = next(g.prod(i, "Concat") for i in rot_mul.input if g.prod(i, "Concat") is not None)
    sin4 = _other(rot_mul, cat.output[0])
    if len(cat.input) != 2:
        return None
    neg = g.prod(cat.input[0], "Neg")
    low = g.prod(cat.input[1], "Slice")
    high = g.prod(neg.input[0], "Slice") if neg is not None else None
    if neg is None or low is None or high is None or low.input[0] != high.input[0]:
        return None
    x = low.input[0]
    cos4 = _other(cos_mul, x)
    norm = g.prod(x, "SimplifiedLayerNormalization")
    if cos4 is None or sin4 is None or norm is None:
        return None
    inv = _inv_freq(g, cos4, sin4)
    weight = g.array(norm.input[1])
    if inv is None or weight is None or weight.shape != (2 * inv.size,):
        return None
    half = inv.size
    if g.scalar(low.input[1]) != 0 or g.scalar(low.input[2]) != half or g.scalar(high.input[1]) != half:
        return None
    return _Rope(norm.input[0], norm.input[1], float(_attr(norm, "epsilon", 1e-5)), inv)


def _from_heads(g: _Graph, name: str) -> str | None:
    """``Transpose(0,2,1,3)(Reshape(x))``: the projection ``x`` before it was split into heads."""
    tr = g.prod(name, "Transpose")
    if tr is None or list(_attr(tr, "perm", [])) != [0, 2, 1, 3]:
        return None
    rs = g.prod(tr.input[0], "Reshape")
    return None if rs is None else str(rs.input[0])


def _unexpand(g: _Graph, name: str) -> str | None:
    """``Reshape(Expand(Unsqueeze(x)))``, the GQA repeat of key/value heads: return ``x``."""
    rs = g.prod(name, "Reshape")
    ex = g.prod(rs.input[0], "Expand") if rs is not None else None
    un = g.prod(ex.input[0], "Unsqueeze") if ex is not None else None
    return None if un is None else str(un.input[0])


def _projection_width(g: _Graph, name: str) -> int | None:
    mm = g.prod(name, "MatMul")
    w = g.array(mm.input[1]) if mm is not None else None
    return None if w is None or w.ndim != 2 else int(w.shape[1])


def _match_block(g: _Graph, softmax: Any) -> _Block | None:
    add = g.prod(softmax.input[0], "Add")
    if add is None or _attr(softmax, "axis", -1) not in (-1, 3):
        return None
    qk = next((g.prod(i, "MatMul") for i in add.input if g.prod(i, "MatMul") is not None), None)
    if qk is None:
        return None
    bias = _other(add, qk.output[0])
    q_mul, k_mul = g.prod(qk.input[0], "Mul"), g.prod(qk.input[1], "Mul")
    if bias is None or q_mul is None or k_mul is None:
        return None
    q_scale_name = next((i for i in q_mul.input if g.scalar(i) is not None), None)
    k_scale_name = next((i for i in k_mul.input if g.scalar(i) is not None), None)
    if q_scale_name is None or k_scale_name is None:
        return None
    scale = float(g.scalar(q_scale_name) or 0.0) * float(g.scalar(k_scale_name) or 0.0)
    q_rot = _other(q_mul, q_scale_name)
    k_t = _other(k_mul, k_scale_name)
    # K^T arrives as Reshape(Transpose(0,2,1)(Reshape(k_expanded))).
    r2 = g.prod(k_t or "", "Reshape")
    tr = g.prod(r2.input[0], "Transpose") if r2 is not None else None
    r1 = g.prod(tr.input[0], "Reshape") if tr is not None else None
    if q_rot is None or r1 is None or list(_attr(tr, "perm", [])) != [0, 2, 1]:
        return None
    k_rot = _unexpand(g, r1.input[0])
    av = g.only_consumer(softmax.output[0])
    if k_rot is None or av is None or av.op_type != "MatMul" or av.input[0] != softmax.output[0]:
        return None
    v_heads = _unexpand(g, av.input[1])
    out_tr = g.only_consumer(av.output[0])
    if v_heads is None or out_tr is None or out_tr.op_type != "Transpose":
        return None
    out_rs = g.only_consumer(out_tr.output[0])
    if list(_attr(out_tr, "perm", [])) != [0, 2, 1, 3] or out_rs is None or out_rs.op_type != "Reshape":
        return None
    q_rope, k_rope = _match_rope(g, q_rot), _match_rope(g, k_rot)
    if q_rope is None or k_rope is None or not np.array_equal(q_rope.inv_freq, k_rope.inv_freq):
        return None
    q_proj, k_proj = _from_heads(g, q_rope.normed_input), _from_heads(g, k_rope.normed_input)
    v_proj = _from_heads(g, v_heads)
    if q_proj is None or k_proj is None or v_proj is None:
        return None
    head_dim = 2 * q_rope.inv_freq.size
    widths = [_projection_width(g, p) for p in (q_proj, k_proj, v_proj)]
    if any(w is None or w % head_dim for w in widths):
        return None
    q_width, k_width, v_width = (int(w or 0) for w in widths)
    if k_width != head_dim or v_width != head_dim:  # one key/value head, repeated by concatenation
        return None
    return _Block(
        q_proj=q_proj,
        k_proj=k_proj,
        v_proj=v_proj,
        q_rope=q_rope,
        k_rope=k_rope,
        scale=scale,
        bias=bias,
        output=out_rs.output[0],
        heads=q_width // head_dim,
        head_dim=head_dim,
        anchor=out_rs,
    )


def _rope_cache(inv_freq: np.ndarray[Any, Any], max_positions: int) -> tuple[Any, Any]:
    # float32 angles, as the export computes them; cos/sin evaluated in float64 and rounded once.
    angles = np.arange(max_positions, dtype=np.float32)[:, None] * inv_freq[None, :].astype(np.float32)
    a64 = angles.astype(np.float64)
    return np.cos(a64).astype(np.float32), np.sin(a64).astype(np.float32)


def _rms_norm(x: str, rope: _Rope, out: str) -> Any:
    """The block's own per-head RMSNorm (weight and epsilon from the export), over the last axis."""
    from onnx import helper

    return helper.make_node(
        "SimplifiedLayerNormalization",
        [x, rope.norm_weight],
        [out],
        name=out,
        axis=-1,
        epsilon=rope.epsilon,
        stash_type=1,
    )


def _block_nodes(
    b: _Block, i: int, caches: dict[bytes, tuple[str, str]], shapes: tuple[str, str, str]
) -> list[Any]:
    from onnx import helper

    heads_shape, flat_shape, pos0 = shapes
    cos, sin = caches[b.q_rope.inv_freq.tobytes()]
    p = f"attn{i}"
    return [
        helper.make_node("Reshape", [b.q_proj, heads_shape], [f"{p}_q_heads"], name=f"{p}_q_heads"),
        _rms_norm(f"{p}_q_heads", b.q_rope, f"{p}_q_norm"),
        helper.make_node("Reshape", [f"{p}_q_norm", flat_shape], [f"{p}_q_flat"], name=f"{p}_q_flat"),
        helper.make_node(
            "RotaryEmbedding",
            [f"{p}_q_flat", pos0, cos, sin],
            [f"{p}_q"],
            name=f"{p}_q_rope",
            domain=MS_DOMAIN,
            num_heads=b.heads,
            interleaved=0,
        ),
        _rms_norm(b.k_proj, b.k_rope, f"{p}_k_norm"),
        helper.make_node(
            "RotaryEmbedding",
            [f"{p}_k_norm", pos0, cos, sin],
            [f"{p}_k1"],
            name=f"{p}_k_rope",
            domain=MS_DOMAIN,
            num_heads=1,
            interleaved=0,
        ),
        helper.make_node("Concat", [f"{p}_k1"] * b.heads, [f"{p}_k"], name=f"{p}_k_repeat", axis=-1),
        helper.make_node("Concat", [b.v_proj] * b.heads, [f"{p}_v"], name=f"{p}_v_repeat", axis=-1),
        helper.make_node(
            "MultiHeadAttention",
            [f"{p}_q", f"{p}_k", f"{p}_v", "", "", b.bias],
            [b.output],
            name=f"{p}_mha",
            domain=MS_DOMAIN,
            num_heads=b.heads,
            scale=b.scale,
        ),
    ]


def merge_sibling_matmuls(model: Any) -> int:
    """``MatMul(x, W1) ... MatMul(x, Wn)`` with constant weights -> ``Split(MatMul(x, [W1|...|Wn]))``.

    One wide GEMM instead of several narrow ones over the same rows (q/k/v, gate/up); the outputs keep
    their names and every column its weights, so a later per-column quantization sees the same values.
    Returns how many MatMuls were merged away."""
    from onnx import helper, numpy_helper

    graph = model.graph
    g = _Graph(graph)
    groups: dict[str, list[tuple[Any, np.ndarray[Any, Any]]]] = {}
    for n in graph.node:
        w = g.array(n.input[1]) if n.op_type == "MatMul" else None
        if w is not None and w.ndim == 2 and w.dtype == np.float32:
            groups.setdefault(n.input[0], []).append((n, w))
    place: dict[int, list[Any]] = {}
    drop: set[int] = set()
    merged = 0
    for i, (x, pairs) in enumerate(groups.items()):
        if len(pairs) < 2:  # (one input: every weight has the same number of rows)
            continue
        nodes = [n for n, _ in pairs]
        weights = [w for _, w in pairs]
        name = f"merged{i}_w"
        graph.initializer.append(numpy_helper.from_array(np.concatenate(weights, axis=1), name))
        widths = np.array([w.shape[1] for w in weights], dtype=np.int64)
        graph.initializer.append(numpy_helper.from_array(widths, f"merged{i}_split"))
        place[id(nodes[0])] = [
            helper.make_node("MatMul", [x, name], [f"merged{i}_y"], name=f"merged{i}_matmul"),
            helper.make_node(
                "Split",
                [f"merged{i}_y", f"merged{i}_split"],
                [n.output[0] for n in nodes],
                name=f"merged{i}_split",
                axis=-1,
            ),
        ]
        drop.update(id(n) for n in nodes)
        merged += len(nodes) - 1
    if not merged:
        return 0
    new_nodes: list[Any] = []
    for n in graph.node:
        new_nodes.extend(place.get(id(n), []))
        if id(n) not in drop:
            new_nodes.append(n)
    del graph.node[:]
    graph.node.extend(new_nodes)
    prune_graph(graph)
    return merged


def fuse_attention(model: Any, *, max_positions: int = MAX_POSITIONS) -> Counter[str]:
    """Rewrite ``model`` (``onnx.ModelProto``, fused by ``fuse_graph``, modified in place).

    Returns counts: blocks fused (``MultiHeadAttention``, ``RotaryEmbedding``), ``MatMulsMerged``, and
    ``nodes_removed`` in all. A graph without the pattern comes back unchanged but for merged MatMuls."""
    from onnx import numpy_helper

    graph = model.graph
    stats: Counter[str] = Counter()
    before = len(graph.node)
    g = _Graph(graph)
    blocks = [b for n in list(graph.node) if n.op_type == "Softmax" for b in [_match_block(g, n)] if b]
    if blocks and len({b.head_dim for b in blocks}) == 1:
        caches: dict[bytes, tuple[str, str]] = {}
        for b in blocks:
            key = b.q_rope.inv_freq.tobytes()
            if key not in caches:
                k = len(caches)
                cos, sin = _rope_cache(b.q_rope.inv_freq, max_positions)
                graph.initializer.append(numpy_helper.from_array(cos, f"attn_rope{k}_cos"))
                graph.initializer.append(numpy_helper.from_array(sin, f"attn_rope{k}_sin"))
                caches[key] = (f"attn_rope{k}_cos", f"attn_rope{k}_sin")
        head_dim = blocks[0].head_dim
        graph.initializer.append(
            numpy_helper.from_array(np.array([0, 0, -1, head_dim], np.int64), "attn_heads")
        )
        graph.initializer.append(numpy_helper.from_array(np.array([0, 0, -1], np.int64), "attn_flat"))
        graph.initializer.append(numpy_helper.from_array(np.array([0], np.int64), "attn_pos0"))
        shapes = ("attn_heads", "attn_flat", "attn_pos0")
        at = {id(b.anchor): _block_nodes(b, i, caches, shapes) for i, b in enumerate(blocks)}
        new_nodes: list[Any] = []
        for n in graph.node:
            if id(n) in at:
                new_nodes.extend(at[id(n)])
            else:
                new_nodes.append(n)
        del graph.node[:]
        graph.node.extend(new_nodes)
        prune_graph(graph)
        ensure_ms_opset(model)
        stats["MultiHeadAttention"] = len(blocks)
        stats["RotaryEmbedding"] = 2 * len(blocks)
    stats["MatMulsMerged"] = merge_sibling_matmuls(model)
    stats["nodes_removed"] = before - len(graph.node)
    logger.info("attention fusion: %s", dict(stats))
    return stats


__all__ = ["MAX_POSITIONS", "fuse_attention", "merge_sibling_matmuls"]
