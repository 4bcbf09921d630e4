"""The PII head on the real EmbeddingGemma model: the issue's examples, one forward pass, no drift.

Slow (real model). The model directory must have token-state outputs (graph version 3: run
scripts/prepare-model, which upgrades an older export in place).
"""

from __future__ import annotations

import numpy as np
import pytest
from model_helpers import token_state_edge

from edgeroute.framework.edge.embedder import EdgeEmbedder
from edgeroute.framework.pii import PiiDetector
from edgeroute.policies.config import PolicyConfig

pytestmark = pytest.mark.slow

CLINIC_NOTE = (
    "Patient John Whitaker, 58, of 221 Baker Road, Apt 4B, Columbus, Ohio 43215 was seen for follow-up. "
    "Diagnosis: stage II non-small-cell lung cancer"
)
QUERY = "Patient Maria Lopez, born 12/03/1961, lives at 14 Elm Street, Springfield — what is her prognosis?"


@pytest.fixture(scope="module")
def edge() -> EdgeEmbedder:
    return token_state_edge()


@pytest.fixture(scope="module")
def detector(edge: EdgeEmbedder) -> PiiDetector:
    return PiiDetector(PolicyConfig(), embedder=edge)


def _kinds(text: str, found: tuple) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in found:
        out.setdefault(f.kind, []).append(text[f.start : f.end])
    return out


def test_the_issue_examples_are_found(detector: PiiDetector) -> None:
    note = _kinds(CLINIC_NOTE, detector.detect(CLINIC_NOTE))
    assert any("Whitaker" in v for v in note.get("person", [])), note
    assert any("Baker Road" in v for v in note.get("street_address", [])), note
    query = _kinds(QUERY, detector.detect(QUERY))
    assert any("Lopez" in v for v in query.get("person", [])), query
    assert any("Elm Street" in v for v in query.get("street_address", [])), query
    assert any("1961" in v for v in query.get("date", [])), query


def test_query_vector_and_findings_come_from_one_pass_and_match_plain_embedding(
    edge: EdgeEmbedder, detector: PiiDetector
) -> None:
    vec, found = detector.embed_query(QUERY)
    assert np.allclose(vec, edge.embed_queries([QUERY]), atol=1e-6)  # the extra outputs change nothing
    assert {"person", "street_address"} <= {f.kind for f in found}


def test_plain_questions_stay_clean(detector: PiiDetector) -> None:
    for text in (
        "what are the side effects of metformin?",
        "¿Cuál es la mejor manera de aprender a nadar?",  # a place name would be a finding (docs/pii.md)
        "how do glaciers store fresh water",
    ):
        assert detector.detect(text) == (), text


def test_spanish_clinical_note_is_found(detector: PiiDetector) -> None:
    text = "Paciente Carmen Ruiz Ortega, de 67 años, con domicilio en Calle Mayor 12, Zaragoza. Diagnóstico: EPOC."
    kinds = _kinds(text, detector.detect(text))
    assert "person" in kinds, kinds


async def test_served_query_findings_from_the_batched_pass_match_the_detector_alone(
    edge: EdgeEmbedder,
) -> None:
    """The service's path (findings read on the inference thread after a batched pass) gives the
    vectors and findings of the detector on its own, for concurrent queries."""
    import asyncio

    from edgeroute.framework.serve.batcher import MicroBatcher

    batcher = MicroBatcher(edge, max_batch=8, max_wait_ms=50, in_flight=lambda: 3)
    served = PiiDetector(PolicyConfig(), embedder=batcher)  # type: ignore[arg-type]
    alone = PiiDetector(PolicyConfig(), embedder=edge)
    texts = [QUERY, "red running shoes under 100 dollars", "mail maria.lopez@example.org about the scan"]
    got = await asyncio.gather(*(served.aembed_query(t) for t in texts))
    assert batcher.stats.batches == 1  # one model call for the three
    for t, (vec, found) in zip(texts, got, strict=True):
        want_vec, want_found = alone.embed_query_batch(t)
        assert float(vec[0] @ want_vec[0]) > 0.9999
        assert [(f.kind, f.start, f.end) for f in found] == [(f.kind, f.start, f.end) for f in want_found]
    assert "person" in _kinds(QUERY, got[0][1])
    await batcher.aclose()
