"""Dead letters: documents the cloud can never accept stop being sent, stay visible and can be retried;
an outbox file written by the previous release keeps working."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from router_helpers import EngineFactory

from edgeroute.framework.documents import Document
from edgeroute.framework.errors import (
    CloudAuthError,
    CloudRejectedError,
    CloudUnavailableError,
    ConfigurationError,
    InputError,
)
from edgeroute.framework.router.engine import HybridEngine
from edgeroute.framework.router.failures import error_kind
from edgeroute.framework.router.outbox import Outbox
from edgeroute.framework.router.reports import SyncReport
from edgeroute.framework.serve.metrics import Metrics
from edgeroute.framework.testing.emulator import GeminiEmulator

# About 9,400 tokens: under the client's "clearly over" check (10,240), over the model's 8,192.
OVER_LIMIT = "shipping policy words " * 1710
GOOD = [
    Document(f"ok-{i}", f"return window rule {i}: thirty days with a receipt", sensitivity="public")
    for i in range(3)
]


def _queued_by_an_earlier_release(engine: HybridEngine, docs: list[Document]) -> SyncReport:
    """Rows as the previous release queued them: it let over-limit documents into the outbox (ingest now
    refuses them before anything is written), so a drain must dead-letter what is already there."""
    engine.outbox.enqueue(engine.name, docs)
    return engine.sync()


def _state(box: Outbox, doc_id: str) -> tuple[str, int, str | None, str | None]:
    row = box._db.execute(
        "SELECT state, attempts, error_kind, last_error FROM outbox WHERE doc_id = ?", (doc_id,)
    ).fetchone()
    return row[0], row[1], row[2], row[3]


def test_errors_are_sorted_into_the_documents_own_permanent_ones_and_the_rest() -> None:
    assert error_kind(InputError("too long")) == "permanent"
    assert error_kind(CloudRejectedError("x", status_code=400, status="INVALID_ARGUMENT")) == "permanent"
    assert error_kind(CloudRejectedError("x", status_code=413)) == "permanent"
    # The configuration's fault, not the document's: a fixed key or model id makes it work.
    assert error_kind(CloudAuthError("bad key", status_code=400, status="INVALID_ARGUMENT")) == "transient"
    assert error_kind(CloudRejectedError("no such model", status_code=404, status="NOT_FOUND")) == "transient"
    assert error_kind(CloudUnavailableError("503", status_code=503)) == "transient"
    assert error_kind(RuntimeError("boom")) == "transient"


def test_emulator_refuses_one_input_over_the_token_limit_as_gemini_does(
    make_engine: EngineFactory, emu: GeminiEmulator
) -> None:
    engine = make_engine()
    with pytest.raises(CloudRejectedError) as info:
        engine.cloud.embed_documents([OVER_LIMIT])  # type: ignore[union-attr]
    assert info.value.status_code == 400 and info.value.status == "INVALID_ARGUMENT"
    assert "exceeds the maximum number of tokens allowed (8192)" in str(info.value)


def test_a_refused_document_is_isolated_from_its_batch_then_dead_lettered_and_no_longer_sent(
    make_engine: EngineFactory, emu: GeminiEmulator
) -> None:
    engine = make_engine(outbox=Outbox(max_attempts=3, retry_base_s=0))
    first = _queued_by_an_earlier_release(engine, [Document("long", OVER_LIMIT, sensitivity="public"), *GOOD])
    # The good documents of the refused batch were sent alone and stored; only the long one was charged.
    cloud = engine.open_index("cloud")
    assert cloud is not None and sorted(cloud.ids()) == ["ok-0", "ok-1", "ok-2"]
    assert first.failed == 1 and first.written == 3
    assert _state(engine.outbox, "long")[:3] == ("pending", 1, "permanent")
    assert "INVALID_ARGUMENT" in (_state(engine.outbox, "long")[3] or "")
    engine.sync()
    engine.sync()
    state, attempts, kind, _ = _state(engine.outbox, "long")
    assert (state, attempts, kind) == ("dead", 3, "permanent")
    status = engine.status()
    assert status["outbox_dead"] == 1 and status["outbox_depth"] == 0
    assert "token" in (status["outbox_dead_error"] or "")
    assert status["outbox"]["dead_by_collection"] == {"docs": 1}
    # Kept, never leased again: an idle drain makes no cloud call at all.
    sent = emu.request_count
    for _ in range(5):
        report = engine.sync()
    assert emu.request_count == sent
    assert report.dead == 1 and not report.complete and report.failed == 0
    assert "long" in engine.outbox.queued("docs")  # a document of the collection: delete --source sees it
    # --retry-dead: back in the queue with a clean count; refused again, it is charged again.
    assert engine.outbox.retry_dead("docs") == 1
    assert engine.outbox.dead_count() == 0 and engine.outbox.depth("docs") == 1
    engine.sync()
    assert _state(engine.outbox, "long")[:2] == ("pending", 1)


def test_a_changed_document_gets_a_fresh_start_and_a_deleted_dead_letter_is_gone(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(outbox=Outbox(max_attempts=1, retry_base_s=0))
    _queued_by_an_earlier_release(
        engine,
        [
            Document("long", OVER_LIMIT, sensitivity="public"),
            Document("long2", OVER_LIMIT + "x", sensitivity="public"),
        ],
    )
    assert engine.outbox.dead_count() == 2
    engine.ingest([Document("long", "now chunked: a short text", sensitivity="public")])
    assert engine.outbox.dead_count() == 1
    cloud = engine.open_index("cloud")
    assert cloud is not None and cloud.ids() == ["long"]
    assert engine.delete(["long2"]).queued == 1
    assert engine.outbox.dead_count() == 0


def test_client_side_refusals_dead_letter_without_any_network_call(
    make_engine: EngineFactory, emu: GeminiEmulator
) -> None:
    engine = make_engine(outbox=Outbox(max_attempts=3, retry_base_s=0))
    far_over = "word " * 60_000  # the client's own check refuses it: no request leaves
    report = _queued_by_an_earlier_release(
        engine, [Document("huge", far_over, sensitivity="public"), GOOD[0]]
    )
    # Dead at once: the same local check would refuse it every time. Its batch-mate is sent.
    assert _state(engine.outbox, "huge")[:3] == ("dead", 1, "permanent")
    assert report.written == 1 and report.dead == 1
    assert emu.request_count == 1


def test_transient_failures_back_off_and_never_dead_letter(
    make_engine: EngineFactory, emu: GeminiEmulator
) -> None:
    box = Outbox(max_attempts=1, retry_base_s=30)
    engine = make_engine(outbox=box)
    emu.set_faults(1.0, ["503"])
    engine.ingest([GOOD[0]])
    assert _state(box, "ok-0")[:3] == ("pending", 1, "transient")
    engine.sync()  # the first retry is not delayed
    assert _state(box, "ok-0")[:3] == ("pending", 2, "transient")
    sent = emu.request_count
    report = engine.sync()  # now it waits out its backoff: nothing is claimed, nothing sent
    assert emu.request_count == sent and report.remaining == 1 and box.dead_count() == 0
    emu.set_faults(0.0)
    box._db.execute("UPDATE outbox SET next_attempt_at = 0")  # the backoff has passed
    assert engine.sync().complete


def test_the_attempt_limit_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEROUTE_OUTBOX_MAX_ATTEMPTS", "7")
    assert Outbox().max_attempts == 7
    monkeypatch.setenv("EDGEROUTE_OUTBOX_MAX_ATTEMPTS", "zero")
    with pytest.raises(ConfigurationError, match="EDGEROUTE_OUTBOX_MAX_ATTEMPTS"):
        Outbox()


# The outbox schema of the previous release, verbatim: its files must open, migrate and drain.
_RELEASED_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    collection TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    payload TEXT NOT NULL,
    enqueued_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    lease_owner TEXT,
    lease_until REAL NOT NULL DEFAULT 0,
    UNIQUE (collection, doc_id)
);
CREATE TABLE IF NOT EXISTS tombstones (
    collection TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    removed_at REAL NOT NULL,
    PRIMARY KEY (collection, doc_id)
);
"""


