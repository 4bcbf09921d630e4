"""The hybrid engine on real parts: ChromaDB, the google-genai client via CloudEmbedder, the emulator."""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from pathlib import Path

import pytest
from router_helpers import CONFIDENTIAL, JPEG, PUBLIC, WITH_PII, EngineFactory, make_cloud

from edgeroute.framework.cloud.embedder import CloudEmbedder
from edgeroute.framework.documents import Document
from edgeroute.framework.errors import CollectionNotFoundError, ConfigurationError, InputError, RoutingError
from edgeroute.framework.parts import Part
from edgeroute.framework.router.policy_files import load_policy_file
from edgeroute.framework.store.chroma import VectorStore
from edgeroute.framework.testing.emulator import GeminiEmulator
from edgeroute.policies.config import PolicyConfig


def test_ingest_fills_both_indexes_and_keeps_private_documents_on_the_edge(
    make_engine: EngineFactory, store: VectorStore
) -> None:
    engine = make_engine()
    report = engine.ingest([*PUBLIC, CONFIDENTIAL, WITH_PII])
    assert report.edge_written == len(PUBLIC) + 2 and report.private == 2
    assert report.cloud.written == len(PUBLIC) and report.queued == 0
    assert store.get_collection("docs.edge").count() == len(PUBLIC) + 2
    cloud_ids = {
        r.id
        for r in store.get_collection("docs.cloud").get([d.id for d in [*PUBLIC, CONFIDENTIAL, WITH_PII]])
    }
    assert cloud_ids == {d.id for d in PUBLIC}
    again = engine.ingest([*PUBLIC, CONFIDENTIAL, WITH_PII])
    assert again.edge_written == 0 and again.cloud.written == 0 and again.cloud.unchanged == len(PUBLIC)


def test_a_document_that_becomes_private_leaves_the_cloud_index(
    make_engine: EngineFactory, store: VectorStore
) -> None:
    engine = make_engine()
    engine.ingest(PUBLIC)
    from dataclasses import replace

    engine.ingest([replace(PUBLIC[0], sensitivity="restricted")])
    assert store.get_collection("docs.cloud").get([PUBLIC[0].id]) == []
    assert store.get_collection("docs.edge").count() == len(PUBLIC)


def test_confident_text_query_stays_at_the_edge(make_engine: EngineFactory, emu: GeminiEmulator) -> None:
    engine = make_engine()
    engine.ingest(PUBLIC)
    before = emu.request_count
    result = engine.retrieve("running shoes buying guide part 0: comfort, price and warranty", k=3)
    assert result.decision.route.value == "edge" and "confidence.ok" in result.decision.codes
    assert result.hits[0].id == "pub-0" and all(h.index == "edge" for h in result.hits)
    assert emu.request_count == before
    assert result.audit["cloud"] == "not_used" and "query_sha256" in result.audit
    assert "query_text" not in result.audit


def test_high_stakes_query_is_hybrid_fused_with_rrf(make_engine: EngineFactory) -> None:
    engine = make_engine(rrf_k=60)
    engine.ingest(PUBLIC)
    result = engine.retrieve("espresso machines warranty", k=5, stakes="high")
    assert result.decision.route.value == "hybrid" and not result.degraded
    assert len({h.id for h in result.hits}) == len(result.hits) == 5
    assert any(h.index == "hybrid" for h in result.hits)
    assert all(h.score <= 2 / 61 + 1e-9 for h in result.hits)  # RRF scores, not cosines
    assert result.audit["cloud"] == "ok" and len(result.audit["spaces"]) == 2
    assert result.audit["cloud_tokens"] > 0 and result.audit["cloud_bytes"] > 0


def test_low_edge_confidence_escalates_to_hybrid(make_engine: EngineFactory) -> None:
    engine = make_engine(policy=PolicyConfig.model_validate({"confidence": {"min_top1": 0.99}}))
    engine.ingest(PUBLIC)
    result = engine.retrieve("mountain bikes", k=3)
    assert result.decision.route.value == "hybrid" and "confidence.low_top1" in result.decision.codes


def test_image_query_goes_to_the_cloud_index(make_engine: EngineFactory, emu: GeminiEmulator) -> None:
    engine = make_engine()
    pic = Document("img-1", "a photo", parts=(Part.image(JPEG, "image/jpeg"),), sensitivity="public")
    engine.ingest([*PUBLIC, pic])
    result = engine.retrieve([Part.text("a photo"), Part.image(JPEG, "image/jpeg")], k=3)
    assert result.decision.route.value == "cloud" and result.hits[0].id == "img-1"
    assert all(h.index == "cloud" for h in result.hits)
    sent = [p for r in emu.requests for c in r["parts"] for p in c if p["kind"] == "inline_data"]
    assert sent and sent[-1]["mime_type"] == "image/jpeg"


