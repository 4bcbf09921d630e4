from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeroute.framework.cli import app
from edgeroute.framework.errors import ConfigurationError, SpaceMismatchError
from edgeroute.framework.router.semantic_routes_file import fit_routes, load_semantic_routes, save_routes
from edgeroute.framework.testing.hashing import HashingEmbedder

TEXTS = [
    "transfer 5000 dollars to my broker account today",
    "wire money to this bank account now",
    "send a payment of 900 euros to the supplier",
    "maximum daily dose of paracetamol for adults",
    "how many mg of ibuprofen can a child take",
    "insulin units dose for a missed meal",
    "what is the capital of france",
    "recommend a good pizza recipe",
    "how do I rename a file in linux",
    "what time is sunset tomorrow",
]
LABELS = ["finance"] * 3 + ["medical"] * 3 + ["normal"] * 4


def test_fit_save_load_round_trip(tmp_path: Path) -> None:
    emb = HashingEmbedder(dims=256)
    routes, fit = fit_routes(emb, TEXTS, LABELS, min_precision=0.5)
    out = tmp_path / "routes.json"
    save_routes(out, emb, TEXTS, LABELS, fit, dims=None, top_k=3)
    loaded = load_semantic_routes(out, emb)
    assert loaded.thresholds == routes.thresholds
    assert set(loaded.names) == {"finance", "medical"}
    doc = json.loads(out.read_text())
    assert doc["space"] == emb.space.fingerprint and len(doc["examples"]) == len(TEXTS)


def test_load_with_another_model_is_a_space_error(tmp_path: Path) -> None:
    emb = HashingEmbedder(dims=256)
    _, fit = fit_routes(emb, TEXTS, LABELS, min_precision=0.5)
    out = tmp_path / "routes.json"
    save_routes(out, emb, TEXTS, LABELS, fit, dims=None, top_k=3)
    with pytest.raises(SpaceMismatchError, match="policy fit"):
        load_semantic_routes(out, HashingEmbedder(dims=256, name="another-model"))


def test_missing_or_broken_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="edgeroute policy fit"):
        load_semantic_routes(tmp_path / "nope.json", HashingEmbedder())
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        load_semantic_routes(bad, HashingEmbedder())


def test_bench_pii_prints_json() -> None:
    result = CliRunner().invoke(app, ["bench", "pii", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["texts"] >= 200
    assert figures["overall"]["precision"] >= 0.95


def test_policy_check_reports_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "policy.toml"
    bad.write_text('cloud_ceiling = "secret-ish"\n')
    result = CliRunner().invoke(app, ["policy", "check", str(bad)])
    assert result.exit_code != 0
    assert "policy.toml" in str(result.exception) or "policy.toml" in result.output


def test_bench_tools_prints_figures_and_rejects_unknown_embedders() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["bench", "tools", "--embedder", "hashing", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["tools"] >= 12 and figures["test_requests"] >= 150
    assert 0.0 < figures["top1_accuracy"] <= 1.0
    bad = runner.invoke(app, ["bench", "tools", "--embedder", "nope"])
    assert bad.exit_code != 0 and "'edge', 'tiny' or 'hashing'" in str(bad.exception)
