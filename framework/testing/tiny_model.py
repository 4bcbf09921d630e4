"""A tiny generated model directory in exactly the EmbeddingGemma directory format, for tests.

Built with ``onnx`` and ``tokenizers`` only (no torch, no download) in a few milliseconds: a
WordLevel tokenizer over a small English vocabulary, an embedding table, mean pooling over the
attention mask, one dense layer to 768 dims (so Matryoshka truncation works) and L2 normalisation,
with inputs ``input_ids``/``attention_mask`` and output ``sentence_embedding``. Vectors are
deterministic; texts sharing words are closer than unrelated ones, nothing more.

    from edgeroute.framework.testing.tiny_model import build_tiny_model
    from edgeroute.framework.edge.embedder import EdgeEmbedder
    edge = EdgeEmbedder.load(build_tiny_model(tmp_path / "tiny"))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..digest import sha256_bytes
from ..edge.model_dir import (
    EMBEDDINGGEMMA_PROMPTS,
    MODEL_FILE,
    TOKENIZER_FILE,
    Manifest,
    prompt_revision,
    write_manifest,
)
from ..errors import ConfigurationError

TINY_MODEL_ID = "edgeroute/tiny-test-model"
SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>")  # ids 0..3, as in Gemma's tokenizer

_WORDS = [
    "task",
    "search",
    "result",
    "query",
    "title",
    "none",
    "text",
    "clustering",
    "classification",
    "code",
    "retrieval",
    "sentence",
    "similarity",
    "summarization",
    "question",
    "answering",
    "fact",
    "checking",
    "the",
    "a",
    "an",
    "of",
    "and",
    "or",
    "in",
    "on",
    "at",
    "to",
    "for",
    "from",
    "by",
    "with",
    "without",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "it",
    "this",
    "that",
    "these",
    "those",
    "what",
    "why",
    "how",
    "when",
    "where",
    "who",
    "which",
    "not",
    "no",
    "yes",
    "do",
    "does",
    "did",
    "can",
    "could",
    "should",
    "would",
    "will",
    "may",
    "might",
    "must",
    "water",
    "fresh",
    "river",
    "sea",
    "ocean",
    "rain",
    "snow",
    "ice",
    "glacier",
    "climate",
    "weather",
    "warm",
    "cold",
    "heat",
    "temperature",
    "body",
    "blood",
    "heart",
    "brain",
    "cell",
    "cells",
    "gene",
    "genes",
    "protein",
    "disease",
    "cancer",
    "vitamin",
    "deficiency",
    "symptoms",
    "dehydration",
    "fluid",
    "drink",
    "health",
    "doctor",
    "patient",
    "treatment",
    "drug",
    "drugs",
    "study",
    "studies",
    "trial",
    "risk",
    "cat",
    "cats",
    "dog",
    "dogs",
    "bird",
    "birds",
    "fish",
    "animal",
    "animals",
    "pet",
    "pets",
    "food",
    "eat",
    "eats",
    "eating",
    "car",
    "cars",
    "bus",
    "train",
    "plane",
    "road",
    "city",
    "cities",
    "country",
    "countries",
    "capital",
    "paris",
    "london",
    "tokyo",
    "berlin",
    "computer",
    "computers",
    "software",
    "hardware",
    "network",
    "data",
    "model",
    "models",
    "python",
    "java",
    "rust",
    "program",
    "programs",
    "money",
    "bank",
    "price",
    "prices",
    "market",
    "markets",
    "tax",
    "taxes",
    "pay",
    "payment",
    "account",
    "card",
    "credit",
    "book",
    "books",
    "read",
    "reading",
    "write",
    "writing",
    "story",
    "stories",
    "film",
    "films",
    "music",
    "song",
    "songs",
    "art",
    "day",
    "days",
    "night",
    "week",
    "month",
    "year",
    "years",
    "time",
    "today",
    "tomorrow",
    "morning",
    "evening",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "many",
    "few",
    "more",
    "most",
    "less",
    "all",
    "some",
    "any",
    "every",
    "good",
    "bad",
    "big",
    "small",
    "new",
    "old",
    "long",
    "short",
    "high",
    "low",
    "fast",
    "slow",
    "first",
    "last",
    "best",
    "worst",
    "cause",
    "causes",
    "effect",
    "effects",
    "make",
    "makes",
    "made",
    "use",
    "uses",
    "used",
    "find",
    "found",
    "show",
    "shows",
    "light",
    "energy",
    "sun",
    "moon",
    "star",
    "stars",
    "earth",
    "planet",
    "space",
    "photosynthesis",
    "oxygen",
    "carbon",
    "private",
    "secret",
    "password",
    "email",
    "phone",
    "address",
    "name",
    "number",
]

TINY_VOCAB: tuple[str, ...] = SPECIAL_TOKENS + tuple(dict.fromkeys([*_WORDS, ":", "|", "?", ".", ",", "!"]))
"""The tokenizer's vocabulary; any other word maps to ``<unk>``."""

