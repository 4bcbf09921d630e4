"""Re-indexing unchanged PATHs from the record of the last run (framework/cli/index_record.py): what it
skips (the store, the model, every write), and everything that must send a run the full way instead:
a changed, added, removed or relabelled file, another writer, a run that died midway, the cloud online."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edgeroute.framework.cli import index_record, index_run
from edgeroute.framework.cli.index_run import run_index
from edgeroute.framework.router.outbox import Outbox
from edgeroute.framework.settings import RouterSettings, build_engine, resolve_settings
from edgeroute.framework.store.chroma import VectorStore
from edgeroute.framework.store.lock import acquire_writer_lock

# Prints, after the command, which heavy modules it imported: the unchanged re-index needs none.
PROBE = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('MODULES', 'chromadb' in sys.modules, 'onnxruntime' in sys.modules,"
    " file=sys.stderr))\n"
    "from edgeroute.framework.cli import main\nmain()\n"
)


def cli(store: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEROUTE_", "GEMINI_", "GOOGLE_"))}
    env.update(EDGEROUTE_STORE=str(store), **extra)
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "notes"
    d.mkdir()
    (d / "refunds.md").write_text("Refunds are processed within five working days.\n")
    (d / "hours.txt").write_text("The warehouse opens at eight and closes at six.\n")
    (d / "staff.md").write_text("Ask the front desk about parking permits.\n")
    return d


def settings(tmp_path: Path, **kw: Any) -> RouterSettings:
    return resolve_settings(store=tmp_path / "store", collection="notes", edge="hashing", env={}, **kw)


def index(s: RouterSettings, folder: Path, sensitivity: str = "public", **kw: Any) -> index_run.IndexOutcome:
    return run_index(s, [folder], sensitivity, progress=lambda *a: None, **kw)


def full_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the runs done in full (those that open the store)."""
    calls: list[int] = []
    real = index_run._run

    def counted(*a: Any, **k: Any) -> index_run.IndexOutcome:
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(index_run, "_run", counted)
    return calls


def stored(s: RouterSettings) -> dict[str, str]:
    with VectorStore.persistent(s.store, read_only=True) as vs:
        col = vs.get_collection("notes.edge")
        return {r.id: r.content_hash for r in col.get(col.ids())}


