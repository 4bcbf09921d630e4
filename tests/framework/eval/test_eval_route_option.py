from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from edgeroute.framework.cli import app


def _tiny_beir(root: Path) -> Path:
    docs = {
        "d1": "Dehydration happens when the body loses more water than it takes in.",
        "d2": "The Eiffel Tower is a wrought-iron lattice tower in Paris.",
        "d3": "Photosynthesis converts light energy into chemical energy in plants.",
        "d4": "A credit card interest rate is the price of borrowing money.",
    }
    queries = {
        "q1": "what causes dehydration in the body",
        "q2": "iron tower in paris",
        "q3": "how do plants use light",
    }
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        "\n".join(json.dumps({"_id": k, "title": "", "text": v}) for k, v in docs.items())
    )
    (root / "queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": k, "text": v}) for k, v in queries.items())
    )
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq3\td3\t1\n")
    return root


def test_eval_route_option_scores_each_route_side_by_side(tmp_path: Path) -> None:
    data = _tiny_beir(tmp_path / "tiny")
    result = CliRunner().invoke(
        app, ["eval", str(data), "--embedder", "hashing", "--route", "edge", "--route", "hybrid", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    routes = {r["route"]: r for r in report["routes"]}
    assert set(routes) == {"edge", "hybrid"}
    assert routes["edge"]["cloud_tokens"] == 0
    assert routes["hybrid"]["cloud_tokens"] > 0
    assert 0.0 <= routes["edge"]["ndcg_at_10"] <= 1.0
