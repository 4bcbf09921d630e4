"""The runtime adapters behind the edge embedder (OpenVINO, llama.cpp) and the bench's runtime table,
on the tiny model: no real weights. OpenVINO tests skip cleanly where the wheel is not installed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeroute.framework.edge.embedder import EdgeEmbedder
from edgeroute.framework.edge.model_dir import EMBEDDINGGEMMA_PROMPTS, ModelDirectory, write_manifest
from edgeroute.framework.edge.runtimes import runtime_available, runtime_of
from edgeroute.framework.errors import ConfigurationError
from edgeroute.framework.testing.tiny_model import build_tiny_model

TEXTS = ["a cat and a dog", "the dog runs", "a happy cat sat on the mat near the dog"]


def _as_gguf_dir(src: Path, out: Path) -> Path:
    """A copy of ``src`` whose manifest names a (fake) GGUF graph: enough to test runtime selection."""
    out.mkdir()
    for name in ("tokenizer.json",):
        (out / name).write_bytes((src / name).read_bytes())
    (out / "model.gguf").write_bytes(b"GGUF not really")
    m = ModelDirectory.open(src, verify=False).manifest
    write_manifest(out, type(m)(**{**m.__dict__, "model_file": "model.gguf", "quantization": "gguf-q8_0"}))
    return out


def test_runtime_is_chosen_by_the_graph_file_suffix() -> None:
    assert runtime_of("model.onnx") == "onnxruntime"
    assert runtime_of("x/model.xml") == "openvino"
    assert runtime_of("model.GGUF") == "llamacpp"
    with pytest.raises(ConfigurationError, match=r"must end in \.onnx, \.xml, \.gguf"):
        runtime_of("model.pt")


def test_onnx_directory_runs_on_onnxruntime(tmp_path: Path) -> None:
    edge = EdgeEmbedder.load(build_tiny_model(tmp_path / "tiny"))
    assert edge.runtime == "onnxruntime"
    assert edge.embed_queries(TEXTS).shape == (3, 768)


def test_missing_runtime_package_says_which_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeroute.framework.eval.bench_runtimes import skip_reason

    gguf = _as_gguf_dir(build_tiny_model(tmp_path / "tiny"), tmp_path / "gguf")
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if llama-cpp-python were not installed
    assert not runtime_available("llamacpp")
    with pytest.raises(ConfigurationError, match=r"pip install 'edgeroute\[llamacpp\]'"):
        EdgeEmbedder.load(gguf)
    reason = skip_reason(str(gguf))
    assert reason is not None and "edgeroute[llamacpp]" in reason


def test_bench_table_skips_a_runtime_that_is_not_installed_and_scores_quality(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`bench edge --baseline A --baseline GGUF --quality`: a row per directory that can run, nDCG on the
    SciFact subset for each, and the GGUF directory listed as skipped with its install line."""
    from edgeroute.framework.eval.bench_edge import run_bench

    ours = build_tiny_model(tmp_path / "ours")
    other = build_tiny_model(tmp_path / "other", seed=1)
    gguf = _as_gguf_dir(ours, tmp_path / "gguf")
    data = tmp_path / "data" / "scifact"
    (data / "qrels").mkdir(parents=True)
    words = ["cat", "dog", "mat", "happy", "runs", "sat"]
    docs = [
        {"_id": str(i), "title": "", "text": f"a {words[i % 6]} and the {words[(i + 1) % 6]}"}
        for i in range(12)
    ]
    (data / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    queries = [{"_id": f"q{i}", "text": f"the {words[i]}"} for i in range(3)]
    (data / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
    (data / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\t{i}\t1\n" for i in range(3)), encoding="utf-8"
    )
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    out = run_bench(
        str(ours),
        reference=False,
        data_dir=tmp_path / "data",
        n_docs=4,
        threads=1,
        query_rounds=1,
        doc_repeats=1,
        baseline_dir=[str(other), str(gguf)],
        quality=True,
        quality_extra_docs=4,
    )
    rows = out["rows"]
    assert [r["label"] for r in rows] == [str(ours), str(other)]
    assert rows[0]["query_speedup"] == 1.0 and rows[0]["docs_ratio"] == 1.0
    for r in rows:
        assert 0.0 <= r["ndcg@10"] <= 1.0 and r["quality_docs_per_s"] > 0
        assert "parity_cos_mean" not in r  # no sentence-transformers reference in this run
    assert out["skipped"][0]["label"] == str(gguf) and "edgeroute[llamacpp]" in out["skipped"][0]["reason"]
    assert out["baseline"]["engine"].startswith("onnx[")


def test_quality_subset_is_fixed_and_holds_every_relevant_document(tmp_path: Path) -> None:
    from edgeroute.framework.eval.bench_quality import build_quality_set

    data = Path(__file__).resolve().parents[3].parent / "shared" / "data"
    if not (data / "scifact" / "corpus.jsonl").is_file():
        pytest.skip("the shared SciFact data is not here")
    prompts = dict(EMBEDDINGGEMMA_PROMPTS)
    a = build_quality_set(data, prompts, extra_docs=50)
    b = build_quality_set(data, prompts, extra_docs=50)
    assert a.doc_ids == b.doc_ids and len(a.queries) == 300
    relevant = {d for rel in a.qrels.values() for d in rel}
    assert relevant <= set(a.doc_ids) and len(a.doc_ids) == len(relevant) + 50
    assert len(a.parity) == 8 + 24 + 32


def test_openvino_conversion_matches_onnxruntime(tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    from edgeroute.framework.edge.export.runtimes_convert import to_openvino

    tiny = build_tiny_model(tmp_path / "tiny")
    ov_dir = to_openvino(tiny, tmp_path / "ov", "fp32")
    ort_edge = EdgeEmbedder.load(tiny, threads=1)
    ov_edge = EdgeEmbedder.load(ov_dir, threads=1)  # sha256 of model.xml/.bin checked like any directory
    assert ov_edge.runtime == "openvino" and not ov_edge.has_token_states
    assert ov_edge.manifest.quantization == "ov-fp32"
    assert ov_edge.space.fingerprint != ort_edge.space.fingerprint  # another recipe: never mixed
    a, b = ort_edge.embed_documents(TEXTS), ov_edge.embed_documents(TEXTS)
    assert np.allclose(a, b, atol=1e-5)
    assert ov_edge.embed_queries(TEXTS[:1], dims=256).shape == (1, 256)


def test_bench_edge_cli_runtimes_folder_prints_one_row_per_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`edgeroute bench edge --runtimes DIR`: every model directory under DIR is a row; one whose runtime
    is not installed is named with its install line (printed literally, not eaten as markup)."""
    from typer.testing import CliRunner

    from edgeroute.framework.cli import edge  # noqa: F401  (registers the commands)
    from edgeroute.framework.cli.app import app

    ours = build_tiny_model(tmp_path / "ours")
    folder = tmp_path / "runtimes"
    build_tiny_model(folder / "onnx-other", seed=1)
    _as_gguf_dir(ours, folder / "gguf-q8_0")
    (folder / "not-a-model").mkdir()
    corpus = tmp_path / "data" / "scifact" / "corpus.jsonl"
    corpus.parent.mkdir(parents=True)
    corpus.write_text(
        "".join(
            json.dumps({"_id": str(i), "title": "", "text": f"a cat number {i}"}) + "\n" for i in range(3)
        ),
        encoding="utf-8",
    )
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    args = ["bench", "edge", "--no-reference", "--threads", "1", "--model", str(ours), "--n-docs", "2"]
    args += [
        "--query-rounds",
        "1",
        "--doc-repeats",
        "1",
        "--runtimes",
        str(folder),
        "--data",
        str(tmp_path / "data"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "onnx-other" in result.output and "x first" in result.output
    assert "skipped" in result.output and "pip install 'edgeroute[llamacpp]'" in result.output
    assert "not-a-model" not in result.output  # no manifest: not a model directory, not listed
