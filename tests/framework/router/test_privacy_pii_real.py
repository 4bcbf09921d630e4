"""The issue's two leaks, replayed with the real model: neither reaches the emulator with default settings.

Slow: the real EmbeddingGemma (with token-state outputs) embeds and detects on-device; the unmodified
google-genai client talks to the recording emulator, whose log is the proof.
"""

from __future__ import annotations

import pytest
from model_helpers import token_state_edge
from router_helpers import leaked, make_cloud

from edgeroute.framework.documents import Document
from edgeroute.framework.edge.embedder import EdgeEmbedder
from edgeroute.framework.router.audit import AuditLog
from edgeroute.framework.router.engine import HybridEngine
from edgeroute.framework.store.chroma import VectorStore
from edgeroute.framework.testing.emulator import GeminiEmulator

pytestmark = pytest.mark.slow

CLINIC_NOTE = (
    "Patient John Whitaker, 58, of 221 Baker Road, Apt 4B, Columbus, Ohio 43215 was seen in clinic today "
    "for review of imaging. Diagnosis: stage II non-small-cell lung cancer"
)
QUERY = "Patient Maria Lopez, born 12/03/1961, lives at 14 Elm Street, Springfield — what is her prognosis?"
PRIVATE = [CLINIC_NOTE, QUERY, "Whitaker", "221 Baker Road", "Maria Lopez", "14 Elm Street", "12/03/1961"]


@pytest.fixture(scope="module")
def edge() -> EdgeEmbedder:
    return token_state_edge()


def test_the_clinic_note_and_the_query_never_reach_the_emulator(
    edge: EdgeEmbedder, emu: GeminiEmulator
) -> None:
    engine = HybridEngine(
        VectorStore.ephemeral(), "clinic", edge=edge, cloud=make_cloud(emu), audit=AuditLog(None)
    )
    try:
        public = Document("pub-1", "Lung cancer staging: stage II tumours have not spread to distant organs.")
        engine.ingest([Document("note-1", CLINIC_NOTE), public])  # no label: internal, the cloud ceiling
        engine.sync()
        result = engine.retrieve(QUERY, k=2, stakes="high")
        assert result.decision.route.value == "edge"
        assert "privacy.pii" in result.decision.codes
        reasons = " ".join(str(r) for r in result.decision.reasons)
        assert "person" in reasons and "Lopez" not in reasons and "Elm" not in reasons  # kinds, never text
        engine.retrieve(
            "how are lung tumours staged", k=2, stakes="high"
        )  # a clean query may go to the cloud
        engine.sync()
    finally:
        engine.close()
    assert emu.requests, "the public document and query should have reached the emulator"
    assert leaked(emu, PRIVATE) == []


PROSE = "Takuya Takagi scored the winner in the 88th minute."
"""A name in ordinary prose, no pattern-shaped identifier: only the retrained entity head can see it."""


def test_a_name_in_prose_never_reaches_the_emulator_as_a_query_or_a_document(
    edge: EdgeEmbedder, emu: GeminiEmulator
) -> None:
    engine = HybridEngine(VectorStore.ephemeral(), "news", edge=edge, cloud=make_cloud(emu), audit=AuditLog(None))
    try:
        assert engine.pii.head is not None and "document" in engine.pii.head.prompts  # the retrained head
        engine.ingest([Document("match-1", PROSE), Document("pub-1", "Football matches last ninety minutes.")])
        engine.sync()
        result = engine.retrieve(PROSE, k=2, stakes="high")
        assert result.decision.route.value == "edge" and "privacy.pii" in result.decision.codes
        engine.sync()
    finally:
        engine.close()
    assert emu.requests, "the public document should have reached the emulator"
    assert leaked(emu, [PROSE, "Takuya", "Takagi"]) == []