_HIDDEN = 32
_DIMS = 768


def _tokenizer_json(max_tokens: int) -> str:
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel

    tok = Tokenizer(WordLevel({w: i for i, w in enumerate(TINY_VOCAB)}, unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>",
        pair="<bos> $A <eos> <bos> $B <eos>",
        special_tokens=[("<bos>", 2), ("<eos>", 1)],
    )
    tok.enable_truncation(max_length=max_tokens)
    return str(tok.to_str())


def _graph(seed: int) -> Any:
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as exc:
        raise ConfigurationError("build_tiny_model needs the onnx package: pip install onnx") from exc
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((len(TINY_VOCAB), _HIDDEN)).astype(np.float32)
    table[0] = 0.0  # <pad> never contributes, even if a mask were wrong
    dense = (rng.standard_normal((_HIDDEN, _DIMS)) / np.sqrt(_HIDDEN)).astype(np.float32)
    inits = [
        numpy_helper.from_array(table, "embed_tokens"),
        numpy_helper.from_array(dense, "dense"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
        numpy_helper.from_array(np.array(1e-9, dtype=np.float32), "eps"),
    ]
    nodes = [
        helper.make_node("Gather", ["embed_tokens", "input_ids"], ["tok"]),
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "axis2"], ["mask3"]),
        helper.make_node("Mul", ["tok", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask_f", "axis1"], ["count"], keepdims=1),
        helper.make_node("Max", ["count", "eps"], ["count_safe"]),
        helper.make_node("Div", ["summed", "count_safe"], ["pooled"]),
        helper.make_node("MatMul", ["pooled", "dense"], ["projected"]),
        helper.make_node("Tanh", ["projected"], ["act"]),
        helper.make_node("ReduceL2", ["act"], ["norm"], axes=[1], keepdims=1),
        helper.make_node("Max", ["norm", "eps"], ["norm_safe"]),
        helper.make_node("Div", ["act", "norm_safe"], ["sentence_embedding"]),
    ]
    graph = helper.make_graph(
        nodes,
        "edgeroute_tiny",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
        ],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", _DIMS])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgeroute")
    model.ir_version = 8  # readable by every onnxruntime the package supports
    onnx.checker.check_model(model)
    return model


def build_tiny_model(out_dir: str | Path, *, max_tokens: int = 64, seed: int = 0) -> Path:
    """Write a tiny model directory to ``out_dir`` (created) and return its path.

    ``max_tokens`` is small by default so truncation is cheap to test. The manifest carries the
    real EmbeddingGemma prompts, dims 768 and Matryoshka dims 768/512/256/128.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = _graph(seed)
    data = model.SerializeToString()
    (out / MODEL_FILE).write_bytes(data)
    (out / TOKENIZER_FILE).write_text(_tokenizer_json(max_tokens), encoding="utf-8")
    prompts = dict(EMBEDDINGGEMMA_PROMPTS)
    manifest = Manifest(
        model_id=TINY_MODEL_ID,
        revision=prompt_revision(sha256_bytes(data), prompts),
        max_tokens=max_tokens,
        prompts=prompts,
        export={"source": "edgeroute.framework.testing.tiny_model.build_tiny_model", "seed": seed},
    )
    write_manifest(out, manifest)
    return out


__all__ = ["TINY_MODEL_ID", "TINY_VOCAB", "build_tiny_model"]
