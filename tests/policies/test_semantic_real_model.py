"""Threshold fitting on the shipped high-stakes set with the real EmbeddingGemma checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeroute.framework.router.policy_files import load_high_stakes_set
from edgeroute.policies.semantic import SemanticRoutes, fit_thresholds

CHECKPOINT = Path("/root/.cache/edgeroute-dev/embeddinggemma-300m")
QUERY_PROMPT = "task: search result | query: "


@pytest.mark.slow
def test_fit_on_embeddinggemma_meets_the_precision_floor() -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(CHECKPOINT), device="cpu")
    texts, labels = load_high_stakes_set()
    vecs = model.encode(texts, prompt=QUERY_PROMPT, normalize_embeddings=True, batch_size=16)
    fit = fit_thresholds(vecs, labels, min_precision=0.9, top_k=3)
    # Leave-one-out on 135 examples (72 high stakes); measured 0.98 precision, 0.75 recall.
    assert fit.overall["precision"] >= 0.9
    assert fit.overall["recall"] >= 0.6
    routes = SemanticRoutes.from_labelled(vecs, labels, thresholds=fit.thresholds)
    probe = model.encode(
        ["How many ibuprofen tablets can my 6 year old take?", "What's a good name for a cat?"],
        prompt=QUERY_PROMPT,
        normalize_embeddings=True,
    )
    high, normal = routes.match_many(probe)
    assert high.name == "medical"
    assert normal.name is None
