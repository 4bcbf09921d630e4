"""The Batch API drain with the unmodified google-genai SDK against the loopback emulator's batch routes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from router_helpers import CONFIDENTIAL, PUBLIC, WITH_PII, EngineFactory, leaked, make_cloud

from edgeroute.framework.cloud.pricing import PriceTable
from edgeroute.framework.documents import Document
from edgeroute.framework.errors import InputError
from edgeroute.framework.router.audit import AuditLog
from edgeroute.framework.router.engine import HybridEngine
from edgeroute.framework.router.reports import BatchSyncReport
from edgeroute.framework.testing.emulator import GeminiEmulator
from edgeroute.framework.testing.emulator_batch import BatchScript

FAST = {"poll_interval_s": 0.01}


def _queued(make_engine: EngineFactory, docs: list[Document] = PUBLIC, **kw: object) -> HybridEngine:
    """An engine whose documents were ingested with the cloud offline: edge done, cloud rows queued."""
    engine = make_engine(**kw)
    assert engine.cloud is not None
    engine.cloud.offline = True
    engine.ingest(docs)
    engine.cloud.offline = False
    assert engine.outbox.depth(engine.name) == len(
        [d for d in docs if d.sensitivity == "public" and d is not WITH_PII]
    )
    return engine


def _sent_texts(emu: GeminiEmulator) -> Counter[str]:
    """Every text part that went out in a batch create, counted."""
    return Counter(p["text"] for job in emu.batches.created for item in job["parts"] for p in item)


def _interactive_calls(emu: GeminiEmulator) -> int:
    return sum(1 for r in emu.requests if str(r["path"]).endswith(":batchEmbedContents"))


def test_happy_path_writes_every_document_once_in_jobs_of_bounded_size(
    make_engine: EngineFactory, emu: GeminiEmulator, tmp_path: Path
) -> None:
    engine = _queued(make_engine, audit=AuditLog(tmp_path / "audit.jsonl"))
    report = engine.batch_drain(job_size=5, **FAST)
    assert isinstance(report, BatchSyncReport)
    assert (report.written, report.failed, report.remaining, report.jobs_open) == (12, 0, 0, 0)
    assert report.complete and report.fallback is None
    assert report.jobs_submitted == report.jobs_done == 3  # 5 + 5 + 2
    assert [len(job["parts"]) for job in emu.batches.created] == [5, 5, 2]
    col = engine.open_index("cloud")
    assert col is not None and col.count() == 12
    assert engine.outbox.depth() == 0 and engine.status()["batch_jobs_open"] == 0
    assert emu.batches.live == []  # every job deleted at the service once its results were stored
    assert set(_sent_texts(emu).values()) == {1} and len(_sent_texts(emu)) == 12
    assert _interactive_calls(emu) == 0
    jobs = [r for r in engine.audit.records() if r.get("purpose") == "index_batch"]
    assert [(r["outcome"], r["items"]) for r in jobs] == [("ok", 5), ("ok", 5), ("ok", 2)]
    assert all(r["tokens"] > 0 and r["bytes"] > 0 and r["cost_usd"] > 0 for r in jobs)
    # The same vectors as the interactive path: same prefix and title, same model, same dims.
    other = make_engine(collection="inter")
    other.ingest(PUBLIC)
    inter = other.open_index("cloud")
    assert inter is not None
    a = {r.id: r.vector for r in col.get([d.id for d in PUBLIC], include_vectors=True)}
    b = {r.id: r.vector for r in inter.get([d.id for d in PUBLIC], include_vectors=True)}
    for doc_id, vec in a.items():
        assert vec is not None and b[doc_id] is not None
        assert float(np.dot(vec, b[doc_id])) == pytest.approx(1.0, abs=1e-5)
    # Spend is counted at batch prices: half the standard price of the same tokens.
    assert engine.cloud is not None
    usage = engine.cloud.usage
    assert usage.requests == 12 and usage.cost_usd > 0
    assert usage.cost_usd == pytest.approx(PriceTable().cost(usage.tokens) / 2, rel=1e-9)


def test_a_slow_job_is_polled_to_completion_and_its_rows_stay_held(
    make_engine: EngineFactory, emu: GeminiEmulator
) -> None:
    engine = _queued(make_engine)
    emu.script_batches([BatchScript(polls=6)])
    first = engine.batch_drain(job_size=100, wait=False, **FAST)  # one round: submit, poll once
    assert (first.jobs_submitted, first.jobs_open, first.written) == (1, 1, 0)
    assert not first.complete and first.in_flight == 12
    name = emu.batches.live[0]
    assert emu.batches.state_of(name) == "BATCH_STATE_PENDING"
    # An interactive drain meanwhile sends nothing: the job holds the rows.
    inter = engine.drain()
    assert inter.written == 0 and _interactive_calls(emu) == 0
    again = engine.batch_drain(job_size=100, **FAST)
    assert again.jobs_submitted == 0 and again.jobs_done == 1 and again.written == 12
    assert again.polls >= 5 and again.complete
    gets = [p for m, p in emu.batches.calls if m == "GET" and p.endswith(name.split("/")[1])]
    assert len(gets) == 7  # 6 pending/running answers, then the end
    assert len(emu.batches.created) == 1


def test_failed_and_expired_jobs_return_their_rows_and_a_later_drain_retries_them(
    make_engine: EngineFactory, emu: GeminiEmulator
) -> None:
    engine = _queued(make_engine)
    emu.script_batches(["failed", BatchScript(outcome="expired", polls=2)])
    report = engine.batch_drain(job_size=6, **FAST)
    assert (report.jobs_failed, report.written, report.failed) == (2, 0, 12)
    assert not report.complete and "ended" in (report.error or "")
    assert engine.outbox.depth("docs") == 12 and engine.outbox.leased("docs") == 0
    assert {it.attempts for it in engine.outbox.pending("docs")} == {1}  # a transient attempt each
    assert engine.outbox.dead_count() == 0  # a failed job never makes a dead letter
    assert len(emu.batches.created) == 2 and emu.batches.live == []
    retry = engine.batch_drain(job_size=6, **FAST)
    assert (retry.written, retry.jobs_done, retry.remaining) == (12, 2, 0) and retry.complete
    col = engine.open_index("cloud")
    assert col is not None and col.count() == 12
    assert set(_sent_texts(emu).values()) == {2}  # each row in one failed job and one good one


def test_an_input_the_service_refuses_is_charged_a_permanent_attempt(
    make_engine: EngineFactory, emu: GeminiEmulator
) -> None:
    engine = _queued(make_engine)
    emu.script_batches([BatchScript(item_errors=(3,))])
    report = engine.batch_drain(job_size=100, **FAST)
    assert (report.written, report.failed, report.remaining) == (11, 1, 1)
    (left,) = engine.outbox.pending("docs")
    assert left.document.id == PUBLIC[3].id and left.attempts == 1 and left.error_kind == "permanent"


def test_nothing_private_or_pii_bearing_goes_into_a_job(
    make_engine: EngineFactory, emu: GeminiEmulator
) -> None:
    engine = _queued(make_engine)
    # Rows a bug (or an older release) queued: the drain's own screen must keep them home.
    secret = Document(
        "sec-1", "refund to IBAN GB82 WEST 1234 5698 7654 32 for the espresso order", sensitivity="public"
    )
    registered = Document(
        "reg-1", "A public-looking text that was marked private elsewhere", sensitivity="public"
    )
    engine.guard.add_text(registered.text)
    engine.outbox.enqueue("docs", [CONFIDENTIAL, WITH_PII, secret, registered])
    report = engine.batch_drain(job_size=4, **FAST)
    assert report.refused == 4 and report.written == 12 and report.remaining == 0
    private = [CONFIDENTIAL.text, WITH_PII.text, secret.text, registered.text]
    assert leaked(emu, private) == []
    assert not any(t in s for s in _sent_texts(emu) for t in private)
    col = engine.open_index("cloud")
    assert col is not None and col.get([CONFIDENTIAL.id, WITH_PII.id, secret.id, registered.id]) == []


def test_a_create_whose_answer_was_lost_is_found_by_name_not_submitted_again(
    make_engine: EngineFactory, emu: GeminiEmulator
) -> None:
    engine = _queued(make_engine)
    emu.script_batches([BatchScript(lose_answer=True, polls=1)])
    report = engine.batch_drain(job_size=100, **FAST)
    assert report.written == 12 and report.complete
    assert len(emu.batches.created) == 1  # found by its display name, polled, never resubmitted
    assert any(m == "GET" and p.endswith("/batches") for m, p in emu.batches.calls)


def test_a_model_without_a_batch_api_falls_back_to_the_interactive_path(
    make_engine: EngineFactory, emu: GeminiEmulator
) -> None:
    emu.batches.unsupported_models.add("gemini-embedding-2-preview")
    engine = _queued(make_engine)
    report = engine.batch_drain(job_size=5, **FAST)
    assert report.written == 12 and report.remaining == 0
    assert report.fallback is not None and "interactively" in report.fallback
    assert emu.batches.created == [] and _interactive_calls(emu) >= 1
    # A model the Gemini API offers no batches for is not even tried.
    old = _queued(make_engine, collection="old", cloud=make_cloud(emu, model="text-embedding-004"))
    calls = len(emu.batches.calls)
    again = old.batch_drain(job_size=5, **FAST)
    assert again.written == 12 and again.fallback is not None and "text-embedding-004" in again.fallback
    assert len(emu.batches.calls) == calls


def test_adrain_takes_the_batch_api_and_bad_options_fail_before_any_call(
    make_engine: EngineFactory, emu: GeminiEmulator
) -> None:
    engine = _queued(make_engine)
    with pytest.raises(InputError, match="job_size"):
        engine.batch_drain(job_size=0)
    with pytest.raises(InputError, match="max_jobs"):
        engine.batch_drain(max_jobs=101)
    assert emu.request_count == 0
    report = engine.drain(batch_api=True)  # the defaults; the emulator's job ends at the first look
    assert isinstance(report, BatchSyncReport)
    assert report.written == 12 and len(emu.batches.created) == 1 and _interactive_calls(emu) == 0


def test_documents_deleted_or_changed_while_in_a_job_get_the_last_word(
    make_engine: EngineFactory, emu: GeminiEmulator
) -> None:
    engine = _queued(make_engine)
    emu.script_batches([BatchScript(polls=3)])
    first = engine.batch_drain(job_size=100, wait=False, **FAST)
    assert first.jobs_open == 1
    gone, changed = PUBLIC[0], PUBLIC[1]
    engine.delete([gone.id])
    new = Document(changed.id, changed.text + " (revised: new warranty terms)", sensitivity="public")
    assert engine.cloud is not None
    engine.cloud.offline = True
    engine.ingest([new])
    engine.cloud.offline = False
    report = engine.batch_drain(job_size=100, **FAST)
    assert report.remaining == 0 and report.jobs_open == 0 and report.complete
    col = engine.open_index("cloud")
    assert col is not None and col.count() == 11
    assert col.get([gone.id]) == []
    (stored,) = col.get([changed.id])
    assert stored.text == new.text  # the stale result was not written; the new text went in a second job
    assert len(emu.batches.created) == 2 and [len(j["parts"]) for j in emu.batches.created] == [12, 1]


def test_titled_documents_get_the_same_vectors_as_the_interactive_path(
    make_engine: EngineFactory, emu: GeminiEmulator
) -> None:
    titled = [
        Document(
            f"t{i}",
            f"section {i} on descaling an espresso machine",
            title=f"Manual {i}",
            sensitivity="public",
        )
        for i in range(3)
    ]
    engine = _queued(make_engine, titled)
    assert engine.batch_drain(**FAST).written == 3
    other = make_engine(collection="inter")
    other.ingest(titled)
    col, inter = engine.open_index("cloud"), other.open_index("cloud")
    assert col is not None and inter is not None
    ids = [d.id for d in titled]
    a = {r.id: r.vector for r in col.get(ids, include_vectors=True)}
    b = {r.id: r.vector for r in inter.get(ids, include_vectors=True)}
    assert all(float(np.dot(a[i], b[i])) == pytest.approx(1.0, abs=1e-5) for i in ids)
    sent = _sent_texts(emu)
    assert all(f"title: Manual {i} | text: " in "".join(sent) for i in range(3))


def test_two_batch_drainers_at_once_put_each_row_in_one_job(
    make_engine: EngineFactory, emu: GeminiEmulator, tmp_path: Path
) -> None:
    import threading

    path = tmp_path / "outbox.sqlite"
    first = _queued(make_engine, outbox_path=path)
    second = make_engine(outbox_path=path)
    emu.batches.default = BatchScript(polls=2)
    reports: list[BatchSyncReport] = []
    threads = [
        threading.Thread(target=lambda e=e: reports.append(e.batch_drain(job_size=3, max_jobs=2, **FAST)))
        for e in (first, second)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(reports) == 2 and sum(r.written for r in reports) == 12
    assert set(_sent_texts(emu).values()) == {1} and len(_sent_texts(emu)) == 12
    col = first.open_index("cloud")
    assert col is not None and col.count() == 12 and first.outbox.depth() == 0


def test_an_outbox_from_before_the_batch_tables_gains_them_and_reads_as_no_jobs(tmp_path: Path) -> None:
    import sqlite3

    from edgeroute.framework.router.outbox import Outbox
    from edgeroute.framework.router.outbox_jobs import BatchJobs

    path = tmp_path / "outbox.sqlite"
    with Outbox(path) as box:
        box.enqueue("docs", PUBLIC[:2])
    with sqlite3.connect(path) as db:  # as the previous release left it
        db.execute("DROP TABLE batch_jobs")
        db.execute("DROP TABLE batch_rows")
    with Outbox(path, read_only=True) as ro:
        assert BatchJobs(ro).open_count("docs") == 0 and ro.depth("docs") == 2
    with Outbox(path) as box:  # a writing open adds them in place, rows kept
        assert BatchJobs(box).open_count("docs") == 0 and box.depth("docs") == 2
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"batch_jobs", "batch_rows"} <= tables


def test_a_create_dropped_before_any_job_existed_returns_its_rows_after_the_grace(
    make_engine: EngineFactory, emu: GeminiEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgeroute.framework.router import batch_drain

    engine = _queued(make_engine)
    emu.script_faults(["drop"])  # the create's connection is dropped before the emulator makes a job
    held = engine.batch_drain(job_size=100, wait=False, **FAST)
    assert held.jobs_open == 1 and held.written == 0 and emu.batches.created == []  # inside the grace: kept
    monkeypatch.setattr(batch_drain, "FIND_GRACE_S", 0.0)
    report = engine.batch_drain(job_size=100, **FAST)
    assert report.written == 12 and report.remaining == 0 and report.jobs_open == 0
    assert len(emu.batches.created) == 1  # submitted again only because the first made no job


def test_a_limit_bounds_what_is_submitted_and_zero_only_polls(
    make_engine: EngineFactory, emu: GeminiEmulator
) -> None:
    engine = _queued(make_engine)
    emu.batches.default = BatchScript(polls=2)
    first = engine.batch_drain(5, job_size=2, wait=False, **FAST)
    assert first.claimed == 5 and [len(j["parts"]) for j in emu.batches.created] == [2, 2, 1]
    polled = engine.batch_drain(0, **FAST)  # polls the three jobs to their end, submits nothing
    assert polled.jobs_submitted == 0 and polled.written == 5 and polled.jobs_open == 0
    assert engine.outbox.depth("docs") == 7 and len(emu.batches.created) == 3


def test_a_job_whose_rows_are_all_settled_is_only_cleaned_up(
    make_engine: EngineFactory, emu: GeminiEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgeroute.framework.cloud.batch import BatchEmbedder
    from edgeroute.framework.errors import CloudUnavailableError

    engine = _queued(make_engine)
    real = BatchEmbedder.adelete

    async def failing(self: BatchEmbedder, name: str) -> None:
        raise CloudUnavailableError("503 while deleting", status_code=503)

    monkeypatch.setattr(BatchEmbedder, "adelete", failing)
    first = engine.batch_drain(job_size=100, **FAST, wait=False)
    assert first.written == 12 and first.jobs_open == 1 and "deleting" in (first.error or "")
    monkeypatch.setattr(BatchEmbedder, "adelete", real)
    again = engine.batch_drain(job_size=100, **FAST)
    assert (again.written, again.jobs_failed, again.jobs_open, again.error) == (0, 0, 0, None)
    assert emu.batches.live == [] and len(emu.batches.created) == 1