def _released_outbox(path: Path, docs: list[Document]) -> None:
    from edgeroute.framework.router.outbox_schema import document_to_json

    db = sqlite3.connect(path)
    db.executescript(_RELEASED_SCHEMA)
    db.executemany(
        "INSERT INTO outbox (collection, doc_id, content_hash, payload, enqueued_at, attempts, last_error) "
        "VALUES ('docs', ?, ?, ?, 1.0, 2, 'CloudUnavailableError: 503')",
        [(d.id, d.content_hash(), document_to_json(d)) for d in docs],
    )
    db.commit()
    db.close()


def test_an_outbox_written_by_the_previous_release_is_migrated_in_place_and_drains(
    tmp_path: Path, make_engine: EngineFactory
) -> None:
    path = tmp_path / "outbox.sqlite"
    _released_outbox(path, GOOD)
    with Outbox(path, read_only=True) as ro:  # a reader copies it, and changes nothing on disk
        assert ro.depth("docs") == 3 and ro.stats()["dead"] == 0
    engine = make_engine(outbox=Outbox(path))
    columns = {row[1] for row in sqlite3.connect(path).execute("PRAGMA table_info(outbox)")}
    assert {"state", "generation", "error_kind", "next_attempt_at"} <= columns
    assert [i.attempts for i in engine.outbox.pending("docs")] == [2, 2, 2]
    assert engine.sync().complete
    cloud = engine.open_index("cloud")
    assert cloud is not None and sorted(cloud.ids()) == ["ok-0", "ok-1", "ok-2"]


def test_metrics_show_dead_letters_per_collection() -> None:
    metrics = Metrics(lambda: {"outbox_depth": 4, "outbox_dead": {"acme__docs": 2, "beta__faq": 1}})
    text = metrics.render().decode()
    assert 'edgeroute_outbox_dead{collection="acme__docs"} 2.0' in text
    assert 'edgeroute_outbox_dead{collection="beta__faq"} 1.0' in text
