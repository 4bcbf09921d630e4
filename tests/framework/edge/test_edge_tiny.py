"""Fast plumbing tests of the edge embedder on the generated tiny model (no torch, no real weights)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from edgeroute.framework.edge.embedder import EdgeEmbedder, SessionSettings
from edgeroute.framework.edge.model_dir import ModelDirectory, resolve_model_dir
from edgeroute.framework.embedder import Embedder
from edgeroute.framework.errors import ConfigurationError, InputError, ModelIntegrityError, ModelNotFoundError
from edgeroute.framework.testing.tiny_model import TINY_MODEL_ID, build_tiny_model


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(build_tiny_model(tmp_path_factory.mktemp("models") / "tiny"))


@pytest.fixture(scope="module")
def edge(tiny_dir: Path) -> EdgeEmbedder:
    return EdgeEmbedder.load(tiny_dir, threads=1, batch_size=2)


def test_builds_fast_in_the_model_dir_format(tmp_path: Path) -> None:
    build_tiny_model(tmp_path / "warm")  # imports are not the builder's cost
    start = time.perf_counter()
    out = build_tiny_model(tmp_path / "tiny")
    assert time.perf_counter() - start < 0.5
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["files"]) == {"model.onnx", "tokenizer.json"}
    assert manifest["dims"] == 768 and manifest["matryoshka_dims"] == [768, 512, 256, 128]
    assert manifest["modalities"] == ["text"] and manifest["model_id"] == TINY_MODEL_ID
    assert manifest["prompts"]["query"] == "task: search result | query: "


def test_satisfies_embedder_protocol_and_space(edge: EdgeEmbedder) -> None:
    assert isinstance(edge, Embedder)
    assert edge.space.provider == "edge" and edge.space.dims == 768
    assert edge.space.prompt_format == "embeddinggemma" and edge.space.quantization == "none"
    assert edge.space.revision == edge.manifest.revision
    assert edge.space_for(256).dims == 256 and edge.space_for(256) != edge.space


@pytest.mark.parametrize("dims", [768, 512, 256, 128])
def test_dims_are_normalised_matryoshka_prefixes(edge: EdgeEmbedder, dims: int) -> None:
    texts = ["what causes dehydration?", "cats and dogs are pets"]
    full = edge.embed_queries(texts)
    cut = edge.embed_queries(texts, dims=dims)
    assert cut.shape == (2, dims) and cut.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(cut, axis=1), 1.0, atol=1e-5)
    expected = full[:, :dims] / np.linalg.norm(full[:, :dims], axis=1, keepdims=True)
    np.testing.assert_allclose(cut, expected, atol=1e-6)


def test_prompts_change_the_vector(edge: EdgeEmbedder) -> None:
    q = edge.embed_queries(["fresh water"])
    d = edge.embed_documents(["fresh water"])
    raw = edge.embed(["task: search result | query: fresh water"], None)
    np.testing.assert_allclose(q, raw, atol=1e-6)
    assert float((q @ d.T)[0, 0]) < 0.9999
    titled = edge.embed_documents(["fresh water"], titles=["river"])
    np.testing.assert_allclose(titled, edge.embed(["title: river | text: fresh water"], None), atol=1e-6)
    untitled = edge.embed_documents(["fresh water"], titles=[None])
    np.testing.assert_allclose(untitled, d, atol=1e-6)
    task = edge.embed_queries(["fresh water"], task="Clustering")
    np.testing.assert_allclose(task, edge.embed(["fresh water"], "Clustering"), atol=1e-6)
    assert edge.format_prompt("x", "STS") == "task: sentence similarity | query: x"


def test_sorting_by_length_keeps_input_order(edge: EdgeEmbedder) -> None:
    texts = ["cat", "the big old dog eats food every day", "sun", "water " * 20, "many cats and dogs"]
    batched = edge.embed_documents(texts)
    single = np.concatenate([edge.embed_documents([t]) for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_truncation_is_counted_and_logged(tiny_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    edge = EdgeEmbedder.load(tiny_dir)
    with caplog.at_level(logging.WARNING, logger="edgeroute"):
        edge.embed_documents(["water " * 200, "short text", "ice " * 100])
    assert edge.truncated_count == 2
    assert "2 of 3 input(s) longer than 64 tokens were truncated" in caplog.text
    assert edge.count_tokens(["water " * 200]) == [64]


async def test_async_runs_off_the_event_loop(tiny_dir: Path) -> None:
    edge = EdgeEmbedder.load(tiny_dir, threads=1)
    ticks = 0
    loop_thread_ids: set[int] = set()
    import threading

    original = edge._encode

    def slow_encode(texts: list[str], dims: int) -> npt.NDArray[np.float32]:
        loop_thread_ids.add(threading.get_ident())
        time.sleep(0.2)  # stands in for a long inference; a blocked loop would stop the ticker
        return np.asarray(original(texts, dims), dtype=np.float32)

    edge._encode = slow_encode

    async def ticker() -> None:
        nonlocal ticks
        for _ in range(10):
            await asyncio.sleep(0.01)
            ticks += 1

    q, d, _ = await asyncio.gather(
        edge.aembed_queries(["cat"]), edge.aembed_documents(["dog"], dims=128), ticker()
    )
    assert ticks == 10
    assert threading.get_ident() not in loop_thread_ids
    assert q.shape == (1, 768) and d.shape == (1, 128)


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (["cat", ""], "texts[1] is empty"),
        (["   "], "texts[0] is empty"),
        (["cat", 3], "texts[1] is int, not str"),
        ("a single string", "wrap a single text as [text]"),
        ([b"bytes"], "texts[0] is bytes"),
        (["caf\u00e9", "a\ud800b"], "texts[1] holds an unpaired surrogate (U+D800) at character 1"),
    ],
)
def test_bad_texts_are_input_errors(edge: EdgeEmbedder, texts: object, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        edge.embed_queries(texts)


@pytest.mark.parametrize("dims", [0, 300, 1024, -1, True, 256.0])
def test_unsupported_dims(edge: EdgeEmbedder, dims: object) -> None:
    with pytest.raises(InputError, match="use one of 768, 512, 256, 128"):
        edge.embed_queries(["cat"], dims=dims)


def test_other_bad_inputs(edge: EdgeEmbedder, tiny_dir: Path) -> None:
    with pytest.raises(InputError, match="unknown prompt name 'nope'"):
        edge.embed(["cat"], "nope")
    with pytest.raises(InputError, match=r"one entry .* per text"):
        edge.embed_documents(["a", "b"], titles=["t"])
    assert edge.embed_queries([]).shape == (0, 768)
    with pytest.raises(ConfigurationError, match="holds a 'none' model, not 'int8'"):
        EdgeEmbedder.load(tiny_dir, quantization="int8")
    with pytest.raises(InputError, match="batch_size"):
        EdgeEmbedder(ModelDirectory.open(tiny_dir), SessionSettings(batch_size=0))


def test_token_budget_batches_give_the_same_vectors(edge: EdgeEmbedder, tiny_dir: Path) -> None:
    from edgeroute.framework.edge.batching import length_batches as _batches

    lengths = np.array([9, 3, 7, 5, 1])
    order = np.argsort(-lengths, kind="stable")
    got = [list(b) for b in _batches(order, lengths, batch_size=3, max_tokens=15)]
    assert got == [[0], [2, 3], [1, 4]]  # 9 alone (2 x 9 > 15), then 2 x 7, then 2 x 3
    assert [list(b) for b in _batches(order, lengths, batch_size=16, max_tokens=1)] == [
        [0],
        [2],
        [3],
        [1],
        [4],
    ]
    texts = ["a happy dog", "cat", "the big red ball on the green grass", "dog and cat"]
    tight = EdgeEmbedder(
        ModelDirectory.open(tiny_dir), SessionSettings(max_batch_tokens=1, memory_arena=False)
    )
    np.testing.assert_allclose(tight.embed(texts, "query"), edge.embed(texts, "query"), atol=1e-6)
    with pytest.raises(InputError, match="max_batch_tokens"):
        EdgeEmbedder(ModelDirectory.open(tiny_dir), SessionSettings(max_batch_tokens=0))


def test_corrupted_or_missing_file_is_an_integrity_error(tmp_path: Path) -> None:
    d = build_tiny_model(tmp_path / "tiny")
    tok = d / "tokenizer.json"
    tok.write_text(tok.read_text().replace('"cat"', '"kat"'))
    with pytest.raises(ModelIntegrityError, match=r"tokenizer.json is corrupted.*re-export"):
        EdgeEmbedder.load(d)
    (d / "model.onnx").unlink()
    with pytest.raises(ModelIntegrityError, match=r"missing model.onnx"):
        ModelDirectory.open(d, verify=False)
    (d / "manifest.json").write_text("{not json")
    with pytest.raises(ModelIntegrityError, match="not valid JSON"):
        ModelDirectory.open(d)


def test_hub_layout_without_manifest_gets_one_built(tmp_path: Path, tiny_dir: Path) -> None:
    hub = tmp_path / "hub"
    (hub / "onnx").mkdir(parents=True)
    (hub / "onnx" / "model.onnx").write_bytes((tiny_dir / "model.onnx").read_bytes())
    (hub / "tokenizer.json").write_bytes((tiny_dir / "tokenizer.json").read_bytes())
    edge = EdgeEmbedder.load(hub)
    assert edge.manifest.model_id == "google/embeddinggemma-300m"
    assert edge.manifest.model_file == "onnx/model.onnx"
    assert edge.embed_queries(["cat"]).shape == (1, 768)


def test_resolution_order(tmp_path: Path, tiny_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("EDGEROUTE_CACHE_DIR", str(cache))
    monkeypatch.setenv("EDGEROUTE_EDGE_MODEL", str(tiny_dir))
    cached = build_tiny_model(cache / "models" / "embeddinggemma-300m", seed=1)
    explicit = build_tiny_model(tmp_path / "explicit", seed=2)
    assert resolve_model_dir(explicit) == explicit
    assert resolve_model_dir() == tiny_dir
    monkeypatch.delenv("EDGEROUTE_EDGE_MODEL")
    assert resolve_model_dir() == cached


def test_not_found_names_every_place_tried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEROUTE_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("EDGEROUTE_EDGE_MODEL", str(tmp_path / "nowhere"))
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model_dir(download=False)
    message = str(info.value)
    assert f"$EDGEROUTE_EDGE_MODEL={tmp_path / 'nowhere'}" in message
    assert str(tmp_path / "empty-cache" / "models" / "embeddinggemma-300m") in message
    assert "onnx-community/embeddinggemma-300m-ONNX" in message
    assert "edgeroute model export" in message
    assert len(info.value.tried) == 3
    with pytest.raises(ModelNotFoundError, match="given explicitly"):
        resolve_model_dir(tmp_path / "missing")


def test_hub_failure_is_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEROUTE_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.delenv("EDGEROUTE_EDGE_MODEL", raising=False)
    try:  # hermetic on a networked machine too: the hub's first call goes to a closed loopback port
        import huggingface_hub.constants

        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    except ImportError:
        pass  # then the resolver lists "huggingface_hub is not installed" as the hub attempt
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model_dir(hub_timeout_s=2)
    assert "Hugging Face hub onnx-community/embeddinggemma-300m-ONNX (" in info.value.tried[-1]
    assert "$EDGEROUTE_EDGE_MODEL (not set)" in info.value.tried[0]


def test_cli_info_and_verify(tiny_dir: Path) -> None:
    from typer.testing import CliRunner

    from edgeroute.framework.cli.edge import app

    runner = CliRunner()
    info = runner.invoke(app, ["model", "info", str(tiny_dir), "--json"])
    assert info.exit_code == 0, info.output
    assert json.loads(info.output)["model_id"] == TINY_MODEL_ID
    verify = runner.invoke(app, ["model", "verify", str(tiny_dir)])
    assert verify.exit_code == 0, verify.output
    assert "2 files match the manifest" in verify.output


def test_export_rejects_bad_arguments_before_loading_torch(tmp_path: Path) -> None:
    from edgeroute.framework.edge.export.exporter import export_model

    with pytest.raises(InputError, match="unknown quantization 'int3'; use one of: none, a8w7-e8"):
        export_model(tmp_path, tmp_path / "out", quantize="int3")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not an edgeroute model directory"):
        export_model(tmp_path, tmp_path / "busy")


def test_bench_sample_missing_is_a_clear_error(tmp_path: Path) -> None:
    from edgeroute.framework.eval.bench_edge import load_sample_docs

    with pytest.raises(ConfigurationError, match="pass --data DIR"):
        load_sample_docs(tmp_path)


def test_bench_edge_measures_a_baseline_model_in_the_same_run(tmp_path: Path) -> None:
    """`edgeroute bench edge --baseline DIR`: both models measured, each in its own process, with ratios."""
    from typer.testing import CliRunner

    from edgeroute.framework.cli import edge  # noqa: F401  (registers the commands)
    from edgeroute.framework.cli.app import app

    ours = build_tiny_model(tmp_path / "ours")
    other = build_tiny_model(tmp_path / "other", seed=1)
    corpus = tmp_path / "data" / "scifact" / "corpus.jsonl"
    corpus.parent.mkdir(parents=True)
    corpus.write_text(
        "".join(
            json.dumps({"_id": str(i), "title": f"title {i}", "text": f"a cat and a dog number {i}"}) + "\n"
            for i in range(4)
        ),
        encoding="utf-8",
    )
    args = ["bench", "edge", "--json", "--no-reference", "--threads", "1"]
    args += ["--model", str(ours), "--baseline", str(other), "--data", str(tmp_path / "data")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    assert out["sentence_transformers"] is None
    for engine in ("onnx", "baseline"):
        assert out[engine]["query_p50_ms"] > 0 and out[engine]["docs_per_s"] > 0
        assert out[engine]["n_docs"] == 4
        assert out[engine]["query_9w_p50_ms"] > 0  # the nine-word query, timed on its own
    assert set(out["baseline_ratios"]) == {
        "query_p50_speedup",
        "query_9w_p50_speedup",
        "throughput_ratio",
        "rss_ratio",
        "query_rss_ratio",
        "load_speedup",
    }
    assert out["baseline_ratios"]["query_p50_speedup"] == round(
        out["baseline"]["query_p50_ms"] / out["onnx"]["query_p50_ms"], 2
    )


def test_lazy_load_reads_only_the_manifest_until_the_first_call(tiny_dir: Path) -> None:
    edge = EdgeEmbedder.load(tiny_dir, threads=1, lazy=True)
    assert edge.loaded == {"tokenizer": False, "session": False}
    # Identity, prompts and token-state support come from the manifest: still nothing loaded.
    assert edge.space.dims == 768 and edge.prompt_names and not edge.has_token_states
    assert edge.loaded == {"tokenizer": False, "session": False}
    assert edge.count_tokens(["a cat"]) and edge.loaded == {"tokenizer": True, "session": False}
    got = edge.embed_queries(["the cat sat"])
    assert edge.loaded == {"tokenizer": True, "session": True}
    eager = EdgeEmbedder.load(tiny_dir, threads=1)
    assert eager.loaded == {"tokenizer": True, "session": True}
    np.testing.assert_array_equal(got, eager.embed_queries(["the cat sat"]))


def test_lazy_load_reports_a_corrupted_file_on_the_call_that_needs_it(tmp_path: Path) -> None:
    d = build_tiny_model(tmp_path / "tiny")
    graph = d / "model.onnx"
    graph.write_bytes(graph.read_bytes() + b"\0")
    edge = EdgeEmbedder.load(d, lazy=True)  # nothing hashed yet
    assert edge.count_tokens(["a cat"])  # the tokenizer's files are intact
    with pytest.raises(ModelIntegrityError, match=r"model.onnx is corrupted"):
        edge.embed_queries(["a cat"])
    assert edge.loaded["session"] is False
