"""The Hugging Face hub download path of resolve_model_dir, against a loopback fake hub (fast, no real model).

The tiny model is laid out as the onnx-community export (``onnx/model.onnx`` + ``onnx/model.onnx_data``,
``tokenizer.json``, ``config_sentence_transformers.json``, no manifest) and served by
``fake_hub.FakeHub`` under ``HUB_REPO``. The loads run in a subprocess because huggingface_hub reads
``HF_ENDPOINT`` (and its offline flag and timeouts) once, at import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fake_hub import FakeHub

from edgeroute.framework.edge.embedder import EdgeEmbedder
from edgeroute.framework.edge.model_dir import (
    DEFAULT_MODEL_ID,
    DEFAULT_MODEL_NAME,
    HUB_REPO,
    ModelDirectory,
)
from edgeroute.framework.testing.tiny_model import build_tiny_model

pytest.importorskip("huggingface_hub")

ALLOWED = {
    "onnx/model.onnx",
    "onnx/model.onnx_data",
    "tokenizer.json",
    "config_sentence_transformers.json",
}
EXTRA = {"onnx/model_q4.onnx", "onnx/model_q4.onnx_data", "README.md", ".gitattributes"}
QUERY = "a cat"

LOAD_SNIPPET = """
import json
from edgeroute.framework.edge.embedder import EdgeEmbedder
edge = EdgeEmbedder.load(threads=1)
vec = edge.embed_queries([__QUERY__])
print(json.dumps({
    "model_dir": str(edge.model_dir),
    "model_file": edge.manifest.model_file,
    "shape": list(vec.shape),
    "vector": vec[0].tolist(),
    "space": {"model": edge.space.model, "revision": edge.space.revision},
    "fingerprint": edge.space.fingerprint,
}))
""".replace("__QUERY__", repr(QUERY))

RESOLVE_SNIPPET = """
import json, sys
from edgeroute.framework.errors import ModelNotFoundError
from edgeroute.framework.edge.model_dir import resolve_model_dir
try:
    path = resolve_model_dir(hub_timeout_s=float(sys.argv[1]) if len(sys.argv) > 1 else 10.0)
except ModelNotFoundError as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc), "tried": exc.tried}))
else:
    print(json.dumps({"path": str(path)}))