def test_deadline_hedging_returns_the_edge_answer_flagged_degraded(
    make_engine: EngineFactory, emu: GeminiEmulator
) -> None:
    # The cloud holds every call until its 30 s client timeout: an answer within seconds came at the
    # 150 ms deadline (the bound leaves a loaded machine slack), not from the cloud giving up.
    engine = make_engine(cloud=make_cloud(emu, timeout_s=30.0))
    engine.ingest(PUBLIC)
    emu.set_faults(1.0, ["timeout"])
    t0 = time.perf_counter()
    result = engine.retrieve("trail cameras", k=3, stakes="high", deadline_ms=150)
    elapsed = (time.perf_counter() - t0) * 1000
    assert elapsed < 5000
    assert result.degraded and result.decision.route.value == "edge"
    assert "deadline.missed" in result.decision.codes and result.audit["cloud"] == "late"
    assert [h.index for h in result.hits] == ["edge"] * 3


async def test_async_hedging_cancels_the_late_call_without_warnings(
    make_engine: EngineFactory, emu: GeminiEmulator
) -> None:
    engine = make_engine(cloud=make_cloud(emu, timeout_s=30.0))  # the cloud answers at 30 s at best
    await engine.aingest(PUBLIC)
    emu.set_faults(1.0, ["timeout"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t0 = time.perf_counter()
        result = await engine.aretrieve("trail cameras", k=3, stakes="high", deadline_ms=150)
        assert (time.perf_counter() - t0) * 1000 < 5000  # the 150 ms deadline, a loaded machine's slack
        await asyncio.sleep(0.05)  # let the cancelled task finish
        gc.collect()
    assert result.degraded and "deadline.missed" in result.decision.codes
    cancelled = [
        r for r in engine.audit.records() if r["type"] == "cloud_call" and r["outcome"] == "cancelled"
    ]
    assert len(cancelled) == 1 and cancelled[0]["tokens"] == 0


def test_cloud_failure_degrades_to_the_edge(make_engine: EngineFactory, emu: GeminiEmulator) -> None:
    engine = make_engine()
    engine.ingest(PUBLIC)
    emu.set_faults(1.0, ["503"])
    result = engine.retrieve("trail cameras", k=3, stakes="high")
    assert result.degraded and "cloud.failed" in result.decision.codes and result.hits


def test_open_circuit_answers_at_the_edge_degraded_without_calling(
    make_engine: EngineFactory, emu: GeminiEmulator
) -> None:
    cloud = make_cloud(emu)
    engine = make_engine(cloud=cloud)
    engine.ingest(PUBLIC)
    for _ in range(cloud.breaker.failure_threshold):
        cloud.breaker.record_failure()
    before = emu.request_count
    result = engine.retrieve("trail cameras", k=3, stakes="high")
    assert result.degraded and "cloud.unavailable" in result.decision.codes
    assert emu.request_count == before and engine.status()["circuit"] == "open"


def test_spent_budget_keeps_queries_at_the_edge(make_engine: EngineFactory) -> None:
    engine = make_engine(budget_usd=0.0)
    engine.ingest(PUBLIC)
    result = engine.retrieve("trail cameras", stakes="high")
    assert result.degraded and "budget.spent" in result.decision.codes
    assert engine.status()["budget_left_usd"] == 0.0


def test_offline_ingest_queues_for_the_cloud_and_sync_backfills(
    make_engine: EngineFactory, emu: GeminiEmulator, store: VectorStore, tmp_path: Path
) -> None:
    cloud = make_cloud(emu, offline=True)
    engine = make_engine(cloud=cloud, outbox_path=tmp_path / "outbox.sqlite")
    report = engine.ingest([*PUBLIC, CONFIDENTIAL])
    assert report.queued == len(PUBLIC) and report.cloud.error == "cloud is offline"
    assert emu.request_count == 0
    result = engine.retrieve("trail cameras", stakes="high")
    assert result.degraded and "cloud.unavailable" in result.decision.codes
    cloud.offline = False
    sync = engine.sync()
    assert sync.written == len(PUBLIC) and sync.remaining == 0
    assert store.get_collection("docs.cloud").count() == len(PUBLIC)
    assert engine.sync().written == 0


def test_status_reports_queue_circuit_budget_and_cache(make_engine: EngineFactory, tmp_path: Path) -> None:
    from edgeroute.framework.store.cache import EmbeddingCache

    engine = make_engine(cache=EmbeddingCache(None), budget_usd=1.0)
    engine.ingest(PUBLIC)
    engine.retrieve("trail cameras")
    engine.retrieve("trail cameras")
    s = engine.status()
    assert s["edge_count"] == len(PUBLIC) and s["cloud_count"] == len(PUBLIC) and s["outbox_depth"] == 0
    assert s["circuit"] == "closed" and 0 < s["budget_left_usd"] < 1.0
    assert s["cache_hit_rate"] > 0


# -- bad input: a clear error, nothing stored touched --------------------------------------------------


def _snapshot(store: VectorStore) -> list[tuple[str, int]]:
    return [(c.name, c.count) for c in store.describe()]


def test_unknown_collection_is_a_clear_error(make_engine: EngineFactory, store: VectorStore) -> None:
    make_engine().ingest(PUBLIC)
    before = _snapshot(store)
    with pytest.raises(CollectionNotFoundError, match=r"no collection 'nope'.*index documents into it first"):
        make_engine(collection="nope").retrieve("shoes")
    assert _snapshot(store) == before


def test_seven_images_are_refused_before_any_io(
    make_engine: EngineFactory, emu: GeminiEmulator, store: VectorStore
) -> None:
    make_engine().ingest(PUBLIC)
    before, calls = _snapshot(store), emu.request_count
    with pytest.raises(InputError, match=r"7 images.*at most 6"):
        make_engine().retrieve([Part.text("x"), *[Part.image(JPEG, "image/jpeg")] * 7])
    assert _snapshot(store) == before and emu.request_count == calls


def test_image_query_with_the_cloud_not_allowed_is_a_routing_error(
    make_engine: EngineFactory, emu: GeminiEmulator, store: VectorStore
) -> None:
    engine = make_engine()
    engine.ingest(PUBLIC)
    before, calls = _snapshot(store), emu.request_count
    with pytest.raises(RoutingError, match="need the cloud"):
        engine.retrieve([Part.text("x"), Part.image(JPEG, "image/jpeg")], sensitivity="confidential")
    assert _snapshot(store) == before and emu.request_count == calls
    assert not [r for r in engine.audit.records() if r["type"] == "query"]


def test_broken_policy_file_is_a_configuration_error(tmp_path: Path) -> None:
    bad = tmp_path / "policy.toml"
    bad.write_text('cloud_ceiling = "secret"\n')
    with pytest.raises(ConfigurationError, match="cloud_ceiling"):
        load_policy_file(bad)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 0}, "k must be a positive integer"),
        ({"sensitivity": "top-secret"}, "unknown sensitivity"),
        ({"stakes": "urgent"}, "unknown stakes"),
        ({"deadline_ms": -5}, "deadline_ms must be positive"),
    ],
)
def test_bad_query_arguments(make_engine: EngineFactory, kwargs: dict[str, object], match: str) -> None:
    engine = make_engine()
    with pytest.raises(InputError, match=match):
        engine.retrieve("shoes", **kwargs)


