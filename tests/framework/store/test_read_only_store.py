"""A store on a read-only mount can be listed and queried; writes are refused with a clear error."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeroute.framework.errors import StoreError
from edgeroute.framework.store.chroma import VectorStore
from edgeroute.framework.testing.hashing import HashingEmbedder

EMB = HashingEmbedder(dims=32)


def _fill(path: Path) -> None:
    store = VectorStore.persistent(path)
    col = store.create_collection("notes.edge", EMB.space)
    texts = ["running shoes for trails", "espresso descaling", "mountain bikes"]
    col.upsert(
        [f"d{i}" for i in range(3)],
        EMB.embed_documents(texts),
        space=EMB.space,
        texts=texts,
        metadatas=[{"source": f"s{i}.txt", "sensitivity": "internal"} for i in range(3)],
        content_hashes=[f"h{i}" for i in range(3)],
    )


def _read_only_mount_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount --bind /tmp /tmp && mount -o remount,ro,bind /tmp"],
        capture_output=True,
    )
    return probe.returncode == 0


def run_read_only(store: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Run python ``code`` with ``store`` bind-mounted read-only (a private mount namespace)."""
    script = (
        f'mount --bind {store} {store} && mount -o remount,ro,bind {store} && exec {sys.executable} -c "$0"'
    )
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script, code], capture_output=True, text=True, timeout=120
    )


needs_ro_mount = pytest.mark.skipif(
    not _read_only_mount_works(), reason="needs unshare + bind mounts to make a truly read-only store"
)


@needs_ro_mount
def test_a_store_on_a_read_only_mount_is_listed_and_queried(tmp_path: Path) -> None:
    path = tmp_path / "store"
    _fill(path)
    before = sorted(str(f.relative_to(path)) for f in path.rglob("*"))
    code = (
        "import json\n"
        "from edgeroute.framework.store.chroma import VectorStore\n"
        "from edgeroute.framework.testing.hashing import HashingEmbedder\n"
        "from edgeroute.framework.errors import StoreError\n"
        "emb = HashingEmbedder(dims=32)\n"
        f"store = VectorStore.persistent({str(path)!r}, read_only=True)\n"
        "col = store.get_collection('notes.edge')\n"
        "hits = col.query(emb.embed_queries(['espresso'])[0], 2, space=emb.space)\n"
        "try:\n"
        "    col.delete(['d0'])\n"
        "    refused = ''\n"
        "except StoreError as exc:\n"
        "    refused = str(exc)\n"
        "print(json.dumps({'names': store.list_collections(), 'top': hits[0].id, 'refused': refused,\n"
        "                  'snapshot': store.snapshot is not None}))\n"
    )
    proc = run_read_only(path, code)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["names"] == ["notes.edge"] and out["top"] == "d1" and out["snapshot"] is True
    assert "read-only" in out["refused"]
    assert sorted(str(f.relative_to(path)) for f in path.rglob("*")) == before


@needs_ro_mount
def test_collections_command_lists_a_read_only_store(tmp_path: Path) -> None:
    path = tmp_path / "store"
    _fill(path)
    code = (
        f"import sys; sys.argv = ['edgeroute', 'collections', '--store', {str(path)!r}, '--json']\n"
        "from edgeroute.framework.cli import main; main()\n"
    )
    proc = run_read_only(path, code)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [(r["name"], r["count"]) for r in rows] == [("notes.edge", 3)]


def test_read_only_store_refuses_writes_and_never_creates_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no store at"):
        VectorStore.persistent(tmp_path / "missing", read_only=True)
    assert not (tmp_path / "missing").exists()
    _fill(tmp_path / "store")
    store = VectorStore.persistent(tmp_path / "store", read_only=True)
    with pytest.raises(StoreError, match="read-only"):
        store.create_collection("other.edge", EMB.space)
    col = store.get_collection("notes.edge")
    with pytest.raises(StoreError, match="read-only"):
        col.upsert(
            ["x"],
            np.zeros((1, 32), dtype=np.float32) + 0.1,
            space=EMB.space,
            texts=["x"],
            content_hashes=["h"],
        )
    assert col.count() == 3


