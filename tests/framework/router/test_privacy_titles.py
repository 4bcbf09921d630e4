"""Chunks of one file share a title: PII in one chunk keeps that chunk home, not its siblings."""

from __future__ import annotations

from router_helpers import EngineFactory, leaked

from edgeroute.framework.documents import Document
from edgeroute.framework.testing.emulator import GeminiEmulator

TITLE = "Customer support handbook for the returns desk"
SIBLINGS = [
    Document(f"handbook#{i}", f"Returns desk procedure step {i}: check the receipt and the box", title=TITLE)
    for i in range(4)
]
PII_CHUNK = Document("handbook#9", "Escalations go to the owner at jane.roe@example.org", title=TITLE)
SECRET = Document(
    "heron#0",
    "The acquisition closes in February",
    title="Project Heron board minutes",
    sensitivity="restricted",
)


def test_pii_chunk_stays_home_and_its_siblings_reach_the_cloud(
    make_engine: EngineFactory, emu: GeminiEmulator
) -> None:
    engine = make_engine()
    report = engine.ingest([*SIBLINGS, PII_CHUNK])
    assert report.private == 1
    assert report.cloud.written == len(SIBLINGS) and report.queued == 0
    assert leaked(emu, [PII_CHUNK.text]) == []


def test_a_restricted_documents_title_never_leaves(make_engine: EngineFactory, emu: GeminiEmulator) -> None:
    engine = make_engine()
    engine.ingest([SECRET])
    same_title = Document(
        "heron#1", "Catering for the board meeting", title=SECRET.title, sensitivity="public"
    )
    report = engine.ingest([same_title])
    assert report.cloud.refused == 1 and report.cloud.written == 0
    assert leaked(emu, [str(SECRET.title), SECRET.text]) == []
