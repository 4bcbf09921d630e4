"""A randomly initialised two-layer Gemma3 encoder, exported by the project's own dynamo exporter.

Same architecture as EmbeddingGemma (bidirectional attention, one sliding-window and one global
layer, three query heads over one key/value head, per-head q/k RMSNorm, two rotary bases), shrunk
so that export takes seconds. Used to check graph rewrites on the exporter's real node layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

SLIDING_WINDOW = 4
VOCAB = 96


def export_tiny_gemma(out_file: Path, *, seed: int = 0) -> Any:
    """Export to ``out_file``; returns a function ``(ids, mask) -> torch embeddings`` as numpy."""
    import torch
    from transformers import Gemma3TextConfig, Gemma3TextModel

    from edgeroute.framework.edge.export.exporter import export_fp32_onnx

    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        vocab_size=VOCAB,
        hidden_size=48,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=3,
        num_key_value_heads=1,
        head_dim=16,
        layer_types=["sliding_attention", "full_attention"],
        sliding_window=SLIDING_WINDOW,
        use_bidirectional_attention=True,
        query_pre_attn_scalar=16,
        max_position_embeddings=64,
        rope_theta=1_000_000.0,
        rope_local_base_freq=10_000.0,
        pad_token_id=0,
    )
    encoder = Gemma3TextModel(config).eval()
    with torch.no_grad():  # random norms: the defaults (zeros, i.e. weight 1) would hide a swapped weight
        for name, p in encoder.named_parameters():
            if "norm" in name:
                p.normal_(0.0, 0.3)

    class MeanPooled(torch.nn.Module):  # the shape of a sentence-transformers model's forward
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, features: dict[str, Any]) -> dict[str, Any]:
            mask = features["attention_mask"]
            hidden = self.encoder(input_ids=features["input_ids"], attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1)
            return {"sentence_embedding": torch.nn.functional.normalize(pooled, dim=-1)}

    model = MeanPooled().eval()
    export_fp32_onnx(model, out_file)

    def reference(ids: np.ndarray[Any, Any], mask: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        with torch.no_grad():
            out = model({"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)})
        result: np.ndarray[Any, Any] = out["sentence_embedding"].numpy()
        return result

    return reference
