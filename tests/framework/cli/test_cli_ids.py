"""Document ids and where documents came from: two folders with files of the same names, one file
from two roots, --id-prefix, and re-indexing, pruning and `delete --source` with prefixes. Real
embedded Chroma, the hashing edge embedder, the emulator as the cloud."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from router_helpers import API_KEY, JPEG
from typer.testing import CliRunner

from edgeroute.framework.cli import app
from edgeroute.framework.documents import Document
from edgeroute.framework.errors import InputError
from edgeroute.framework.router.outbox import Outbox
from edgeroute.framework.settings import build_engine, resolve_settings
from edgeroute.framework.store.chroma import VectorStore
from edgeroute.framework.testing.emulator import GeminiEmulator

runner = CliRunner()
LONG = "\n\n".join(
    " ".join(f"Leave rule {p}.{s}: staff may carry over {p + s} days of annual leave." for s in range(40))
    for p in range(3)
)


@pytest.fixture
def env(tmp_path: Path, emu: GeminiEmulator, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in [k for k in os.environ if k.startswith(("EDGEROUTE_", "GEMINI_", "GOOGLE_"))]:
        monkeypatch.delenv(key)
    store = tmp_path / "store"
    for k, v in {
        "EDGEROUTE_STORE": str(store),
        "EDGEROUTE_COLLECTION": "handbook",
        "EDGEROUTE_EDGE": "hashing",
        "GEMINI_API_KEY": API_KEY,
        "GOOGLE_GEMINI_BASE_URL": emu.base_url,
        "NO_PROXY": "127.0.0.1,localhost",
    }.items():
        monkeypatch.setenv(k, v)
    return store


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    files = {
        "hr/faq.md": "# HR questions\nPayslips are published on the last working day of the month.\n",
        "hr/leave.md": "# Leave policy\n" + LONG + "\n",
        "it/faq.md": "# IT questions\nReset a forgotten password at the service desk on floor two.\n",
        "it/vpn.md": "# VPN\nConnect to the VPN before opening the intranet from home.\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def index(*args: str, code: int = 0) -> dict[str, Any]:
    result = runner.invoke(app, ["index", *args, "--sensitivity", "public", "--json"], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def refused(*args: str) -> str:
    """The message of an `index` run refused as bad input (exit 2 through `main`)."""
    result = runner.invoke(app, ["index", *args, "--sensitivity", "public"])
    assert isinstance(result.exception, InputError), result.output
    return " ".join(str(result.exception).split())


def snapshot(store: Path) -> dict[str, Any]:
    """Everything stored for the collection: both indexes (id -> text, metadata) and the outbox."""
    vs = VectorStore.persistent(store, read_only=True)
    out: dict[str, Any] = {}
    for name in ("handbook.edge", "handbook.cloud"):
        if name in vs.list_collections():
            col = vs.get_collection(name)
            out[name] = {r.id: (r.text, r.metadata) for r in col.get(col.ids())}
    with Outbox(store / "outbox.sqlite", read_only=True) as box:
        out["outbox"] = box.queued("handbook")
    return out


def edge_texts(store: Path) -> dict[str, str]:
    return {i: text for i, (text, _) in snapshot(store)["handbook.edge"].items()}


def test_a_second_folder_with_the_same_file_names_is_refused_and_nothing_is_written(
    env: Path, docs: Path, emu: GeminiEmulator
) -> None:
    first = index(str(docs / "hr"))
    assert first["documents"] >= 3 and first["queued"] == 0  # leave.md is several chunks
    before = snapshot(env)
    assert before["handbook.edge"]["faq.md#0"][0].startswith("# HR questions")
    assert len(before["handbook.edge"]) == len(before["handbook.cloud"]) == first["documents"]
    sent = emu.request_count

    # Through the real entry point: the exit code and the message a user sees.
    cmd = [sys.executable, "-c", "from edgeroute.framework.cli import main; main()"]
    proc = subprocess.run(
        [*cmd, "index", str(docs / "it"), "--sensitivity", "public"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    message = " ".join(proc.stderr.split())
    assert (
        f"error: 1 document id(s) in collection 'handbook' are already taken by other files; indexing "
        f"{docs / 'it'} would replace the documents indexed from {docs / 'hr'}, so nothing was written: "
        f"faq.md#0: stored from {docs / 'hr/faq.md'} (indexed from {docs / 'hr'}); now from "
        f"{docs / 'it/faq.md'} To keep both, give this PATH's ids a prefix (`--id-prefix it`"
    ) in message
    assert f"`edgeroute delete --source {docs / 'hr'}`, then `edgeroute index {docs}`" in message
    assert snapshot(env) == before  # the HR page is intact, and vpn.md was not written either
    assert emu.request_count == sent  # refused before any cloud call

    both = index(str(docs / "it"), "--id-prefix", "it")
    assert both["documents"] == 2
    texts = edge_texts(env)
    assert texts["faq.md#0"].startswith("# HR questions")
    assert texts["it/faq.md#0"].startswith("# IT questions") and "it/vpn.md#0" in texts
    assert len(texts) == first["documents"] + 2
    stored = snapshot(env)
    assert stored["handbook.edge"]["it/faq.md#0"][1]["id_prefix"] == "it"
    assert set(stored["handbook.cloud"]) == set(stored["handbook.edge"])
    hits = json.loads(
        runner.invoke(app, ["query", "forgotten password service desk", "-k", "3", "--json"]).stdout
    )["hits"]
    assert hits[0]["id"] == "it/faq.md#0"

    # The prefix is recorded: re-indexing the folder without the option keeps its ids.
    again = index(str(docs / "it"))
    assert again["edge_written"] == 0 and again["edge_unchanged"] == 2 and again["pruned"] == 0
    assert snapshot(env) == stored
    # Another prefix for the same folder would store it twice.
    assert "indexed into collection 'handbook' with --id-prefix it" in refused(
        str(docs / "it"), "--id-prefix", "support"
    )
    assert "not a valid id prefix" in refused(str(docs / "it"), "--id-prefix", "../x")
    assert snapshot(env) == stored


def test_one_run_with_two_folders_of_the_same_file_names_is_refused(env: Path, docs: Path) -> None:
    message = refused(str(docs / "hr"), str(docs / "it"))
    assert "1 document id(s) would come from two files in this one run" in message
    assert f"faq.md#0: from {docs / 'hr/faq.md'} and {docs / 'it/faq.md'}" in message
    message = refused(str(docs), str(docs / "hr"))  # overlapping PATHs: each hr file under two ids
    assert "2 file(s) would be stored twice, under two ids each, by overlapping PATHs" in message
    assert f"{docs / 'hr/faq.md'}: as faq.md#... and hr/faq.md#..." in message
    assert not env.exists() or "handbook.edge" not in snapshot(env)


def test_the_same_files_from_overlapping_roots_are_refused_both_ways(env: Path, docs: Path) -> None:
    index(str(docs / "hr"))
    before = snapshot(env)
    message = refused(str(docs))  # the parent folder, after the child
    assert "file(s) that indexing" in message and "under other ids" in message
    assert (
        f"{docs / 'hr/faq.md'}: stored as faq.md#0 (indexed from {docs / 'hr'}); now as hr/faq.md#0"
        in message
    )
    assert f"`edgeroute delete --source {docs / 'hr'}`" in message
    assert snapshot(env) == before

    # What the message says to do works: remove the earlier copies, index the parent.
    assert runner.invoke(app, ["delete", "--source", str(docs / "hr")]).exit_code == 0
    parent = index(str(docs))
    assert set(edge_texts(env)) == {d for d in edge_texts(env) if d.startswith(("hr/", "it/"))}
    assert parent["documents"] == len(edge_texts(env))

    message = refused(str(docs / "hr"))  # the child, after the parent
    assert "now as faq.md#0" in message and f"Re-index {docs} instead, which holds them already" in message
    assert f"`edgeroute delete --source {docs / 'hr'}`" in message


def test_reindexing_unchanged_and_changed_chunked_files_is_no_collision(env: Path, docs: Path) -> None:
    first = index(str(docs / "hr"))
    chunks = sorted(i for i in edge_texts(env) if i.startswith("leave.md#"))
    assert len(chunks) >= 3 and chunks[:2] == ["leave.md#0", "leave.md#1"]
    again = index(str(docs / "hr"))
    assert again["edge_written"] == 0 and again["edge_unchanged"] == first["documents"]
    assert again["edge_updated"] == 0 and again["pruned"] == 0

    (docs / "hr/leave.md").write_text("# Leave policy\nAsk your manager.\n")  # 3+ chunks -> 1
    shrunk = index(str(docs / "hr"))  # the old chunks share the file's naming: stale, not duplicates
    assert shrunk["pruned"] == len(chunks) - 1
    assert set(edge_texts(env)) == {"faq.md#0", "leave.md#0"}

    one = index(str(docs / "hr/faq.md"))  # one file of the folder on its own: same id, same file
    assert one["documents"] == 1 and one["edge_written"] == 0
    assert set(edge_texts(env)) == {"faq.md#0", "leave.md#0"}


def test_prune_and_delete_source_with_prefixes(env: Path, docs: Path) -> None:
    index(str(docs / "hr"), "--id-prefix", "hr")
    index(str(docs / "it"), "--id-prefix", "it")
    (docs / "it/vpn.md").unlink()
    pruned = index(str(docs / "it"))  # prefix kept from the first run
    assert pruned["pruned"] == 1
    texts = edge_texts(env)
    assert "it/vpn.md#0" not in texts and "it/faq.md#0" in texts
    assert {i for i in texts if i.startswith("hr/")} >= {"hr/faq.md#0", "hr/leave.md#0", "hr/leave.md#1"}

    message = refused(str(docs / "it/faq.md"))  # one file of it, on its own, forgetting the prefix
    assert "stored as it/faq.md#0" in message and "Index them with `--id-prefix it` as before" in message
    assert index(str(docs / "it/faq.md"), "--id-prefix", "it")["edge_written"] == 0

    result = runner.invoke(app, ["delete", "--source", str(docs / "it/faq.md"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ids"] == ["it/faq.md#0"]
    stored = snapshot(env)
    assert all(i.startswith("hr/") for i in stored["handbook.edge"]) and stored["handbook.edge"]
    assert set(stored["handbook.cloud"]) == set(stored["handbook.edge"])


def test_records_without_a_source_path_and_queued_media_are_not_overwritten(
    env: Path, docs: Path, tmp_path: Path
) -> None:
    settings = resolve_settings(store=env, collection="handbook", edge="hashing", offline=True, env={})
    with build_engine(settings) as engine:  # a document ingested through the library
        engine.ingest([Document(id="faq.md#0", text="Library note about payslips.", sensitivity="public")])
    message = refused(str(docs / "hr"))
    assert "faq.md#0: stored from (no source path: ingested through the library or the service)" in message
    assert "`edgeroute delete faq.md#0 ...`" in message
    assert edge_texts(env) == {"faq.md#0": "Library note about payslips."}

    # A photo has no text: queued offline, it is in the outbox only, and still no one else's id.
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "photo.jpg").write_bytes(JPEG)
    report = index(str(tmp_path / "a"), "--offline", code=3)
    assert report["queued"] == 2  # the photo, and the library note still waiting
    message = refused(str(tmp_path / "b"), "--offline")
    assert f"photo.jpg#0: stored from {tmp_path / 'a/photo.jpg'}" in message
    assert snapshot(env)["outbox"]["photo.jpg#0"]["path"] == str(tmp_path / "a/photo.jpg")