def test_ids_by_metadata_and_metadata_updates_keep_vectors(tmp_path: Path) -> None:
    _fill(tmp_path / "store")
    col = VectorStore.persistent(tmp_path / "store").get_collection("notes.edge")
    assert sorted(col.ids()) == ["d0", "d1", "d2"]
    assert col.ids({"source": "s1.txt"}) == ["d1"]
    assert col.metadata({"source": "s2.txt"}) == {"d2": {"source": "s2.txt", "sensitivity": "internal"}}
    before = col.get(["d1"], include_vectors=True)[0]
    col.update_metadata(["d1"], [{"source": "s1.txt", "sensitivity": "confidential", "title": "T"}])
    after = col.get(["d1"], include_vectors=True)[0]
    assert after.metadata == {"source": "s1.txt", "sensitivity": "confidential", "title": "T"}
    assert after.content_hash == before.content_hash == "h1"
    assert before.vector is not None and after.vector is not None
    assert np.allclose(after.vector, before.vector)
    col.update_metadata(["d1"], [{"source": "s1.txt", "sensitivity": "internal"}])
    assert col.get(["d1"])[0].metadata == {"source": "s1.txt", "sensitivity": "internal"}  # title removed


def test_metadata_of_ids_and_first_match_read_metadata_only(tmp_path: Path) -> None:
    _fill(tmp_path / "store")
    col = VectorStore.persistent(tmp_path / "store", read_only=True).get_collection("notes.edge")
    assert col.metadata_of(["d2", "nope", "d0"]) == {
        "d2": {"source": "s2.txt", "sensitivity": "internal"},
        "d0": {"source": "s0.txt", "sensitivity": "internal"},
    }  # no content hash, unknown ids left out
    assert col.first_metadata({"source": "s1.txt"}) == {"source": "s1.txt", "sensitivity": "internal"}
    assert col.first_metadata({"source": "none.txt"}) is None


@needs_ro_mount
def test_query_and_status_commands_work_on_a_read_only_store(tmp_path: Path) -> None:
    import os

    store = tmp_path / "store"
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.txt").write_text("Espresso machines need descaling every two months.")
    (notes / "b.txt").write_text("Mountain bikes with full suspension handle rocky descents.")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEROUTE_", "GEMINI_", "GOOGLE_"))}
    env.update(EDGEROUTE_STORE=str(store), EDGEROUTE_EDGE="hashing", EDGEROUTE_COLLECTION="notes")
    main = [sys.executable, "-c", "from edgeroute.framework.cli import main; main()"]
    indexed = subprocess.run(
        [*main, "index", str(notes), "--sensitivity", "confidential"], env=env, timeout=120
    )
    assert indexed.returncode == 0
    before = sorted((str(f.relative_to(store)), f.stat().st_size) for f in store.rglob("*") if f.is_file())
    code = (
        "import os, sys, subprocess\n"
        f"env = {env!r}\n"
        f"main = {main!r}\n"
        "q = subprocess.run(main + ['query', 'espresso descaling', '--json'], env=env, capture_output=True, text=True)\n"
        "s = subprocess.run(main + ['status', '--json'], env=env, capture_output=True, text=True)\n"
        "print(q.returncode, s.returncode)\n"
        "print(q.stdout if q.returncode else s.stdout, q.stderr, s.stderr, file=sys.stderr)\n"
        "print(q.stdout)\n"
    )
    proc = run_read_only(store, code)
    first, _, rest = proc.stdout.partition("\n")
    assert first == "0 0", proc.stderr
    assert json.loads(rest)["hits"][0]["id"] == "a.txt#0"
    assert "not audited" in proc.stderr  # said, not silently skipped
    after = sorted((str(f.relative_to(store)), f.stat().st_size) for f in store.rglob("*") if f.is_file())
    assert after == before
