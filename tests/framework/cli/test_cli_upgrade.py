"""A store written by edgeroute 0.1.0 (tests/data/store-0.1.0.tar.gz, see tests/data/README.md) still
opens, answers queries, reports its status, syncs and re-indexes with the current code: its ids stay
valid as they are (no migration), nothing is duplicated and nothing is lost."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from router_helpers import API_KEY
from typer.testing import CliRunner

from edgeroute.framework.cli import app
from edgeroute.framework.errors import InputError
from edgeroute.framework.router.outbox import Outbox
from edgeroute.framework.store.chroma import VectorStore
from edgeroute.framework.testing.emulator import GeminiEmulator

FIXTURE = Path(__file__).parents[2] / "data" / "store-0.1.0.tar.gz"
ROOT = Path("/tmp/edgeroute-store-0.1.0")  # where it was written: the store records absolute paths
runner = CliRunner()

EDGE_IDS = {
    "contract.md#0",
    "faq.md#0",
    "laptops.txt#0",
    *(f"leave.md#{i}" for i in range(6)),
    "note-1",
    "vpn.md#0",
}


@pytest.fixture
def old_store(emu: GeminiEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    shutil.rmtree(ROOT, ignore_errors=True)
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(ROOT.parent, filter="data")
    for key in [k for k in os.environ if k.startswith(("EDGEROUTE_", "GEMINI_", "GOOGLE_"))]:
        monkeypatch.delenv(key)
    for k, v in {
        "EDGEROUTE_STORE": str(ROOT / "store"),
        "EDGEROUTE_COLLECTION": "handbook",
        "EDGEROUTE_EDGE": "hashing",
        "GEMINI_API_KEY": API_KEY,
        "GOOGLE_GEMINI_BASE_URL": emu.base_url,
        "NO_PROXY": "127.0.0.1,localhost",
    }.items():
        monkeypatch.setenv(k, v)
    yield ROOT / "store"
    shutil.rmtree(ROOT, ignore_errors=True)


def invoke(*args: str, code: int = 0) -> dict[str, Any]:
    result = runner.invoke(app, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == code, result.output
    try:
        return json.loads(result.stdout)  # type: ignore[no-any-return]
    except json.JSONDecodeError:  # `sync` prints one line per collection
        return json.loads(result.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def stored(store: Path) -> dict[str, dict[str, tuple[str, dict[str, Any]]]]:
    vs = VectorStore.persistent(store, read_only=True)
    out = {}
    for index in ("edge", "cloud"):
        col = vs.get_collection(f"handbook.{index}")
        out[index] = {r.id: (r.text, r.metadata) for r in col.get(col.ids())}
    return out


def test_a_store_written_by_0_1_0_opens_queries_syncs_and_reindexes(old_store: Path) -> None:
    before = stored(old_store)
    assert set(before["edge"]) == EDGE_IDS and len(before["cloud"]) == 7
    with Outbox(old_store / "outbox.sqlite", read_only=True) as box:
        assert set(box.queued("handbook")) == {"laptops.txt#0", "vpn.md#0", "note-1"}

    status = invoke("status")
    assert status["edge_count"] == 11 and status["cloud_count"] == 7 and status["outbox_depth"] == 3
    hits = invoke("query", "carry over annual leave days", "-k", "3")["hits"]
    assert hits and all(h["id"].startswith("leave.md#") for h in hits)

    synced = invoke("sync")
    assert synced["written"] == 3 and synced["remaining"] == 0
    after_sync = stored(old_store)
    assert set(after_sync["edge"]) == EDGE_IDS
    assert set(after_sync["cloud"]) == EDGE_IDS - {"contract.md#0"}  # the confidential one stays at the edge

    docs = ROOT / "docs"
    for folder, sensitivity, n in (("hr", "public", 7), ("it", "public", 2), ("legal", "confidential", 1)):
        again = invoke("index", str(docs / folder), "--sensitivity", sensitivity)
        assert again["documents"] == n and again["edge_unchanged"] == n, folder
        assert again["edge_written"] == again["edge_updated"] == again["pruned"] == 0, folder
    assert stored(old_store) == after_sync  # no duplicates, nothing lost, not even a relabelled record

    # The ids the old release wrote take part in the new check: a new folder cannot overwrite them.
    (docs / "support").mkdir()
    (docs / "support" / "faq.md").write_text("# Support\nCall the desk.\n")
    result = runner.invoke(app, ["index", str(docs / "support"), "--sensitivity", "public"])
    assert isinstance(result.exception, InputError)
    assert f"faq.md#0: stored from {docs / 'hr/faq.md'}" in str(result.exception)
    kept = invoke("index", str(docs / "support"), "--sensitivity", "public", "--id-prefix", "support")
    assert kept["documents"] == 1
    texts = {i: t for i, (t, _) in stored(old_store)["edge"].items()}
    assert set(texts) == EDGE_IDS | {"support/faq.md#0"} and texts["faq.md#0"].startswith("# HR questions")
