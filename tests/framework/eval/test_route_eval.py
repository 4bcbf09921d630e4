"""Route-aware evaluation on a small BEIR-layout set, and forced routes never beating privacy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from router_helpers import CONFIDENTIAL, PUBLIC, EngineFactory

from edgeroute.framework.errors import InputError, RoutingError
from edgeroute.framework.eval.routes import run_route_eval


def _dataset(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    topics = [
        "running shoes",
        "trail cameras",
        "espresso machines",
        "mountain bikes",
        "solar panels",
        "standing desks",
    ]
    corpus = [
        {"_id": f"d{i}", "title": t, "text": f"All about {t}: care, price and warranty."}
        for i, t in enumerate(topics)
    ]
    (root / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in corpus) + "\n")
    queries = [{"_id": f"q{i}", "text": f"{t} warranty"} for i, t in enumerate(topics)]
    (root / "queries.jsonl").write_text("\n".join(json.dumps(r) for r in queries) + "\n")
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(len(topics)))
    )
    return root


def test_every_route_is_scored_side_by_side_with_cost_and_regret(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    report = run_route_eval(_dataset(tmp_path / "mini"), make_engine())
    by = {f.route: f for f in report.routes}
    assert list(by) == ["edge", "cloud", "hybrid", "auto"] and report.queries == 6
    assert by["edge"].escalated_share == 0 and by["edge"].cloud_tokens == 0
    assert by["cloud"].escalated_share == 1 and by["hybrid"].cloud_cost_usd > 0
    assert all(0 <= f.ndcg_at_10 <= 1 for f in report.routes)
    assert by["hybrid"].regret_per_usd is None
    assert by["edge"].regret_per_usd == pytest.approx(
        (by["hybrid"].ndcg_at_10 - by["edge"].ndcg_at_10) / by["hybrid"].cloud_cost_usd
    )


def test_unknown_route_is_refused(make_engine: EngineFactory, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown route"):
        run_route_eval(_dataset(tmp_path / "mini"), make_engine(), routes=["fastest"])


def test_a_forced_cloud_route_never_overrides_privacy(make_engine: EngineFactory) -> None:
    engine = make_engine()
    engine.ingest([*PUBLIC, CONFIDENTIAL])
    with pytest.raises(RoutingError, match="privacy keeps this query on the device"):
        engine.retrieve("margin sheet", sensitivity="confidential", route="cloud")
    assert engine.retrieve("margin sheet", sensitivity="confidential", route="edge").hits
    forced = engine.retrieve("trail cameras", route="cloud")
    assert forced.decision.codes == ("route.forced",) and all(h.index == "cloud" for h in forced.hits)
