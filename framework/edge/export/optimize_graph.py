"""Fuse the dynamo-exported EmbeddingGemma graph into ONNX Runtime's fused CPU kernels (no torch).

``torch.onnx.export(dynamo=True)`` decomposes every Gemma RMSNorm into
``Pow -> ReduceMean -> Add(eps) -> Sqrt -> Reciprocal -> Mul(x) -> Mul(weight)`` (145 of them: two
per layer input/output, the per-head q/k norms, the final norm), tanh-GELU into eight elementwise
ops, and guards every attention softmax with ``IsNaN -> Where`` over ``[batch, heads, seq, seq]``.
ONNX Runtime's own level-2 fusions match none of these shapes (checked on ORT 1.32), so this pass
rewrites them before quantization:

- RMSNorm -> ``SimplifiedLayerNormalization`` (ORT kernel in the ONNX domain, axis -1, fp32 stash);
- tanh-GELU -> ``com.microsoft.FastGelu``;
- ``Softmax -> IsNaN -> Where(nan, 0, softmax)`` -> ``Softmax``: the guard only matters for rows whose
  every key is masked, which an encoder with padding-only masks never produces (a sequence has at
  least one real token, and padded query rows still attend to the real keys);
- residual ``Add`` + RMSNorm -> ``com.microsoft.SkipSimplifiedLayerNormalization`` (which also returns
  the sum for the next residual).

Attention itself is fused afterwards by :mod:`.fuse_attention`.

Only exact matches are rewritten (constants checked, intermediates used once); anything else is left
as it is, so the pass is safe on other graphs. The numbers are the same up to float rounding.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

MS_DOMAIN = "com.microsoft"


def ensure_ms_opset(model: Any) -> None:
    """Declare onnxruntime's contrib domain, which fused and quantized ops live in."""
    from onnx import helper

    if not any(o.domain == MS_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))


@dataclass
class FusionStats:
    """How many of each pattern were rewritten, and the node count before/after."""

    nodes_before: int = 0
    nodes_after: int = 0
    fused: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {"nodes_before": self.nodes_before, "nodes_after": self.nodes_after, **dict(self.fused)}


class _Graph:
    def __init__(self, graph: Any) -> None:
        from onnx import numpy_helper

        self.g = graph
        self.inits = {i.name: i for i in graph.initializer}
        self._np = numpy_helper
        self.producer: dict[str, Any] = {}
        self.consumers: dict[str, list[Any]] = {}
        for n in graph.node:
            for o in n.output:
                self.producer[o] = n
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.graph_outputs = {o.name for o in graph.output}

    def scalar(self, name: str) -> float | None:
        init = self.inits.get(name)
        if init is None:
            return None
        arr = self._np.to_array(init)
        if arr.size != 1:
            return None
        return float(arr.reshape(()))

    def array(self, name: str) -> Any:
        init = self.inits.get(name)
        return None if init is None else self._np.to_array(init)

    def only_consumer(self, name: str) -> Any:
        users = self.consumers.get(name, [])
        if len(users) != 1 or name in self.graph_outputs:
            return None
        return users[0]

    def prod(self, name: str, op: str) -> Any:
        n = self.producer.get(name)
        return n if n is not None and n.op_type == op else None


def _other(node: Any, name: str) -> str | None:
    ins: list[str] = [str(i) for i in node.input]
    if len(ins) != 2 or name not in ins:
        return None
    return ins[1] if ins[0] == name else ins[0]


def _match_rmsnorm(g: _Graph, pow_node: Any) -> tuple[list[Any], str, str, str, float] | None:
    """Pow(x,2) -> ReduceMean(-1) -> Add(eps) -> Sqrt -> Reciprocal -> Mul(x, r) -> Mul(., w)."""
    x = pow_node.input[0]
    if g.scalar(pow_node.input[1]) != 2.0:
        return None
    rm = g.only_consumer(pow_node.output[0])
    if rm is None or rm.op_type != "ReduceMean":
        return None
    axes = g.array(rm.input[1]) if len(rm.input) > 1 else None
    keep = next((a.i for a in rm.attribute if a.name == "keepdims"), 1)
    if axes is None or list(axes.reshape(-1)) != [-1] or keep != 1:
        return None
    add = g.only_consumer(rm.output[0])
    if add is None or add.op_type != "Add":
        return None
    eps_name = _other(add, rm.output[0])
    eps = g.scalar(eps_name) if eps_name else None
    if eps is None:
        return None
    sqrt = g.only_consumer(add.output[0])
    if sqrt is None or sqrt.op_type != "Sqrt":
        return None
    rec = g.only_consumer(sqrt.output[0])
    if rec is None or rec.op_type != "Reciprocal":
        return None
    mul1 = g.only_consumer(rec.output[0])
    if mul1 is None or mul1.op_type != "Mul" or _other(mul1, rec.output[0]) != x:
        return None
    mul2 = g.only_consumer(mul1.output[0])
    if mul2 is None or mul2.op_type != "Mul":
        return None
    w = _other(mul2, mul1.output[0])
    warr = g.array(w) if w else None
    if w is None or warr is None or warr.ndim != 1:
        return None
    return [pow_node, rm, add, sqrt, rec, mul1, mul2], x, w, mul2.output[0], eps


