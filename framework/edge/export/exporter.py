"""Export a sentence-transformers EmbeddingGemma checkpoint to an edgeroute model directory.

The whole sentence-transformers pipeline (Gemma 3 encoder, mean pooling, both dense layers, L2
normalisation) goes into one ONNX graph with inputs ``input_ids``/``attention_mask`` and output
``sentence_embedding``, the contract of the public onnx-community export. ``torch.onnx.export`` with
``dynamo=True`` is used because the TorchScript exporter fails inside transformers 5's mask creation.

torch, transformers and sentence-transformers are imported lazily: they live in the ``export`` extra.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...digest import sha256_file
from ...errors import ConfigurationError, InputError, ModelIntegrityError
from ..model_dir import (
    DEFAULT_MODEL_ID,
    MANIFEST,
    MODEL_FILE,
    TOKENIZER_FILE,
    Manifest,
    prompt_revision,
    write_manifest,
)
from ..tokenizer import COMPACT_FILE, SENTENCEPIECE_FILE
from .compact_file import write_if_identical
from .quantize import RECIPES, quantize_onnx
from .sentencepiece_file import copy_if_identical
from .token_states import add_token_states_to_file

logger = logging.getLogger(__name__)

_EXPORT_EXTRA = "pip install 'edgeroute[export]'"
OPSET = 18
# Bumped whenever the exported graph changes for the same checkpoint and recipe, so scripts/prepare-model
# re-exports cached models. 2: attention/rotary fused, q/k/v and gate/up merged, 1/127 folded into scales.
# 3: token-state outputs (final and middle layer) for the PII head; a version-2 directory is upgraded in
# place by edgeroute.framework.edge.export.token_states (seconds, no re-export).
# 4: the two dense layers after pooling folded into one 768 x 768 Gemm (fold_dense); a version-3
# directory is upgraded in place by edgeroute.framework.edge.export.fold_dense (seconds, no re-export).
# 5: the row-wise recipes' per-row scales folded into a blockwise QuantizeLinear and MatMulIntegerToFloat's
# per-row a_scale (row_scales; opset 21): 96 full-size Div/Mul passes fewer. A version-4 directory is
# upgraded in place by edgeroute.framework.edge.export.row_scales (the graph file only, no re-export).
GRAPH_VERSION = 5

# Built-in parity sample: short queries, a document past 512 tokens, non-English text.
_LONG = " ".join(
    f"Paragraph {i}: glaciers store about sixty-nine percent of the world's fresh water, and their retreat "
    "changes river flow, sea level and the ecosystems that depend on seasonal melt."
    for i in range(30)
)
PARITY_SAMPLE: tuple[tuple[str, str], ...] = (
    ("query", "what causes dehydration?"),
    ("query", "vitamin D deficiency symptoms"),
    ("document", "Dehydration occurs when you use or lose more fluid than you take in."),
    ("document", _LONG),
    ("query", "¿Cuál es la capital de Australia?"),
    ("document", "Die Photosynthese wandelt Lichtenergie in chemische Energie um und setzt Sauerstoff frei."),
    ("document", "東京は日本の首都であり、世界最大級の都市圏を持つ。"),
    ("Classification", "I loved this film, the acting was superb."),
)


@dataclass(frozen=True)
class ParityReport:
    """Cosine between the exported model and sentence-transformers on :data:`PARITY_SAMPLE`."""

    cosine_min: float
    cosine_mean: float
    cosines: tuple[float, ...]
    tokens: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "cosine_min": round(self.cosine_min, 6),
            "cosine_mean": round(self.cosine_mean, 6),
            "cosines": [round(c, 6) for c in self.cosines],
            "tokens": list(self.tokens),
        }


def _require_export_extra() -> Any:
    try:
        import sentence_transformers
        import torch
    except ImportError as exc:
        raise ConfigurationError(
            f"exporting needs torch, transformers and sentence-transformers ({exc.name} is missing): "
            f"{_EXPORT_EXTRA}"
        ) from exc
    return torch, sentence_transformers


def load_reference(checkpoint: Path) -> Any:
    """The sentence-transformers model on CPU, fp32 (the reference for parity)."""
    _, st = _require_export_extra()
    if not (checkpoint / "modules.json").is_file():
        raise InputError(
            f"{checkpoint} is not a sentence-transformers checkpoint (no modules.json); pass the directory "
            "of a sentence-transformers checkpoint (for example google/embeddinggemma-300m, downloaded) "
            "or a fine-tune saved with model.save()."
        )
    return st.SentenceTransformer(str(checkpoint), device="cpu")


def export_fp32_onnx(model: Any, out_file: Path) -> None:
    """Trace the full pipeline with the dynamo exporter into ``out_file`` (weights as external data)."""
    torch, _ = _require_export_extra()

    class Pipeline(torch.nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self, st_model: Any) -> None:
            super().__init__()
            self.st = st_model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.st({"input_ids": input_ids, "attention_mask": attention_mask})["sentence_embedding"]

    pipe = Pipeline(model).eval()
    ids = torch.tensor([[2, 1000, 2000, 3000, 1], [2, 1500, 2500, 1, 0]], dtype=torch.long)
    mask = (ids != 0).long()
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence", max=8192)
    with torch.no_grad():
        program = torch.onnx.export(
            pipe,
            (ids, mask),
            dynamo=True,
            input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding"],
            dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
            opset_version=OPSET,
            optimize=True,
        )
    program.save(str(out_file), external_data=True)


def reference_embeddings(model: Any, sample: Sequence[tuple[str, str]]) -> np.ndarray[Any, Any]:
    """sentence-transformers embeddings of ``sample`` (prompt name, text), one call per text."""
    rows = [
        model.encode([text], prompt_name=name, normalize_embeddings=True, convert_to_numpy=True)[0]
        for name, text in sample
    ]
    return np.stack(rows).astype(np.float32)


def check_parity(
    model_dir: Path, reference: np.ndarray[Any, Any], sample: Sequence[tuple[str, str]]
) -> ParityReport:
    """Embed ``sample`` with the exported directory (batched, so padding is exercised) and compare."""
    from ..embedder import EdgeEmbedder

    edge = EdgeEmbedder.load(model_dir, verify=False)
    formatted = [edge.format_prompt(text, name) for name, text in sample]
    # The first two alone (no padding), the rest in one batch so padded rows are checked too.
    got = np.concatenate([edge.embed([f], None) for f in formatted[:2]] + [edge.embed(formatted[2:], None)])
    cos = (got * reference).sum(axis=1)
    tokens = tuple(edge.count_tokens(formatted))
    return ParityReport(float(cos.min()), float(cos.mean()), tuple(float(c) for c in cos), tokens)


def export_model(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    quantize: str = "none",
    verify: bool = True,
    min_cosine: float | None = None,
    model_id: str = DEFAULT_MODEL_ID,
    fp32_onnx: str | Path | None = None,
    fuse: bool = True,
    progress: Callable[[str], None] | None = None,
) -> tuple[Manifest, ParityReport | None]:
    """Export ``checkpoint`` to ``out_dir`` (created; an existing directory must be empty or a model dir).

    ``quantize`` is ``"none"`` or a recipe name from :data:`edgeroute.framework.edge.export.quantize.RECIPES`.
    ``fp32_onnx`` reuses an earlier fp32 export (a ``model.onnx``) instead of tracing again.
    ``fuse=False`` skips the graph fusions: the plain trace, for comparisons.
    With ``verify`` the result is compared with sentence-transformers on :data:`PARITY_SAMPLE`; below
    ``min_cosine`` (default 0.9999 for fp32, the recipe's floor otherwise) it raises
    :class:`ModelIntegrityError` and removes nothing it did not write.
    """
    say = progress or (lambda msg: logger.info("%s", msg))
    ckpt = Path(checkpoint).expanduser()
    out = Path(out_dir).expanduser()
    if quantize != "none" and quantize not in RECIPES:
        raise InputError(f"unknown quantization {quantize!r}; use one of: none, {', '.join(RECIPES)}.")
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise InputError(
            f"{out} exists and is not an edgeroute model directory; choose an empty or new --out."
        )
    started = time.perf_counter()
    say(f"loading {ckpt} with sentence-transformers")
    model = load_reference(ckpt)
    tokenizer_src = ckpt / TOKENIZER_FILE
    if not tokenizer_src.is_file():
        raise InputError(f"{ckpt} has no {TOKENIZER_FILE}; save the checkpoint with a fast tokenizer.")
    st_cfg_path = ckpt / "config_sentence_transformers.json"
    prompts: dict[str, str] = dict(model.prompts or {})
    if st_cfg_path.is_file():
        prompts = dict(json.loads(st_cfg_path.read_text(encoding="utf-8")).get("prompts") or prompts)
    weights = ckpt / "model.safetensors"
    weights_rev = sha256_file(weights) if weights.is_file() else "unknown"

    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out.parent if out.parent.exists() else None))
    try:
        fp32_dir = staging / "fp32"
        fp32_dir.mkdir()
        fp32_file = fp32_dir / MODEL_FILE
        if fp32_onnx is not None:
            fp32_file = Path(fp32_onnx).expanduser()
            if not fp32_file.is_file():
                raise InputError(
                    f"--fp32-onnx {fp32_file} does not exist; omit it to trace the checkpoint again."
                )
            say(f"reusing fp32 graph {fp32_file}")
        else:
            say("exporting the fp32 graph (torch.onnx dynamo exporter; minutes on a small CPU)")
            export_fp32_onnx(model, fp32_file)
        final = staging / "final"
        final.mkdir()
        # Fuse RMSNorm / tanh-GELU / softmax guards into ORT kernels (framework/optimize_graph.py), then
        # quantize ("none" keeps fp32).
        say(f"{'fusing the graph and ' if fuse else ''}quantizing with recipe {quantize!r}")
        fusion = quantize_onnx(
            fp32_file, final / MODEL_FILE, quantize, fuse=fuse, max_positions=int(model.max_seq_length)
        )
        token_states = add_token_states_to_file(final / MODEL_FILE) if fuse else None
        shutil.copy2(tokenizer_src, final / TOKENIZER_FILE)
        # The checkpoint's SentencePiece model, when it tokenizes exactly like tokenizer.json: the
        # embedder then loads it instead (~46 MB against a ~354 MB parse peak).
        if copy_if_identical(ckpt, final, int(model.max_seq_length)):
            say(f"copied {SENTENCEPIECE_FILE} (identical tokens on the check sample)")
            # Its compact form, memory-mapped by the embedder (a few MB instead of ~46 MB).
            if write_if_identical(final, int(model.max_seq_length)):
                say(f"wrote {COMPACT_FILE} (identical tokens on the check sample)")
        manifest = write_manifest(
            final,
            Manifest(
                model_id=model_id,
                revision=prompt_revision(weights_rev, prompts),
                dims=int(
                    getattr(model, "get_embedding_dimension", model.get_sentence_embedding_dimension)() or 768
                ),
                max_tokens=int(model.max_seq_length),
                quantization=quantize,
                prompts=prompts,
                export={
                    "checkpoint": str(ckpt),
                    "weights_sha256": weights_rev,
                    "exporter": "torch.onnx.export(dynamo=True)",
                    "opset": OPSET,
                    "quantization_recipe": RECIPES[quantize].description if quantize != "none" else "fp32",
                    "graph_fusion": fusion,
                    "graph_version": GRAPH_VERSION if fuse else 0,
                    **({"token_states": token_states} if token_states else {}),
                    "torch": _version("torch"),
                    "sentence_transformers": _version("sentence_transformers"),
                    "onnxruntime": _version("onnxruntime"),
                },
            ),
        )
        report: ParityReport | None = None
        if verify:
            say("checking parity against sentence-transformers")
            ref = reference_embeddings(model, PARITY_SAMPLE)
            report = check_parity(final, ref, PARITY_SAMPLE)
            floor = (
                min_cosine
                if min_cosine is not None
                else (0.9999 if quantize == "none" else RECIPES[quantize].min_cosine)
            )
            if report.cosine_min < floor:
                raise ModelIntegrityError(
                    f"the exported model does not match sentence-transformers: cosine min "
                    f"{report.cosine_min:.5f} < {floor} (mean {report.cosine_mean:.5f}); nothing was written "
                    f"to {out}. Try --quantize none or another recipe."
                )
            manifest = write_manifest(
                final,
                Manifest(
                    **{
                        **manifest.__dict__,
                        "export": {
                            **manifest.export,
                            "parity": report.to_json(),
                            "seconds": round(time.perf_counter() - started, 1),
                        },
                    }
                ),
            )
        # Swap in only a complete, verified directory so a failed export never leaves a half model.
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(final), out)
        return manifest, report
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _version(module: str) -> str:
    try:
        mod = __import__(module)
        return str(getattr(mod, "__version__", "unknown"))
    except ImportError:
        return "absent"


__all__ = [
    "PARITY_SAMPLE",
    "ParityReport",
    "check_parity",
    "export_fp32_onnx",
    "export_model",
    "load_reference",
]