def test_an_unchanged_reindex_is_answered_from_the_record_and_says_what_a_full_run_says(
    tmp_path: Path, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = settings(tmp_path)
    first = index(s, folder)
    assert first.report is not None and first.report.edge_written == 3
    runs = full_runs(monkeypatch)
    full = index(s, folder)  # answered from the record the first run left
    assert runs == []
    state = index_record.store_state(s)
    audit = s.audit_path.read_bytes()
    chroma = (s.store / "chroma.sqlite3").stat().st_mtime_ns
    again = index(s, folder)
    assert runs == []  # the store was never opened
    assert index_record.store_state(s) == state and s.audit_path.read_bytes() == audit
    assert (s.store / "chroma.sqlite3").stat().st_mtime_ns == chroma
    # The same report as a run in full over the same store, field for field.
    index_record.forget(s, _key(s, folder))
    slow = index(s, folder)
    assert runs == [1]
    assert again.to_dict(s) == slow.to_dict(s) == full.to_dict(s)
    assert again.report is not None and again.report.edge_unchanged == 3 and again.report.queued == 3


def _key(s: RouterSettings, folder: Path, sensitivity: str = "public") -> str:
    key = index_record.run_key(
        s, [folder], sensitivity=sensitivity, prune=True, skip_bad=False, id_prefix=None
    )
    assert key is not None
    return key


def test_a_changed_added_or_removed_file_is_indexed_in_full(
    tmp_path: Path, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = settings(tmp_path)
    index(s, folder)
    runs = full_runs(monkeypatch)
    (folder / "hours.txt").write_text("The warehouse now opens at nine.\n")
    changed = index(s, folder)
    assert runs == [1] and changed.report is not None and changed.report.edge_written == 1
    (folder / "new.md").write_text("Lost badges are replaced at reception.\n")
    added = index(s, folder)
    assert runs == [1, 1] and added.report is not None and added.report.edge_written == 1
    (folder / "staff.md").unlink()
    removed = index(s, folder)
    assert runs == [1, 1, 1] and removed.pruned == 1
    assert set(stored(s)) == {"refunds.md#0", "hours.txt#0", "new.md#0"}
    assert index(s, folder).report is not None and runs == [1, 1, 1]  # and now unchanged again


def test_a_relabelled_folder_is_updated_in_full_then_recorded_under_its_new_label(
    tmp_path: Path, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = settings(tmp_path)
    index(s, folder, "public")
    runs = full_runs(monkeypatch)
    relabelled = index(s, folder, "restricted")
    assert runs == [1] and relabelled.report is not None
    assert relabelled.report.edge_updated == 3 and relabelled.report.private == 3
    again = index(s, folder, "restricted")
    assert runs == [1] and again.report is not None and again.report.private == 3 and again.queued == 0
    back = index(s, folder, "public")  # the earlier record is for another store state: not used
    assert runs == [1, 1] and back.report is not None and back.report.edge_updated == 3


def test_another_writer_sends_the_next_run_the_full_way(
    tmp_path: Path, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = settings(tmp_path)
    index(s, folder)
    runs = full_runs(monkeypatch)
    # `edgeroute delete`: the document is back after the next index.
    with build_engine(s, existing=True, load_model=False) as engine:
        engine.delete(["hours.txt#0"])
    back = index(s, folder)
    assert runs == [1] and back.report is not None and back.report.edge_written == 1
    assert "hours.txt#0" in stored(s)
    # A write straight into Chroma (same ids, another content hash) is seen too.
    with VectorStore.persistent(s.store) as vs:
        col = vs.get_collection("notes.edge")
        rec = col.get(["refunds.md#0"], include_vectors=True)[0]
        assert rec.vector is not None
        col.upsert(
            ["refunds.md#0"],
            rec.vector[None, :],
            space=col.space,
            texts=["tampered"],
            metadatas=[rec.metadata],
            content_hashes=["x"],
        )
    fixed = index(s, folder)
    assert runs == [1, 1] and fixed.report is not None and fixed.report.edge_written == 1
    # A queued row dropped from the outbox (by `sync` or by hand) is queued again.
    with Outbox(s.outbox_path) as outbox:
        outbox.discard("notes", ["staff.md#0"])
    requeued = index(s, folder)
    assert runs == [1, 1, 1] and requeued.report is not None and requeued.queued == 3


def test_a_run_that_died_midway_leaves_no_record_to_trust(
    tmp_path: Path, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = settings(tmp_path)
    index(s, folder)
    original = (folder / "hours.txt").read_text()
    (folder / "hours.txt").write_text("The warehouse now opens at nine.\n")
    import edgeroute.framework.router.ingest as ingest

    def dies(*a: Any, **k: Any) -> None:
        raise RuntimeError("killed")  # as if killed after the edge write: the outbox never reached

    monkeypatch.setattr(ingest, "_update_cloud_metadata", dies)
    with pytest.raises(RuntimeError, match="killed"):
        index(s, folder)
    monkeypatch.undo()
    assert index_record.recorded(s, _key(s, folder)) is None
    # Back to the text the record of the first run was made from: the store is not what it left.
    (folder / "hours.txt").write_text(original)
    runs = full_runs(monkeypatch)
    again = index(s, folder)
    assert runs == [1] and again.report is not None and again.report.edge_written == 1


def test_no_record_with_the_cloud_online_or_a_chroma_server(tmp_path: Path, folder: Path) -> None:
    base = {"sensitivity": "public", "prune": True, "skip_bad": False, "id_prefix": None}
    assert index_record.run_key(settings(tmp_path), [folder], **base) is not None
    online = settings(tmp_path, api_key="k", base_url="http://127.0.0.1:9")
    assert index_record.run_key(online, [folder], **base) is None
    assert index_record.run_key(settings(tmp_path, api_key="k", offline=True), [folder], **base) is not None
    assert (
        index_record.run_key(settings(tmp_path, chroma_url="http://127.0.0.1:8000"), [folder], **base) is None
    )


def test_a_torn_or_foreign_record_file_is_ignored(
    tmp_path: Path, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = settings(tmp_path)
    index(s, folder)
    (s.store / index_record.RECORD_FILE).write_text('{"format": 1, "runs": {')
    runs = full_runs(monkeypatch)
    assert index(s, folder).report is not None and runs == [1]
    assert index(s, folder).report is not None and runs == [1]  # recorded again by that run


def test_the_command_loads_neither_chromadb_nor_the_model_and_keeps_its_exit_codes(
    tmp_path: Path, folder: Path
) -> None:
    from edgeroute.framework.testing.tiny_model import build_tiny_model

    model = str(build_tiny_model(tmp_path / "tiny"))
    store = tmp_path / "store"
    args = ["index", str(folder), "-c", "notes", "--json", "--offline"]
    first = cli(store, *args, "--sensitivity", "public", EDGEROUTE_EDGE_MODEL=model)
    assert first.returncode == 3, first.stderr  # queued for the cloud
    assert "MODULES True True" in first.stderr
    again = cli(store, *args, "--sensitivity", "public", EDGEROUTE_EDGE_MODEL=model)
    assert again.returncode == 3, again.stderr
    assert "MODULES False False" in again.stderr
    a, b = json.loads(first.stdout), json.loads(again.stdout)
    assert (b["edge_written"], b["edge_unchanged"], b["queued"]) == (0, 3, 3)
    assert {k: v for k, v in a.items() if not k.startswith("edge_")} == {
        k: v for k, v in b.items() if not k.startswith("edge_")
    }
    private = cli(store, *args, "--sensitivity", "restricted", EDGEROUTE_EDGE_MODEL=model)
    assert private.returncode == 0, private.stderr  # relabelled in full: nothing left queued
    assert "MODULES True False" in private.stderr  # the store, but no model: nothing to embed
    again = cli(store, *args, "--sensitivity", "restricted", EDGEROUTE_EDGE_MODEL=model)
    assert again.returncode == 0 and "MODULES False False" in again.stderr
    # Another writer holds the store: the unchanged re-index waits for it, then fails (exit 1).
    with acquire_writer_lock(store):
        held = cli(
            store, *args, "--sensitivity", "restricted", "--lock-timeout", "0.2", EDGEROUTE_EDGE_MODEL=model
        )
    assert held.returncode == 1 and "being written by" in " ".join(held.stderr.split())


def test_a_run_that_skips_bad_files_is_done_in_full_every_time(
    tmp_path: Path, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = settings(tmp_path)
    index(s, folder, skip_bad=True)
    (folder / "latin1.txt").write_bytes("café".encode("latin-1"))  # unreadable: kept out, its record kept
    runs = full_runs(monkeypatch)
    for _ in range(2):
        done = index(s, folder, skip_bad=True)
        assert [p.path for p in done.loaded.bad] == [str(folder / "latin1.txt")]
    assert runs == [1, 1]
    (folder / "latin1.txt").unlink()
    index(s, folder, skip_bad=True)
    index(s, folder, skip_bad=True)
    assert runs == [1, 1, 1]  # readable again: recorded, then answered


def test_unchanged_reindexes_in_full_embed_nothing_over_many_batches(tmp_path: Path) -> None:
    """The full path of an unchanged re-index (the record dropped each time), 120 files: more than one
    batch of stored-record reads (ingest.BATCH) and many model-call groups, a reader opening the store in
    between: nothing written or re-detected, the stored hashes as the first run left them."""
    many = tmp_path / "many"
    many.mkdir()
    for i in range(120):
        (many / f"{i:03d}.md").write_text(f"Note {i}: the depot on route {i % 7} opens at {6 + i % 5}.\n" * 3)
    s = settings(tmp_path)
    first = index(s, many)
    assert first.report is not None and first.report.edge_written == 120
    hashes = stored(s)
    for _ in range(3):
        index_record.forget(s, _key(s, many))
        stored(s)  # a reader in between (status, query)
        again = index(s, many)
        assert again.report is not None
        assert (again.report.edge_written, again.report.edge_unchanged) == (0, 120)
        assert again.report.edge_redetected == 0 and again.report.edge_updated == 0
        assert stored(s) == hashes