def _match_gelu(g: _Graph, tanh: Any) -> tuple[list[Any], str, str] | None:
    """0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))) in the dynamo exporter's order."""
    mul_c = g.prod(tanh.input[0], "Mul")
    if mul_c is None:
        return None
    add_in = next((g.prod(i, "Add") for i in mul_c.input if g.prod(i, "Add") is not None), None)
    if add_in is None:
        return None
    c = g.scalar(_other(mul_c, add_in.output[0]) or "")
    if c is None or not math.isclose(c, math.sqrt(2 / math.pi), rel_tol=1e-5):
        return None
    mul_k = next((g.prod(i, "Mul") for i in add_in.input if g.prod(i, "Mul") is not None), None)
    if mul_k is None:
        return None
    x = _other(add_in, mul_k.output[0])
    pw = next((g.prod(i, "Pow") for i in mul_k.input if g.prod(i, "Pow") is not None), None)
    if x is None or pw is None or pw.input[0] != x or g.scalar(pw.input[1]) != 3.0:
        return None
    k = g.scalar(_other(mul_k, pw.output[0]) or "")
    if k is None or not math.isclose(k, 0.044715, rel_tol=1e-5):
        return None
    add1 = g.only_consumer(tanh.output[0])
    if add1 is None or add1.op_type != "Add" or g.scalar(_other(add1, tanh.output[0]) or "") != 1.0:
        return None
    mul_h = g.only_consumer(add1.output[0])
    if mul_h is None or mul_h.op_type != "Mul" or g.scalar(_other(mul_h, add1.output[0]) or "") != 0.5:
        return None
    mul_x = g.only_consumer(mul_h.output[0])
    if mul_x is None or mul_x.op_type != "Mul" or _other(mul_x, mul_h.output[0]) != x:
        return None
    chain = [pw, mul_k, add_in, mul_c, tanh, add1, mul_h, mul_x]
    for n in chain[:-1]:
        if any(u not in chain for u in g.consumers.get(n.output[0], [])) or n.output[0] in g.graph_outputs:
            return None
    return chain, x, mul_x.output[0]


def _match_nan_guard(g: _Graph, isnan: Any) -> tuple[list[Any], str, str] | None:
    """Softmax -> IsNaN -> Where(isnan, 0, softmax): keep the Softmax, drop the guard."""
    sm = g.prod(isnan.input[0], "Softmax")
    if sm is None:
        return None
    where = g.only_consumer(isnan.output[0])
    if where is None or where.op_type != "Where" or where.input[0] != isnan.output[0]:
        return None
    if where.output[0] in g.graph_outputs:  # readers get renamed to the Softmax; a graph output cannot
        return None
    if where.input[2] != sm.output[0] or g.scalar(where.input[1]) != 0.0:
        return None
    return [isnan, where], sm.output[0], where.output[0]