"""


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(build_tiny_model(tmp_path_factory.mktemp("models") / "tiny"))


@pytest.fixture(scope="module")
def hub_repo(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model in the onnx-community layout, weights in external data as in the real export."""
    import onnx

    repo = tmp_path_factory.mktemp("hub") / "repo"
    (repo / "onnx").mkdir(parents=True)
    model = onnx.load(str(tiny_dir / "model.onnx"))
    onnx.save_model(
        model,
        str(repo / "onnx" / "model.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="model.onnx_data",
        size_threshold=1024,
    )
    assert (repo / "onnx" / "model.onnx_data").stat().st_size > 50_000  # the weights really moved out
    (repo / "tokenizer.json").write_bytes((tiny_dir / "tokenizer.json").read_bytes())
    prompts = json.loads((tiny_dir / "manifest.json").read_text(encoding="utf-8"))["prompts"]
    (repo / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": prompts, "default_prompt_name": None, "similarity_fn_name": "cosine"}),
        encoding="utf-8",
    )
    # Files the download must leave alone (outside allow_patterns).
    (repo / "onnx" / "model_q4.onnx").write_bytes(b"not a graph the resolver asked for")
    (repo / "onnx" / "model_q4.onnx_data").write_bytes(b"\0" * 4096)
    (repo / "README.md").write_text("# embeddinggemma-300m-ONNX (fake)\n", encoding="utf-8")
    (repo / ".gitattributes").write_text(
        "*.onnx_data filter=lfs diff=lfs merge=lfs -text\n", encoding="utf-8"
    )
    assert {p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file()} == ALLOWED | EXTRA
    return repo


@pytest.fixture()
def hub(hub_repo: Path) -> Iterator[FakeHub]:
    with FakeHub(hub_repo, HUB_REPO) as h:
        yield h


def _env(hub_url: str, tmp: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {"EDGEROUTE_EDGE_MODEL", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HF_ENDPOINT"}
    }
    no_proxy = ",".join(x for x in ("127.0.0.1", "localhost", env.get("NO_PROXY", "")) if x)
    env.update(
        HF_ENDPOINT=hub_url,
        EDGEROUTE_CACHE_DIR=str(tmp / "cache"),
        HF_HOME=str(tmp / "hf"),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        NO_PROXY=no_proxy,
        no_proxy=no_proxy,
        OMP_NUM_THREADS="1",
    )
    return env


def _run(snippet: str, env: dict[str, str], *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", snippet, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"subprocess failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no JSON line in subprocess output:\n{proc.stdout}\n{proc.stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def test_downloads_the_onnx_community_layout_and_then_loads_offline(
    hub: FakeHub, hub_repo: Path, tiny_dir: Path, tmp_path: Path
) -> None:
    env = _env(hub.url, tmp_path)
    cached = tmp_path / "cache" / "models" / DEFAULT_MODEL_NAME

    first = _run(LOAD_SNIPPET, env)

    # It landed in the edgeroute cache, in the hub's layout, and nothing but the allowed files came down.
    assert Path(first["model_dir"]).resolve() == cached.resolve()
    assert (cached / "onnx" / "model.onnx").is_file() and (cached / "tokenizer.json").is_file()
    for name in ALLOWED:
        assert (cached / name).read_bytes() == (hub_repo / name).read_bytes(), name
    for name in EXTRA:
        assert not (cached / name).exists(), f"{name} is outside allow_patterns but was downloaded"
    assert first["model_file"] == "onnx/model.onnx"
    # A manifest now pins every downloaded file, so later loads verify it like an exported model.
    pinned = ModelDirectory.open(cached, verify=True).manifest
    assert set(pinned.files) == ALLOWED
    assert not (cached / ".cache").exists()  # huggingface_hub's resume bookkeeping is gone

    # The hub saw the real client protocol: repo info, one recursive tree listing, HEAD + GET per file.
    assert hub.downloaded() == ALLOWED
    assert sorted(hub.resolved("GET")) == sorted(ALLOWED)  # each file fetched once
    assert set(hub.resolved("HEAD")) == ALLOWED
    api = [(r.method, r.path) for r in hub.requests if r.path.startswith("/api/")]
    assert api[0] == ("GET", f"/api/models/{HUB_REPO}/revision/main")
    trees = [r for r in hub.requests if r.path == f"/api/models/{HUB_REPO}/tree/{hub.commit}"]
    assert len(trees) == 1 and "recursive=true" in trees[0].query.lower()
    assert all(r.method in {"GET", "HEAD"} for r in hub.requests)

    # Same vector as the tiny model loaded directly: the download changed nothing.
    expected = EdgeEmbedder.load(tiny_dir, threads=1).embed_queries([QUERY])
    assert first["shape"] == [1, 768]
    np.testing.assert_allclose(
        np.asarray(first["vector"], dtype=np.float32), expected[0], rtol=1e-5, atol=1e-6
    )

    # The built-on-the-fly manifest names the default model and the hub export's revision.
    hub_manifest = ModelDirectory.open(hub_repo).manifest
    assert first["space"] == {"model": DEFAULT_MODEL_ID, "revision": hub_manifest.revision}
    assert first["fingerprint"] == EdgeEmbedder.load(hub_repo, threads=1).space.fingerprint

    # Second run with the hub gone: the cache answers, no request is made.
    seen = len(hub.requests)
    hub.stop()
    second = _run(LOAD_SNIPPET, env)
    assert len(hub.requests) == seen
    assert second["model_dir"] == first["model_dir"]
    assert second["fingerprint"] == first["fingerprint"]
    np.testing.assert_allclose(second["vector"], first["vector"], rtol=0, atol=0)


def test_an_interrupted_download_is_resumed_not_taken_for_a_model(
    hub_repo: Path, tiny_dir: Path, tmp_path: Path
) -> None:
    cached = tmp_path / "cache" / "models" / DEFAULT_MODEL_NAME
    with FakeHub(hub_repo, HUB_REPO, fail_downloads={"onnx/model.onnx_data": 500}) as broken:
        out = _run(RESOLVE_SNIPPET, _env(broken.url, tmp_path))
    assert out.get("error") == "ModelNotFoundError", out
    assert broken.downloaded() == ALLOWED  # the other files did come down ...
    assert not (cached / "onnx" / "model.onnx").exists()  # ... but not into the cache the resolver trusts

    with FakeHub(hub_repo, HUB_REPO) as hub:
        loaded = _run(LOAD_SNIPPET, _env(hub.url, tmp_path))
    assert hub.downloaded() == {"onnx/model.onnx_data"}  # resumed: only the missing file is fetched
    assert Path(loaded["model_dir"]).resolve() == cached.resolve()
    assert (cached / "onnx" / "model.onnx_data").is_file()
    assert not cached.with_name(cached.name + ".download").exists()
    expected = EdgeEmbedder.load(tiny_dir, threads=1).embed_queries([QUERY])
    np.testing.assert_allclose(
        np.asarray(loaded["vector"], dtype=np.float32), expected[0], rtol=1e-5, atol=1e-6
    )


def test_a_hub_that_answers_500_is_reported_as_a_failed_hub_attempt(hub_repo: Path, tmp_path: Path) -> None:
    with FakeHub(hub_repo, HUB_REPO, fail_status=500) as down:
        out = _run(RESOLVE_SNIPPET, _env(down.url, tmp_path))
    assert down.requests, "the resolver never reached the fake hub (HF_ENDPOINT ignored?)"
    assert down.requests[0].path == f"/api/models/{HUB_REPO}/revision/main"
    assert out.get("error") == "ModelNotFoundError", out
    hub_line = next(t for t in out["tried"] if t.startswith("Hugging Face hub"))
    assert HUB_REPO in hub_line and "500" in hub_line, hub_line
    assert f"Hugging Face hub {HUB_REPO}" in out["message"]
    assert not (tmp_path / "cache" / "models" / DEFAULT_MODEL_NAME / "onnx" / "model.onnx").exists()


def test_a_stalled_hub_fails_within_the_timeout_instead_of_hanging(hub_repo: Path, tmp_path: Path) -> None:
    # huggingface_hub's own revision/tree calls have no timeout; resolve_model_dir bounds them.
    with FakeHub(hub_repo, HUB_REPO, stall_s=30) as stalled:
        started = time.monotonic()
        out = _run(RESOLVE_SNIPPET, _env(stalled.url, tmp_path), "1")
        elapsed = time.monotonic() - started
    assert out.get("error") == "ModelNotFoundError", out
    assert elapsed < 20, f"took {elapsed:.1f} s against a 1 s hub timeout"
    hub_line = next(t for t in out["tried"] if t.startswith("Hugging Face hub"))
    assert "timed out" in hub_line.lower() or "timeout" in hub_line.lower(), hub_line


def test_a_cache_directory_holding_other_files_is_reported_before_any_download(
    hub: FakeHub, tmp_path: Path
) -> None:
    cached = tmp_path / "cache" / "models" / DEFAULT_MODEL_NAME
    cached.mkdir(parents=True)
    (cached / "notes.txt").write_text("mine", encoding="utf-8")

    out = _run(RESOLVE_SNIPPET, _env(hub.url, tmp_path))

    assert out.get("error") == "ModelNotFoundError", out
    hub_line = next(t for t in out["tried"] if t.startswith("Hugging Face hub"))
    assert str(cached) in hub_line and "holds files but no model" in hub_line, hub_line
    assert hub.requests == []  # nothing fetched that could not have landed
    assert (cached / "notes.txt").read_text(encoding="utf-8") == "mine"  # and nothing of the user's touched


def test_an_empty_cache_directory_is_filled(hub: FakeHub, tmp_path: Path) -> None:
    cached = tmp_path / "cache" / "models" / DEFAULT_MODEL_NAME
    cached.mkdir(parents=True)
    out = _run(RESOLVE_SNIPPET, _env(hub.url, tmp_path))
    assert Path(out["path"]).resolve() == cached.resolve(), out
    assert (cached / "onnx" / "model.onnx").is_file()
