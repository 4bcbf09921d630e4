"""One forward pass per changed document with the real model: the vector and the entity findings come
from the same pass (document prompt), re-indexing runs none, the drain runs none, and a name only the
head sees never reaches the emulator. Slow: the real EmbeddingGemma with token-state outputs."""

from __future__ import annotations

import numpy as np
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

PROSE = "Takuya Takagi scored the winner in the 88th minute."
TITLED = Document("t-1", "The dates moved to spring; see the notes below.", title="Letter from Jane Whitcombe")
PUBLIC = [
    Document("pub-1", "Football matches last ninety minutes.", sensitivity="public"),
    Document("pub-2", "A corner kick is taken from the corner arc.", sensitivity="public", title="Rules"),
]


@pytest.fixture(scope="module")
def edge() -> EdgeEmbedder:
    return token_state_edge()


def test_one_pass_per_changed_document_none_at_reindex_or_in_the_drain(
    edge: EdgeEmbedder, emu: GeminiEmulator
) -> None:
    engine = HybridEngine(VectorStore.ephemeral(), "news", edge=edge, cloud=make_cloud(emu), audit=AuditLog(None))
    docs = [Document("match-1", PROSE, sensitivity="public"), TITLED, *PUBLIC]
    try:
        assert engine.pii.one_pass
        before = edge.model_texts
        report = engine.ingest(docs)  # drains at once: the cloud is up
        assert edge.model_texts - before == len(docs)  # one pass each; the drain ran none
        assert report.private == 2 and report.cloud.written == len(PUBLIC)
        again = engine.ingest(docs)
        assert edge.model_texts - before == len(docs) and again.edge_unchanged == len(docs)
    finally:
        engine.close()
    assert leaked(emu, [PROSE, "Takuya", "Takagi", TITLED.text, "Whitcombe"]) == []


def test_the_one_pass_vector_is_the_plain_embedding_and_title_entities_are_found(edge: EdgeEmbedder) -> None:
    texts, titles = [PROSE, TITLED.text], [None, TITLED.title]
    vecs, text_states, title_states = edge.embed_documents_with_token_states(texts, titles)
    assert int(text_states[0].offsets.max()) <= len(PROSE) and len(text_states[0].offsets) > 5
    assert np.allclose(vecs, edge.embed_documents(texts, titles=titles), atol=1e-5)
    assert title_states[0] is None and title_states[1] is not None
    assert int(title_states[1].offsets.max()) <= len(TITLED.title or "")
    engine = HybridEngine(VectorStore.ephemeral(), "titles", edge=edge, audit=AuditLog(None))
    try:
        _, found = engine.pii.embed_documents_with_findings(texts, titles)
    finally:
        engine.close()
    pii_text = f"{TITLED.title}\n{TITLED.text}"
    assert any(pii_text[f.start : f.end].startswith("Jane") for f in found[1]), found[1]
    assert any(PROSE[f.start : f.end].startswith("Takuya") for f in found[0]), found[0]