def fuse_graph(model: Any) -> FusionStats:
    """Rewrite ``model`` (an ``onnx.ModelProto``, modified in place); returns what was fused."""
    from onnx import helper

    graph = model.graph
    stats = FusionStats(nodes_before=len(graph.node))
    g = _Graph(graph)
    remove: set[int] = set()
    # New node placed where the last removed node of its pattern was, so topological order holds.
    replace_at: dict[int, Any] = {}
    renames: dict[str, str] = {}
    for node in list(graph.node):
        if id(node) in remove:
            continue
        if node.op_type == "Pow":
            m = _match_rmsnorm(g, node)
            if m is None:
                continue
            chain, x, w, out, eps = m
            fused = helper.make_node(
                "SimplifiedLayerNormalization",
                [x, w],
                [out],
                name=f"{out}_rmsnorm",
                axis=-1,
                epsilon=eps,
                stash_type=1,
            )
            stats.fused["SimplifiedLayerNormalization"] += 1
        elif node.op_type == "Tanh":
            mg = _match_gelu(g, node)
            if mg is None:
                continue
            chain, x, out = mg
            fused = helper.make_node("FastGelu", [x], [out], name=f"{out}_fastgelu", domain=MS_DOMAIN)
            stats.fused["FastGelu"] += 1
        elif node.op_type == "IsNaN":
            mn = _match_nan_guard(g, node)
            if mn is None:
                continue
            chain, src, out = mn
            renames[out] = src
            for n in chain:
                remove.add(id(n))
            stats.fused["SoftmaxNaNGuardRemoved"] += 1
            continue
        else:
            continue
        for n in chain:
            remove.add(id(n))
        replace_at[id(chain[-1])] = fused
    if remove:
        new_nodes = []
        for n in graph.node:
            if id(n) in replace_at:
                new_nodes.append(replace_at[id(n)])
            elif id(n) not in remove:
                new_nodes.append(n)
        for n in new_nodes:
            for i, name in enumerate(n.input):
                if name in renames:
                    n.input[i] = renames[name]
        del graph.node[:]
        graph.node.extend(new_nodes)
        if stats.fused["FastGelu"]:
            ensure_ms_opset(model)
        prune_graph(graph)  # the fused patterns' constants and value_info
    stats.fused["SkipSimplifiedLayerNormalization"] += fuse_skip_norms(model)
    stats.nodes_after = len(graph.node)
    logger.info("graph fusion: %s", stats.to_json())
    return stats


def prune_graph(graph: Any) -> int:
    """Drop nodes whose outputs nothing reads (repeatedly), then initializers and value_info nobody
    uses. Returns how many nodes went."""
    outputs = {o.name for o in graph.output}
    removed = 0
    while True:
        used = {i for n in graph.node for i in n.input} | outputs
        keep = [n for n in graph.node if any(o in used for o in n.output if o)]
        if len(keep) == len(graph.node):
            break
        removed += len(graph.node) - len(keep)
        del graph.node[:]
        graph.node.extend(keep)
    used = {i for n in graph.node for i in n.input} | outputs
    inits = [i for i in graph.initializer if i.name in used]
    if len(inits) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(inits)
    live = {o for n in graph.node for o in n.output} | {i.name for i in graph.input}
    info = [v for v in graph.value_info if v.name in live]
    del graph.value_info[:]
    graph.value_info.extend(info)
    return removed


def fuse_skip_norms(model: Any) -> int:
    """``SimplifiedLayerNormalization(a + b)`` -> ``com.microsoft.SkipSimplifiedLayerNormalization(a, b)``.

    Gemma adds every residual just before a norm; the fused kernel also returns the sum (its fourth
    output) for the next residual. Placed where the Add was, whose inputs are ready there."""
    from onnx import helper

    graph = model.graph
    g = _Graph(graph)
    fused_at: dict[int, Any] = {}
    drop: set[int] = set()
    for norm in graph.node:
        if norm.op_type != "SimplifiedLayerNormalization" or norm.domain:
            continue
        add = g.prod(norm.input[0], "Add")
        if add is None or id(add) in fused_at or len(add.input) != 2 or any(i in g.inits for i in add.input):
            continue
        axis = next((a.i for a in norm.attribute if a.name == "axis"), -1)
        weight = g.array(norm.input[1])
        if axis != -1 or weight is None or weight.ndim != 1:
            continue
        eps = next((a.f for a in norm.attribute if a.name == "epsilon"), 1e-5)
        sum_out = add.output[0]
        sum_read_elsewhere = sum_out in g.graph_outputs or any(
            u is not norm for u in g.consumers.get(sum_out, [])
        )
        outputs = [norm.output[0], "", "", sum_out] if sum_read_elsewhere else [norm.output[0]]
        fused_at[id(add)] = helper.make_node(
            "SkipSimplifiedLayerNormalization",
            [add.input[0], add.input[1], norm.input[1]],
            outputs,
            name=f"{norm.output[0]}_skip",
            domain=MS_DOMAIN,
            epsilon=eps,
        )
        drop.add(id(norm))
    if not fused_at:
        return 0
    new_nodes = [fused_at.get(id(n), n) for n in graph.node if id(n) not in drop]
    del graph.node[:]
    graph.node.extend(new_nodes)
    ensure_ms_opset(model)
    return len(fused_at)


__all__ = ["FusionStats", "fuse_graph", "fuse_skip_norms", "prune_graph"]
