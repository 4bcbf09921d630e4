"""The index lifecycle and exit codes as a user meets them: real `edgeroute` processes, the emulator
recording what it was sent, and what is stored afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from lock_helpers import CAN_SEE_WAITERS, start_together

from edgeroute.framework.router.outbox import Outbox
from edgeroute.framework.store.chroma import VectorStore
from edgeroute.framework.testing.emulator import GeminiEmulator

LONG = "\n\n".join(
    " ".join(f"Section {p} sentence {s} explains shipping rule {p * 10 + s} in detail." for s in range(40))
    for p in range(4)
)


def cli(
    store: Path, emu: GeminiEmulator | None, *args: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEROUTE_", "GEMINI_", "GOOGLE_"))}
    env.update(EDGEROUTE_STORE=str(store), EDGEROUTE_EDGE="hashing", NO_PROXY="127.0.0.1,localhost")
    if emu is not None:
        env.update(GEMINI_API_KEY="life-key", GOOGLE_GEMINI_BASE_URL=emu.base_url)
    env.update(extra)
    cmd = [sys.executable, "-c", "from edgeroute.framework.cli import main; main()", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    proc.stderr = " ".join(proc.stderr.split())  # rich wraps long lines
    return proc


def ids(store: Path, name: str) -> set[str]:
    vs = VectorStore.persistent(store, read_only=True)
    return set(vs.get_collection(name).ids()) if name in vs.list_collections() else set()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "policies"
    d.mkdir()
    (d / "refunds.md").write_text("# Refunds\nRefunds are processed within five working days.\n")
    (d / "doc.txt").write_text(LONG)
    return d


def test_reindexing_mirrors_the_source_and_never_touches_other_sources(
    tmp_path: Path, folder: Path, emu: GeminiEmulator
) -> None:
    store = tmp_path / "store"
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("Warehouse opening hours are eight to six.")
    first = cli(store, emu, "index", str(folder), "--sensitivity", "public", "-c", "kbase", "--json")
    assert first.returncode == 0, first.stderr
    assert cli(store, emu, "index", str(other), "--sensitivity", "public", "-c", "kbase").returncode == 0
    before = ids(store, "kbase.edge")
    assert {"refunds.md#0", "doc.txt#3", "keep.txt#0"} <= before and len(before) >= 6

    (folder / "refunds.md").unlink()  # a file gone, and a file shrunk from 4+ chunks to 1
    (folder / "doc.txt").write_text("Shipping is free above fifty euros.")
    again = cli(store, emu, "index", str(folder), "--sensitivity", "public", "-c", "kbase", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["pruned"] == len(before) - 2
    for index in ("kbase.edge", "kbase.cloud"):
        assert ids(store, index) == {"doc.txt#0", "keep.txt#0"}  # other/ untouched
    hits = json.loads(
        cli(
            store,
            emu,
            "query",
            "refunds processed working days",
            "-c",
            "kbase",
            "-k",
            "10",
            "--stakes",
            "high",
            "--json",
        ).stdout
    )["hits"]
    assert {h["id"] for h in hits} <= {"doc.txt#0", "keep.txt#0"}  # 0 stale hits
    log = [json.loads(line) for line in (store / "audit.jsonl").read_text().splitlines()]
    prunes = [r for r in log if r.get("type") == "delete" and r["reason"] == "prune"]
    assert prunes and "refunds.md#0" in prunes[0]["ids"]


def test_relabelling_updates_stored_records_not_only_vectors(
    tmp_path: Path, folder: Path, emu: GeminiEmulator
) -> None:
    store = tmp_path / "store"
    assert cli(store, emu, "index", str(folder), "-c", "kbase", "--sensitivity", "public").returncode == 0
    again = cli(store, emu, "index", str(folder), "-c", "kbase", "--sensitivity", "confidential", "--json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["edge_written"] == 0 and report["edge_updated"] == report["documents"]
    edge = VectorStore.persistent(store, read_only=True).get_collection("kbase.edge")
    assert {m["sensitivity"] for m in edge.metadata().values()} == {"confidential"}
    assert ids(store, "kbase.cloud") == set()  # confidential documents left the cloud index


def test_delete_by_id_and_by_source_reaches_queued_documents(
    tmp_path: Path, folder: Path, emu: GeminiEmulator
) -> None:
    store = tmp_path / "store"
    queued = cli(store, emu, "index", str(folder), "-c", "kbase", "--sensitivity", "public", "--offline")
    assert queued.returncode == 3, queued.stderr  # edge done, cloud queued
    with Outbox(store / "outbox.sqlite") as box:
        assert box.depth("kbase") > 2
    gone = cli(store, emu, "delete", "--source", str(folder / "doc.txt"), "-c", "kbase", "--json")
    assert gone.returncode == 0, gone.stderr
    report = json.loads(gone.stdout)
    assert report["matched"] == report["edge"] == report["queued"] > 1
    by_id = cli(store, emu, "delete", "refunds.md#0", "-c", "kbase")
    assert by_id.returncode == 0 and "1 from the outbox" in by_id.stdout, by_id.stdout
    emu.reset()
    assert cli(store, emu, "sync", "-c", "kbase").returncode == 0
    assert emu.request_count == 0  # nothing deleted was sent later
    assert ids(store, "kbase.edge") == set()
    nothing = cli(store, emu, "delete", "nope#0", "-c", "kbase")
    assert nothing.returncode == 2 and "nothing in collection 'kbase' matches" in nothing.stderr
    log = [json.loads(line) for line in (store / "audit.jsonl").read_text().splitlines()]
    assert [r["reason"] for r in log if r.get("type") == "delete"] == ["delete", "delete"]


def test_every_bad_file_is_listed_and_nothing_is_written_without_skip_bad(
    tmp_path: Path, folder: Path
) -> None:
    store = tmp_path / "store"
    (folder / "latin1.txt").write_bytes("café".encode("latin-1"))
    (folder / "fake.png").write_bytes(b"not a png")
    refused = cli(store, None, "index", str(folder), "-c", "kbase")
    assert refused.returncode == 2
    assert "2 file(s) cannot be indexed" in refused.stderr
    assert "latin1.txt" in refused.stderr and "fake.png" in refused.stderr
    assert not (store / "outbox.sqlite").exists() or ids(store, "kbase.edge") == set()
    skipped = cli(
        store,
        None,
        "index",
        str(folder),
        "-c",
        "kbase",
        "--skip-bad",
        "--sensitivity",
        "confidential",
        "--json",
    )
    assert skipped.returncode == 0, skipped.stderr
    report = json.loads(skipped.stdout)
    assert sorted(Path(p["path"]).name for p in report["skipped"]) == ["fake.png", "latin1.txt"]
    assert report["documents"] >= 2


def test_exit_codes_a_script_can_trust(tmp_path: Path, folder: Path) -> None:
    store = tmp_path / "store"
    with GeminiEmulator(api_key="the-right-key") as emu:
        rejected = cli(store, emu, "index", str(folder), "-c", "kbase", "--sensitivity", "public")
        assert rejected.returncode == 3  # indexed at the edge; the cloud refused the key
        assert "API key rejected" in rejected.stderr + rejected.stdout
        assert "malformed" not in rejected.stderr + rejected.stdout
        failing = cli(store, emu, "sync", "-c", "kbase")
        assert failing.returncode == 3 and "still queued" in failing.stdout
    unknown = cli(store, None, "sync", "-c", "kbase-typo")
    assert unknown.returncode == 2 and "existing: 'kbase'" in unknown.stderr
    status = cli(store, None, "status", "-c", "typo")
    assert status.returncode == 2 and "existing: 'kbase'" in status.stderr
    assert (
        "kbase.cloud" not in VectorStore.persistent(store, read_only=True).list_collections()
    )  # nothing stray
    assert cli(store, None, "index", str(tmp_path / "missing")).returncode == 2
    img = tmp_path / "p.jpg"
    img.write_bytes(
        next(iter(sorted(Path("/work/shared/data/flickr8k_1k/images").glob("*.jpg")))).read_bytes()
    )
    with GeminiEmulator() as up:
        photos = cli(store, up, "index", str(img), "-c", "photos", "--sensitivity", "public")
        assert photos.returncode == 0, photos.stderr
    with GeminiEmulator(fault_rate=1.0, faults=["503"], retry_after_s=0.01) as down:
        media = cli(
            store,
            down,
            "query",
            "a photo like this",
            "--image",
            str(img),
            "-c",
            "photos",
            EDGEROUTE_CLOUD_TIMEOUT_S="0.5",
        )
    # The cloud index has the photo; the cloud fails; an image query is not answered text-only.
    assert media.returncode == 1 and "on_media_without_cloud" in media.stderr, media.stdout + media.stderr


@pytest.mark.skipif(not CAN_SEE_WAITERS, reason="needs /proc to see who waits for the lock")
def test_three_concurrent_drainers_send_every_document_exactly_once(tmp_path: Path) -> None:
    store = tmp_path / "store"
    corpus = tmp_path / "corpus.jsonl"
    rows = [
        {"_id": f"d{i}", "text": f"note {i} on trail running shoes, fitting and lacing, part {i}"}
        for i in range(60)
    ]
    corpus.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    record = tmp_path / "sent.jsonl"
    with GeminiEmulator(latency_ms=150, record_path=record) as emu:
        queued = cli(store, emu, "index", str(corpus), "-c", "kbase", "--sensitivity", "public", "--offline")
        assert queued.returncode == 3
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEROUTE_", "GEMINI_", "GOOGLE_"))}
        env.update(
            EDGEROUTE_STORE=str(store),
            EDGEROUTE_EDGE="hashing",
            GEMINI_API_KEY="k",
            GOOGLE_GEMINI_BASE_URL=emu.base_url,
            NO_PROXY="127.0.0.1",
            EDGEROUTE_CACHE="off",
        )
        cmd = [
            sys.executable,
            "-c",
            "from edgeroute.framework.cli import main; main()",
            "sync",
            "-c",
            "kbase",
            "--batch-size",
            "4",
            "--json",
            # Each waits for the others' turns (and for this test's hold below); on a loaded machine
            # the 10 s default can run out while Chroma opens and closes. Waiting is not what we test.
            "--lock-timeout",
            "300",
        ]
        # All three start draining together however slowly each one starts up (the test holds the
        # writer lock until they all wait for it); from there the lock's queue gives the turns.
        procs = start_together(
            store,
            lambda: [
                subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(3)
            ],
        )
        outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1] for o in outs]
    reports = [json.loads(o[0].splitlines()[-1]) for o in outs]
    sent = Counter(
        part["text"].split("text: ", 1)[-1]
        for line in record.read_text().splitlines()
        for request in json.loads(line)["parts"]
        for part in request
        if part.get("kind") == "text"
    )
    assert len(sent) == 60 and set(sent.values()) == {1}  # every document, exactly once
    assert sum(r["written"] for r in reports) == 60  # each process reports what it delivered
    assert all(r["lock_wait_s"] > 0 for r in reports)  # each waited for the lock: they ran side by side
    assert sum(1 for r in reports if r["written"] > 0) >= 2  # and took turns (a turn is 32 of the 60)
    assert ids(store, "kbase.cloud") == {f"d{i}" for i in range(60)}


def test_status_loads_no_model_and_is_quick(tmp_path: Path, folder: Path) -> None:
    store = tmp_path / "store"
    assert (
        cli(store, None, "index", str(folder), "-c", "kbase", "--sensitivity", "confidential").returncode == 0
    )
    t0 = time.perf_counter()
    # A model directory that does not exist: status would fail if it tried to load the model.
    status = cli(
        store,
        None,
        "status",
        "-c",
        "kbase",
        "--json",
        EDGEROUTE_EDGE="model",
        EDGEROUTE_EDGE_MODEL=str(tmp_path / "no-model"),
    )
    wall = time.perf_counter() - t0
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["edge_count"] >= 2
    print(f"status wall time {wall:.2f} s (process start included)")