def test_bad_documents_are_refused_before_anything_is_written(
    make_engine: EngineFactory, store: VectorStore
) -> None:
    engine = make_engine()
    with pytest.raises(InputError, match="appears twice"):
        engine.ingest([PUBLIC[0], PUBLIC[0]])
    with pytest.raises(RoutingError, match="document 'only-img'"):
        engine.ingest(
            [
                PUBLIC[1],
                Document("only-img", "", parts=(Part.image(JPEG, "image/jpeg"),), sensitivity="restricted"),
            ]
        )
    assert store.list_collections() == []


def test_engine_without_cloud_serves_the_edge_and_refuses_sync(make_engine: EngineFactory) -> None:
    engine = make_engine(cloud=None)
    report = engine.ingest(PUBLIC)
    assert report.queued == len(PUBLIC)
    result = engine.retrieve("shoes", stakes="high")
    assert result.degraded and "cloud.unavailable" in result.decision.codes
    with pytest.raises(ConfigurationError, match="no cloud embedder is configured"):
        engine.sync()


def test_guard_is_installed_on_the_cloud_embedder(make_engine: EngineFactory, emu: GeminiEmulator) -> None:
    cloud: CloudEmbedder = make_cloud(emu)
    engine = make_engine(cloud=cloud)
    assert cloud.guard is engine.guard
