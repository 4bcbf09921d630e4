"""The router commands end to end: index, query, sync, status, audit, soak (reduced) and settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from router_helpers import API_KEY, JPEG
from typer.testing import CliRunner

from edgeroute.framework.cli import app
from edgeroute.framework.errors import ConfigurationError, InputError, RoutingError, StoreError
from edgeroute.framework.settings import resolve_settings
from edgeroute.framework.testing.emulator import GeminiEmulator

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, emu: GeminiEmulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key in (
        "EDGEROUTE_STORE",
        "EDGEROUTE_COLLECTION",
        "EDGEROUTE_POLICY",
        "GOOGLE_API_KEY",
        "EDGEROUTE_OFFLINE",
    ):
        monkeypatch.delenv(key, raising=False)
    values = {
        "EDGEROUTE_STORE": str(tmp_path / "store"),
        "EDGEROUTE_COLLECTION": "notes",
        "EDGEROUTE_EDGE": "hashing",
        "GEMINI_API_KEY": API_KEY,
        "GOOGLE_GEMINI_BASE_URL": emu.base_url,
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    d = tmp_path / "notes"
    d.mkdir()
    (d / "shoes.md").write_text(
        "# Running shoes\nCushioned running shoes for long distances and trail races.\n"
    )
    (d / "coffee.txt").write_text("Espresso machines need descaling every two months.\n")
    (d / "bikes.txt").write_text("Mountain bikes with full suspension handle rocky descents.\n")
    return d


def invoke(*args: str, code: int = 0) -> dict[str, object]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_index_query_status_audit(env: dict[str, str], notes: Path) -> None:
    report = invoke("index", str(notes), "--sensitivity", "public", "--json")
    assert report["documents"] == 3 and report["queued"] == 0
    out = invoke(
        "query",
        "running shoes for trail races",
        "--stakes",
        "high",
        "-k",
        "2",
        "--deadline-ms",
        "3000",
        "--json",
    )
    assert out["decision"]["route"] == "hybrid"  # type: ignore[index]
    assert [r["code"] for r in out["decision"]["reasons"]] == ["stakes.high"]  # type: ignore[index]
    assert out["hits"][0]["id"].startswith("shoes.md")  # type: ignore[index]
    text = runner.invoke(app, ["query", "espresso descaling"]).stdout
    assert "route:" in text and "confidence" in text and "coffee.txt" in text
    status = invoke("status", "--json")
    assert status["edge_count"] == 3 and status["cloud_count"] == 3 and status["outbox_depth"] == 0
    assert status["circuit"] == "closed" and status["cache_hit_rate"] is not None
    audit = invoke("audit", "--tail", "1", "--json")
    assert audit["summary"]["queries"] == 2 and audit["summary"]["routes"]["hybrid"] == 1  # type: ignore[index]
    assert len(audit["tail"]) == 1 and "query_text" not in audit["tail"][0]  # type: ignore[index,arg-type]
    table = runner.invoke(app, ["audit", "--tail", "2"], catch_exceptions=False).stdout
    assert "queries" in table and "hybrid 1" in table and "{" not in table  # a table, not dict syntax
    lat = audit["summary"]["latency_p50_ms"]  # type: ignore[index]
    assert lat == round(lat, 3)


def test_offline_index_then_sync_backfills(env: dict[str, str], notes: Path, emu: GeminiEmulator) -> None:
    report = invoke("index", str(notes), "--offline", "--json", code=3)  # edge done, cloud queued
    assert report["queued"] == 3 and emu.request_count == 0
    result = runner.invoke(app, ["sync", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[-1]) == {
        "collection": "notes",
        "written": 3,
        "unchanged": 0,
        "refused": 0,
        "failed": 0,
        "remaining": 0,
        "error": None,
        "in_flight": 0,
        "lock_wait_s": 0.0,  # no other writer: the store's lock was free
        "dead": 0,
    }


def test_image_query_and_bad_inputs_are_clear_errors(
    env: dict[str, str], notes: Path, tmp_path: Path
) -> None:
    invoke("index", str(notes), "--sensitivity", "public", "--json")
    img = tmp_path / "photo.jpg"
    img.write_bytes(JPEG)
    out = invoke("query", "a photo", "--image", str(img), "--json")
    assert out["decision"]["route"] == "cloud"  # type: ignore[index]
    with pytest.raises(RoutingError, match="need the cloud"):
        runner.invoke(
            app,
            ["query", "a photo", "--image", str(img), "--sensitivity", "restricted"],
            catch_exceptions=False,
        )
    with pytest.raises(InputError, match="7 images"):
        runner.invoke(
            app, ["query", "x", *[a for _ in range(7) for a in ("--image", str(img))]], catch_exceptions=False
        )
    with pytest.raises(Exception, match="no collection 'other'"):
        runner.invoke(app, ["query", "x", "--collection", "other"], catch_exceptions=False)
    bad = tmp_path / "policy.yaml"
    bad.write_text("confidence: {min_top1: 7}\n")
    with pytest.raises(ConfigurationError, match="min_top1"):
        runner.invoke(app, ["index", str(notes), "--policy", str(bad)], catch_exceptions=False)
    with pytest.raises(InputError, match="--sensitivity 'secret'"):
        runner.invoke(app, ["index", str(notes), "--sensitivity", "secret"], catch_exceptions=False)
    status = invoke("status", "--json")
    assert status["edge_count"] == 3 and status["cloud_count"] == 3  # nothing stored was touched


def test_read_commands_do_not_create_a_missing_store(env: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no store at"):
        runner.invoke(app, ["query", "x", "--store", str(tmp_path / "missing")], catch_exceptions=False)
    assert not (tmp_path / "missing").exists()


def test_settings_resolve_arguments_over_environment_over_defaults(tmp_path: Path) -> None:
    env = {
        "EDGEROUTE_STORE": str(tmp_path),
        "EDGEROUTE_CLOUD_DIMS": "1536",
        "GOOGLE_API_KEY": "sk-test-9f8e7d",
        "EDGEROUTE_OFFLINE": "yes",
    }
    s = resolve_settings(collection="mine", env=env)
    assert s.store == tmp_path and s.collection == "mine" and s.cloud_dims == 1536 and s.offline
    assert s.outbox_path == tmp_path / "outbox.sqlite" and s.audit_path == tmp_path / "audit.jsonl"
    assert s.api_key == "sk-test-9f8e7d" and "sk-test-9f8e7d" not in repr(s)
    assert resolve_settings(store=tmp_path / "x", env=env).store == tmp_path / "x"
    assert resolve_settings(env={}).collection == "default" and resolve_settings(env={}).cache is not None
    with pytest.raises(ConfigurationError, match="EDGEROUTE_CLOUD_DIMS"):
        resolve_settings(env={"EDGEROUTE_CLOUD_DIMS": "big"})
    with pytest.raises(ConfigurationError, match="EDGEROUTE_OFFLINE"):
        resolve_settings(env={"EDGEROUTE_OFFLINE": "maybe"})
    with pytest.raises(ConfigurationError, match="edge embedder 'gpu'"):
        resolve_settings(edge="gpu", env={})
    with pytest.raises(InputError, match="invalid collection name"):
        resolve_settings(collection="a", env={})


def test_reduced_soak_meets_every_target() -> None:
    result = runner.invoke(
        app,
        [
            "soak",
            "--queries",
            "150",
            "--fault-rate",
            "0.3",
            "--latency-ms",
            "50",
            "--deadline-ms",
            "250",
            "--json",
        ],
        catch_exceptions=False,
    )
    report = json.loads(result.stdout)
    assert result.exit_code == 0, report
    assert report["failed"] == 0 and report["cloudless_unflagged"] == 0 and report["privacy_leaks"] == 0
    assert report["p95_ms"] <= 250 + 50
    assert report["degraded"] > 0 and sum(report["faults_injected"].values()) > 0
    assert report["routes"].get("hybrid", 0) > 0


def test_index_accepts_images_for_the_cloud_index_and_reports_private_ones(
    env: dict[str, str], tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "dog.jpg").write_bytes(JPEG)
    (photos / "note.txt").write_text("A dog running on the beach at sunset.")
    report = invoke("index", str(photos), "--sensitivity", "public", "--json")
    assert report["documents"] == 2 and report["cloud"]["written"] == 2 and report["not_indexable"] == []  # type: ignore[index]
    by_image = invoke("query", "this photo", "--image", str(photos / "dog.jpg"), "--json")
    assert by_image["hits"][0]["id"] == "dog.jpg#0"  # type: ignore[index]
    private = invoke("index", str(photos), "--sensitivity", "confidential", "--json")
    assert private["not_indexable"] == ["dog.jpg#0"]
    status = invoke("status", "--json")
    assert status["cloud_count"] == 0  # the image left the cloud index; the note is edge-only now


def test_sync_without_a_collection_drains_every_collection(
    env: dict[str, str], notes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoke("index", str(notes), "--offline", "-c", "first", "--json", code=3)
    invoke("index", str(notes), "--offline", "-c", "second", "--json", code=3)
    monkeypatch.delenv("EDGEROUTE_COLLECTION")
    result = runner.invoke(app, ["sync", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["collection"], r["written"], r["remaining"]) for r in lines] == [
        ("first", 3, 0),
        ("second", 3, 0),
    ]
    status = invoke("status", "--json")
    assert [c["collection"] for c in status["collections"]] == ["first", "second"]  # type: ignore[union-attr,index]
