"""`edgeroute eval` and `edgeroute collections` through the real Typer app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeroute.framework.cli import store as _  # noqa: F401  (registers the commands)
from edgeroute.framework.cli.app import app
from edgeroute.framework.errors import InputError
from edgeroute.framework.store.chroma import VectorStore
from edgeroute.framework.testing.hashing import HashingEmbedder

runner = CliRunner()


def write_dataset(root: Path) -> Path:
    """Three documents, one judged query each."""
    root.mkdir(parents=True)
    topics = ["tea leaves", "river boats", "violin strings"]
    docs = [json.dumps({"_id": f"d{i}", "text": f"All about {t}."}) for i, t in enumerate(topics)]
    (root / "corpus.jsonl").write_text("\n".join(docs) + "\n", encoding="utf-8")
    queries = [json.dumps({"_id": f"q{i}", "text": t}) for i, t in enumerate(topics)]
    (root / "queries.jsonl").write_text("\n".join(queries) + "\n", encoding="utf-8")
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text("".join(f"q{i}\td{i}\t1\n" for i in range(3)), encoding="utf-8")
    return root


def test_eval_json_with_hashing_embedder(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "toy")
    args = ["eval", str(root), "--embedder", "hashing", "--dims", "64", "--cache", str(tmp_path / "c.sqlite")]
    first = runner.invoke(app, [*args, "--json"])
    assert first.exit_code == 0, first.output
    report = json.loads(first.output)
    assert report["documents"] == 3 and report["recall_at_100"] == 1.0 and report["docs_embedded"] == 3
    second = json.loads(runner.invoke(app, [*args, "--json"]).output)
    assert second["cache_hits"] == 3 and second["docs_embedded"] == 0
    table = runner.invoke(app, [*args, "--limit-queries", "2"])
    assert table.exit_code == 0 and "nDCG@10" in table.output and "2 queries" in table.output


def test_eval_bad_input(tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval", str(tmp_path), "--embedder", "hashing", "--no-cache"])
    assert isinstance(result.exception, InputError) and "corpus.jsonl" in str(result.exception)
    result = runner.invoke(app, ["eval", str(tmp_path), "--embedder", "magic"])
    assert isinstance(result.exception, InputError)


def test_collections(tmp_path: Path) -> None:
    store = VectorStore.persistent(tmp_path / "s")
    emb = HashingEmbedder(64)
    col = store.create_collection("docs.edge", emb.space)
    col.upsert(["a"], emb.embed_documents(["x y"]), space=emb.space, texts=["x y"], content_hashes=["h"])
    out = runner.invoke(app, ["collections", "--store", str(tmp_path / "s"), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == [{"name": "docs.edge", "space": emb.space.fingerprint, "count": 1}]
    table = runner.invoke(app, ["collections", "--store", str(tmp_path / "s")])
    assert "docs.edge" in table.output
    missing = runner.invoke(app, ["collections", "--store", str(tmp_path / "none")])
    assert isinstance(missing.exception, InputError)


@pytest.mark.slow
def test_eval_with_the_real_edge_model(tmp_path: Path) -> None:
    """EmbeddingGemma (resolved as usual) on 30 XQuAD paragraphs and their questions."""
    src = Path(__file__).resolve().parents[4] / "shared" / "data" / "xquad" / "en"
    root = tmp_path / "xquad-30"
    (root / "qrels").mkdir(parents=True)
    docs = (src / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:30]
    keep = {json.loads(d)["_id"] for d in docs}
    (root / "corpus.jsonl").write_text("\n".join(docs) + "\n", encoding="utf-8")
    qrels = [
        r
        for r in (src / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]
        if r.split("\t")[1] in keep
    ]
    (root / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n", encoding="utf-8")
    (root / "queries.jsonl").write_bytes((src / "queries.jsonl").read_bytes())
    args = [
        "eval",
        str(root),
        "--dims",
        "256",
        "--limit-queries",
        "30",
        "--cache",
        str(tmp_path / "c.sqlite"),
    ]
    out = runner.invoke(app, [*args, "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["ndcg_at_10"] > 0.8 and report["recall_at_100"] == 1.0 and report["docs_embedded"] == 30
    assert json.loads(runner.invoke(app, [*args, "--json"]).output)["docs_embedded"] == 0


def test_eval_with_an_edge_model_directory(tmp_path: Path) -> None:
    """The default --embedder edge path, on the generated tiny model in the EmbeddingGemma format."""
    from edgeroute.framework.testing.tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    root = write_dataset(tmp_path / "toy")
    args = ["eval", str(root), "--model", str(model), "--dims", "128", "--cache", str(tmp_path / "c.sqlite")]
    out = runner.invoke(app, [*args, "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["space"].split("/")[2] == "128" and report["docs_embedded"] == 3
    assert json.loads(runner.invoke(app, [*args, "--json"]).output)["cache_hits"] == 3
