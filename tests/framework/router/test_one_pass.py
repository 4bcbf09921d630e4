"""One model pass per changed document: findings come with the embedding, are stored by content hash
and detector version, and the drain and re-indexing reuse them (no model pass). Privacy by what the
emulator received."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from router_helpers import PUBLIC, WITH_PII, EngineFactory, leaked

from edgeroute.framework.documents import Document
from edgeroute.framework.embedder import Vectors
from edgeroute.framework.pii import PiiDetector
from edgeroute.framework.pii.patterns import Span
from edgeroute.framework.router.outbox import Outbox
from edgeroute.framework.testing.emulator import GeminiEmulator
from edgeroute.framework.testing.hashing import HashingEmbedder
from edgeroute.policies.config import PolicyConfig
from edgeroute.policies.signals import PiiFinding

NAMED = Document("named-1", "Our returns desk lead Joan Marlow signed off the refund", sensitivity="public")
"""PII only the entity "head" of :class:`OnePass` finds (the name), not the pattern layer."""


class OnePass(PiiDetector):
    """The one-pass detector with a stand-in head: embedding texts through a hashing embedder (counted),
    entities from a fixed list of names; every other detection pass is counted too."""

    def __init__(self, edge: HashingEmbedder) -> None:
        super().__init__(PolicyConfig())
        self.edge = edge
        self.passes = 0  # documents embedded with their findings
        self.detected = 0  # texts through detect_batch (a detection pass of its own)

    @property
    def one_pass(self) -> bool:
        return True

    @property
    def entities_available(self) -> bool:
        return True

    async def aembed_documents_with_findings(
        self,
        texts: Sequence[str],
        titles: Sequence[str | None],
        dims: int | None = None,
        patterns: Sequence[list[Span]] | None = None,
    ) -> tuple[Vectors, list[tuple[PiiFinding, ...]]]:
        self.passes += len(texts)
        vecs = await self.edge.aembed_documents(list(texts), titles=list(titles), dims=dims)
        return vecs, [self._named("\n".join(filter(None, [ti, t]))) for t, ti in zip(texts, titles, strict=True)]

    def detect_batch(self, texts: Sequence[str]) -> list[tuple[PiiFinding, ...]]:
        self.detected += len(texts)
        return [self._named(t) for t in texts]

    def _named(self, text: str) -> tuple[PiiFinding, ...]:
        found = list(self.pattern_findings(text))
        if (i := text.find("Joan Marlow")) >= 0:
            found.append(PiiFinding("person", i, i + len("Joan Marlow"), "entities", 0.99))
        return tuple(sorted(found, key=lambda f: f.start))


class Counting(HashingEmbedder):
    embedded = 0

    async def aembed_documents(self, texts, *, titles=None, dims=None):  # type: ignore[no-untyped-def]
        self.embedded += len(texts)
        return await super().aembed_documents(texts, titles=titles, dims=dims)


def _engine(make_engine: EngineFactory, tmp_path: Path, **kw: object) -> tuple[object, OnePass]:
    edge = Counting(128)
    det = OnePass(edge)
    engine = make_engine(pii_detector=det, outbox_path=tmp_path / "outbox.db", **kw)
    return engine, det


def test_ingest_runs_one_pass_per_changed_document_and_none_to_reindex_or_drain(
    make_engine: EngineFactory, emu: GeminiEmulator, tmp_path: Path
) -> None:
    engine, det = _engine(make_engine, tmp_path, cloud=None)
    docs = [*PUBLIC, WITH_PII, NAMED]
    report = engine.ingest(docs)  # type: ignore[attr-defined]
    assert det.passes == len(docs) and det.detected == 0 and det.edge.embedded == len(docs)
    assert report.private == 2 and report.queued == len(PUBLIC)
    # The findings are stored with the outbox rows and for re-indexing, keyed by hash and version.
    rows = engine.outbox.pending("docs")  # type: ignore[attr-defined]
    assert {r.detector_version for r in rows} == {det.version} and all(r.findings == "[]" for r in rows)
    again = engine.ingest(docs)  # type: ignore[attr-defined]
    assert det.passes == len(docs) and det.detected == 0 and det.edge.embedded == len(docs)
    assert again.edge_unchanged == len(docs) and again.private == 2
    # One changed document: one pass, for it alone.
    changed = Document(PUBLIC[0].id, PUBLIC[0].text + " (updated)", sensitivity="public")
    engine.ingest([changed, *docs[1:]])  # type: ignore[attr-defined]
    assert det.passes == len(docs) + 1 and det.detected == 0


def test_the_drain_runs_no_model_pass_and_sends_nothing_private(
    make_engine: EngineFactory, emu: GeminiEmulator, tmp_path: Path
) -> None:
    engine, det = _engine(make_engine, tmp_path)
    engine.ingest([*PUBLIC, WITH_PII, NAMED])  # type: ignore[attr-defined]
    engine.sync()  # type: ignore[attr-defined]
    assert det.detected == 0  # the drain placed every row from its stored findings
    assert emu.requests and leaked(emu, [WITH_PII.text, NAMED.text, "Joan Marlow"]) == []
    assert engine.outbox.depth("docs") == 0  # type: ignore[attr-defined]


def test_a_new_detector_version_runs_detection_again_in_the_drain_and_at_reindex(
    make_engine: EngineFactory, emu: GeminiEmulator, tmp_path: Path
) -> None:
    engine, det = _engine(make_engine, tmp_path, cloud=None)
    docs = [*PUBLIC[:3], NAMED]
    engine.ingest(docs)  # type: ignore[attr-defined]
    det._version = "a-retrained-head"  # what a new head, rule set or PII setting does to the version
    # The drain: the rows' findings are from another version, so it detects again (and still keeps
    # the named document back: it was never queued).
    from edgeroute.framework.router.drain import _findings

    items = engine.outbox.pending("docs")  # type: ignore[attr-defined]
    from edgeroute.framework.aio import run_sync

    run_sync(_findings(engine, items))  # type: ignore[arg-type]
    assert det.detected == len(items) == 3
    # Re-indexing: nothing is embedded again (content unchanged), but each document gets one pass for
    # its findings under the new version, which are then stored: the next run costs nothing.
    # The report says so: nothing written, every document re-detected (a model pass each).
    passes = det.passes
    redo = engine.ingest(docs)  # type: ignore[attr-defined]
    assert det.passes == passes + len(docs) and det.edge.embedded == passes + len(docs)
    assert (redo.edge_written, redo.edge_unchanged, redo.edge_redetected) == (0, len(docs), len(docs))
    assert redo.to_dict()["edge_redetected"] == len(docs)
    report = engine.ingest(docs)  # type: ignore[attr-defined]
    assert det.passes == passes + len(docs) and report.private == 1 and report.edge_redetected == 0


def test_a_relabel_is_placed_again_from_stored_findings(
    make_engine: EngineFactory, emu: GeminiEmulator, tmp_path: Path
) -> None:
    engine, det = _engine(make_engine, tmp_path)
    doc = Document("r-1", "Shipping rules for trail cameras, public edition", sensitivity="public")
    engine.ingest([doc, *PUBLIC[:2]])  # type: ignore[attr-defined]
    cloud = engine.open_index("cloud")  # type: ignore[attr-defined]
    assert cloud is not None and [r.id for r in cloud.get(["r-1"])] == ["r-1"]
    sent = emu.request_count
    secret = Document(doc.id, doc.text, sensitivity="confidential")
    report = engine.ingest([secret, *PUBLIC[:2]])  # type: ignore[attr-defined]
    assert report.private == 1 and det.detected == 0 and det.passes == 3  # no pass for the relabel
    assert cloud.get(["r-1"]) == [] and emu.request_count == sent


def test_an_outbox_from_the_previous_release_gains_the_findings_columns_and_its_rows_are_detected(
    make_engine: EngineFactory, emu: GeminiEmulator, tmp_path: Path
) -> None:
    path = tmp_path / "outbox.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, collection TEXT NOT NULL, "
        "doc_id TEXT NOT NULL, content_hash TEXT NOT NULL, payload TEXT NOT NULL, enqueued_at REAL NOT NULL, "
        "attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, UNIQUE (collection, doc_id));"
    )
    db.close()
    with Outbox(path) as old:
        old.enqueue("docs", [NAMED, PUBLIC[0]])  # queued as an older release did: no findings
        old._exec("UPDATE outbox SET findings = NULL, detector_version = NULL")
        assert {r.findings for r in old.pending("docs")} == {None}
    engine, det = _engine(make_engine, tmp_path)
    engine.sync()  # type: ignore[attr-defined]
    assert det.detected == 2  # no stored findings: detected in the drain, as before
    assert leaked(emu, [NAMED.text, "Joan Marlow"]) == [] and emu.request_count >= 1
