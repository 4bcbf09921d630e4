"""`edgeroute index --ray local` against the single-process `index`, on a real local Ray cluster and a
real `chroma run` server on loopback: the same ids, metadata, privacy decisions, outbox rows and
findings, vectors within 1e-5 cosine; a worker actor killed mid-job loses and duplicates nothing; no
private document reaches the emulator after `sync`.

One Ray cluster serves the module (start-up is ~10 s on 2 cores); the model is the tiny generated one,
where the model plays no part beyond giving vectors."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from server_helpers import chroma_run

from edgeroute.framework.cli.index_run import run_index
from edgeroute.framework.cli.progress import quiet
from edgeroute.framework.distributed import index_with_ray
from edgeroute.framework.distributed.worker import CRASH_ENV
from edgeroute.framework.errors import ConfigurationError, InputError
from edgeroute.framework.settings import RouterSettings, resolve_settings
from edgeroute.framework.store.chroma import VectorStore
from edgeroute.framework.testing.emulator import GeminiEmulator
from edgeroute.framework.testing.tiny_model import build_tiny_model

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.server

PII = {
    "contact.md": "Write to jane.doe@example.com about the refund of the search result",
    "phone.md": "Call the desk on +1 415 555 0134 for the question of the text",
}
CONFIDENTIAL = "The confidential fact checking result of the merger question"


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def chroma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = tmp_path_factory.mktemp("chroma")
    with chroma_run(base / "data", base / "chroma.log") as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def folder(root: Path, n: int = 24) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        words = " ".join(["the search result", "of a query", "and the text", "question"][: 1 + i % 4])
        (root / f"page{i:02d}.md").write_text(
            f"# Page {i}\n\n{words} number {i} for fact checking {i % 5}.\n"
        )
    for name, text in PII.items():
        (root / name).write_text(text + "\n")
    return root


def settings_for(tmp: Path, chroma: str, model: Path, collection: str, **kw: Any) -> RouterSettings:
    return resolve_settings(
        store=tmp / "state",
        collection=collection,
        model_dir=model,
        chroma_url=chroma,
        offline=True,
        cache="off",
        env={},
        **kw,
    )


def both(
    tmp: Path, chroma: str, model: Path, paths: list[Path], sensitivity: str, tag: str
) -> tuple[Any, Any]:
    """The same paths indexed by one process (collection ``TAG-one``) and on Ray (``TAG-ray``)."""
    one = run_index(settings_for(tmp, chroma, model, f"{tag}-one"), paths, sensitivity, progress=quiet)
    on_ray = index_with_ray(
        paths, settings=settings_for(tmp, chroma, model, f"{tag}-ray"), workers=2, sensitivity=sensitivity
    )
    return one, on_ray


def stored(chroma: str, name: str) -> dict[str, Any]:
    host, port = chroma.removeprefix("http://").split(":")
    store = VectorStore.http(host, int(port))
    try:
        col = store.get_collection(f"{name}.edge")
        ids = col.ids()
        return {r.id: r for r in col.get(ids, include_vectors=True)}
    finally:
        store.close()


def outbox_rows(tmp: Path, name: str) -> dict[str, Any]:
    with sqlite3.connect(tmp / "state" / "outbox.sqlite") as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(
            "SELECT doc_id, content_hash, payload, state FROM outbox WHERE collection=?", (name,)
        )
        queued = {r["doc_id"]: (r["content_hash"], r["payload"], r["state"]) for r in rows}
        found = db.execute(
            "SELECT doc_id, content_hash, detector_version, findings FROM findings WHERE collection=?",
            (name,),
        )
        return {"queued": queued, "findings": {r[0]: tuple(r[1:]) for r in found}}


def assert_same(tmp: Path, chroma: str, tag: str) -> None:
    one, on_ray = stored(chroma, f"{tag}-one"), stored(chroma, f"{tag}-ray")
    assert sorted(one) == sorted(on_ray)
    for doc_id, a in one.items():
        b = on_ray[doc_id]
        assert (a.text, a.content_hash, a.metadata) == (b.text, b.content_hash, b.metadata), doc_id
        cos = float(np.dot(a.vector, b.vector) / (np.linalg.norm(a.vector) * np.linalg.norm(b.vector)))
        assert cos >= 1 - 1e-5, (doc_id, cos)
    assert outbox_rows(tmp, f"{tag}-one") == outbox_rows(tmp, f"{tag}-ray")
    assert audit(tmp, f"{tag}-one") == audit(tmp, f"{tag}-ray")


def audit(tmp: Path, name: str) -> list[dict[str, Any]]:
    """The audit records of collection ``name``, without their times."""
    path = tmp / "state" / "audit.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    drop = {"ts", "time", "collection", "elapsed_ms", "t"}
    return [{k: v for k, v in r.items() if k not in drop} for r in records if r.get("collection") == name]


def counts(outcome: Any) -> tuple[int, ...]:
    r = outcome.report
    return (
        r.documents,
        r.edge_written,
        r.edge_unchanged,
        r.edge_updated,
        r.private,
        r.queued,
        outcome.pruned,
    )


def test_ray_index_matches_one_process_through_changes_prunes_and_relabels(
    tmp_path: Path, cluster: None, chroma: str, model: Path
) -> None:
    docs = folder(tmp_path / "docs")
    one, on_ray = both(tmp_path, chroma, model, [docs], "public", "same")
    assert counts(one) == counts(on_ray) == (26, 26, 0, 0, 2, 24, 0)
    assert on_ray.pool is not None and on_ray.pool.documents == 26
    assert_same(tmp_path, chroma, "same")
    # A changed file, a removed one and a new one: only those are embedded; the removed one is pruned.
    (docs / "page03.md").write_text("# Page 3\n\nthe text of a new question\n")
    (docs / "page07.md").unlink()
    (docs / "extra.md").write_text("a new search result\n")
    one, on_ray = both(tmp_path, chroma, model, [docs], "public", "same")
    assert counts(one) == counts(on_ray) == (26, 2, 24, 0, 2, 25, 1)  # queued counted before pruning
    assert_same(tmp_path, chroma, "same")
    # Relabelled (the sensitivity changed, the content did not): no pass, no actor, metadata rewritten.
    one, on_ray = both(tmp_path, chroma, model, [docs], "confidential", "same")
    assert counts(one) == counts(on_ray) == (26, 0, 26, 26, 26, 0, 0)
    assert on_ray.pool is None or on_ray.pool.jobs == 0
    assert_same(tmp_path, chroma, "same")


def test_ray_index_refuses_an_id_collision_as_one_process_does(
    tmp_path: Path, cluster: None, chroma: str, model: Path
) -> None:
    first, other = folder(tmp_path / "a", 3), folder(tmp_path / "b", 3)
    index_with_ray([first], settings=settings_for(tmp_path, chroma, model, "clash"), workers=1)
    with pytest.raises(InputError) as on_ray:
        index_with_ray([other], settings=settings_for(tmp_path, chroma, model, "clash"), workers=1)
    with pytest.raises(InputError) as one:
        run_index(settings_for(tmp_path, chroma, model, "clash"), [other], "internal", progress=quiet)
    assert str(on_ray.value) == str(one.value) and "already taken by other files" in str(one.value)


def test_a_worker_killed_mid_job_is_retried_nothing_missing_or_twice(
    tmp_path: Path, cluster: None, chroma: str, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = folder(tmp_path / "docs", 60)
    marker = tmp_path / "crashed"
    monkeypatch.setenv(CRASH_ENV, f"2:{marker}")
    done = index_with_ray(
        [docs], settings=settings_for(tmp_path, chroma, model, "kill-ray"), workers=2, sensitivity="public"
    )
    assert marker.exists()  # an actor did die on job 2 (os._exit), and Ray restarted it
    assert int(marker.read_text()) != os.getpid()
    assert done.report is not None and done.report.edge_written == 62
    records = stored(chroma, "kill-ray")
    assert len(records) == 62 and all(r.vector is not None for r in records.values())
    monkeypatch.delenv(CRASH_ENV)
    one = run_index(settings_for(tmp_path, chroma, model, "kill-one"), [docs], "public", progress=quiet)
    assert one.report is not None and one.report.edge_written == 62
    assert_same(tmp_path, chroma, "kill")


def test_no_private_document_reaches_the_emulator_after_sync(
    tmp_path: Path, cluster: None, chroma: str, model: Path
) -> None:
    docs, secret = folder(tmp_path / "docs", 6), tmp_path / "secret"
    secret.mkdir()
    (secret / "merger.md").write_text(CONFIDENTIAL + "\n")
    index_with_ray(
        [docs], settings=settings_for(tmp_path, chroma, model, "sync"), workers=2, sensitivity="public"
    )
    index_with_ray(
        [secret],
        settings=settings_for(tmp_path, chroma, model, "sync"),
        workers=2,
        sensitivity="confidential",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEROUTE_", "GEMINI_", "GOOGLE_"))}
    with GeminiEmulator() as emu:
        env.update(
            EDGEROUTE_STORE=str(tmp_path / "state"),
            EDGEROUTE_CHROMA_URL=chroma,
            EDGEROUTE_EDGE_MODEL=str(model),
            GEMINI_API_KEY="ray-key",
            GOOGLE_GEMINI_BASE_URL=emu.base_url,
            NO_PROXY="127.0.0.1,localhost",
        )
        synced = subprocess.run(
            [sys.executable, "-m", "edgeroute.framework.cli", "sync", "-c", "sync", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert synced.returncode == 0, synced.stderr
        sent = [
            p.get("text") or "" for req in emu.requests for content in req.get("parts") or [] for p in content
        ]
    assert len(sent) == 6  # the public pages, each once
    for private in [*PII.values(), CONFIDENTIAL]:
        assert not [s for s in sent if private in s or s in private]


def test_ray_needs_a_chroma_server_before_any_work(tmp_path: Path, model: Path) -> None:
    settings = resolve_settings(store=tmp_path / "state", model_dir=model, env={})
    with pytest.raises(ConfigurationError, match="--chroma-url"):
        index_with_ray([tmp_path / "missing"], settings=settings)
    cli = subprocess.run(
        [sys.executable, "-m", "edgeroute.framework.cli", "index", str(tmp_path), "--ray", "local"],
        env={**os.environ, "EDGEROUTE_STORE": str(tmp_path / "s"), "EDGEROUTE_CHROMA_URL": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 2 and "--chroma-url" in cli.stderr and not (tmp_path / "s").exists()


@pytest.mark.slow
def test_real_model_on_ray_gives_the_same_vectors_findings_and_decisions(
    tmp_path: Path, cluster: None, chroma: str
) -> None:
    """EmbeddingGemma with its PII head: the findings come from the workers' one pass (named entities
    included), and match the single process's; vectors within 1e-5 cosine."""
    real = os.environ.get("EDGEROUTE_EDGE_MODEL")
    if not real:
        pytest.skip("EDGEROUTE_EDGE_MODEL is not set (scripts/test sets it)")
    docs = folder(tmp_path / "docs", 6)
    (docs / "named.md").write_text("Our returns desk lead Joan Marlow signed off the refund.\n")
    one, on_ray = both(tmp_path, chroma, Path(real), [docs], "public", "real")
    assert counts(one) == counts(on_ray)
    assert on_ray.report.private == 3  # the e-mail, the phone number and the name
    assert_same(tmp_path, chroma, "real")
    findings = outbox_rows(tmp_path, "real-ray")["findings"]
    assert "entities" in findings["named.md#0"][2]  # the head's finding, computed on a worker


def test_cli_joins_an_existing_cluster_by_address(
    tmp_path: Path, cluster: None, chroma: str, model: Path
) -> None:
    docs = folder(tmp_path / "docs", 4)
    address = ray.get_runtime_context().gcs_address  # this module's cluster: no second start-up
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEROUTE_", "GEMINI_", "GOOGLE_"))}
    env.update(
        EDGEROUTE_STORE=str(tmp_path / "state"), EDGEROUTE_EDGE_MODEL=str(model), EDGEROUTE_CACHE="off"
    )
    args = ["index", str(docs), "-c", "cli", "--offline", "--ray", address, "--workers", "1"]
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeroute.framework.cli",
            *args,
            "--chroma-url",
            chroma,
            "--sensitivity",
            "public",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 3, cli.stderr  # indexed; the cloud half queued (offline)
    report = json.loads(cli.stdout)
    assert report["ray"] == {"address": address, "workers": 1, "cpus_per_worker": 1}
    assert (report["documents"], report["edge_written"], report["private"], report["queued"]) == (6, 6, 2, 4)
    assert sorted(stored(chroma, "cli")) == sorted(f"{p.name}#0" for p in docs.iterdir())
