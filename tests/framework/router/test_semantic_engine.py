"""Semantic high-stakes routes in the engine: fast with the hashing embedder, slow with EmbeddingGemma."""

from __future__ import annotations

from pathlib import Path

import pytest
from router_helpers import PUBLIC, EngineFactory

from edgeroute.framework.errors import ConfigurationError
from edgeroute.framework.testing.hashing import HashingEmbedder
from edgeroute.policies.semantic import SemanticRoutes, fit_thresholds

MEDICAL = [
    "dosage of ibuprofen for a child",
    "ibuprofen dosage child fever",
    "child medicine dosage ibuprofen",
]
NORMAL = ["running shoes warranty", "espresso machine price", "mountain bikes comfort"]


def test_a_semantic_high_stakes_match_escalates_to_hybrid(make_engine: EngineFactory) -> None:
    edge = HashingEmbedder(128)
    routes = SemanticRoutes(
        {"medical": edge.embed_queries(MEDICAL)}, negatives=edge.embed_queries(NORMAL), default_threshold=0.5
    )
    engine = make_engine(semantic_routes=routes)
    engine.ingest(PUBLIC)
    hit = engine.retrieve("ibuprofen dosage for my child", k=3)
    assert hit.decision.route.value == "hybrid" and "stakes.semantic" in hit.decision.codes
    miss = engine.retrieve("running shoes buying guide part 0: comfort, price and warranty", k=3)
    assert "stakes.semantic" not in miss.decision.codes


def test_routes_of_another_dimension_are_a_configuration_error(make_engine: EngineFactory) -> None:
    routes = SemanticRoutes({"medical": HashingEmbedder(64).embed_queries(MEDICAL)})
    engine = make_engine(semantic_routes=routes)
    engine.ingest(PUBLIC)
    with pytest.raises(ConfigurationError, match="same model and dims"):
        engine.retrieve("ibuprofen")


MODEL_DIR = Path.home() / ".cache" / "edgeroute" / "models" / "embeddinggemma-300m"


@pytest.mark.slow
def test_real_embeddinggemma_engine_routes_and_fuses(make_engine: EngineFactory) -> None:
    from edgeroute.framework.edge.embedder import EdgeEmbedder
    from edgeroute.framework.router.engine import HybridEngine
    from edgeroute.framework.router.policy_files import load_high_stakes_set

    edge = EdgeEmbedder.load(MODEL_DIR if MODEL_DIR.is_dir() else None)
    texts, labels = load_high_stakes_set()
    vecs = edge.embed_queries(texts)
    fit = fit_thresholds(vecs, labels, min_precision=0.9, top_k=3)
    routes = SemanticRoutes.from_labelled(vecs, labels, thresholds=fit.thresholds)
    base = make_engine()
    engine = HybridEngine(
        base.store, "real", edge=edge, cloud=base.cloud, audit=base.audit, semantic_routes=routes
    )
    engine.ingest(PUBLIC)
    result = engine.retrieve("How many ibuprofen tablets can I take in one day?", k=3)
    assert "stakes.semantic" in result.decision.codes and result.decision.route.value == "hybrid"
    # The same question about a child names the child's age: a PII finding, and privacy outranks stakes.
    child = engine.retrieve("How many ibuprofen tablets can my 6 year old take?", k=3)
    assert child.decision.route.value == "edge" and "privacy.pii" in child.decision.codes
    plain = engine.retrieve("espresso machines buying guide: comfort, price and warranty", k=3)
    assert plain.hits[0].id.startswith("pub-") and "espresso" in plain.hits[0].text
    assert plain.hits[0].space == edge.space.fingerprint or plain.decision.route.value == "hybrid"
    engine.close()
