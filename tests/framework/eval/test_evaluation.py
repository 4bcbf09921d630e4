"""BEIR loading, the retrieval metrics (hand-computed), and run_eval end to end with HashingEmbedder."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from edgeroute.framework.documents import Document
from edgeroute.framework.errors import InputError
from edgeroute.framework.eval.retrieval import (
    ProgressFn,
    Ranking,
    exact_top_k,
    load_beir,
    load_qrels,
    mean_metrics,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
    run_eval,
)
from edgeroute.framework.store.cache import EmbeddingCache
from edgeroute.framework.testing.hashing import HashingEmbedder

TOPICS = ["tea leaves", "coffee beans", "river boats", "mountain goats", "violin strings", "solar panels"]


def write_dataset(root: Path) -> Path:
    """Six documents and a query per document that shares its words; qrels graded 2 (and one 1)."""
    root.mkdir(parents=True, exist_ok=True)
    docs = [
        {"_id": f"d{i}", "title": t.title(), "text": f"All about {t}: {t} explained."}
        for i, t in enumerate(TOPICS)
    ]
    (root / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in docs) + "\n", encoding="utf-8")
    queries = [{"_id": f"q{i}", "text": f"{t}"} for i, t in enumerate(TOPICS)] + [
        {"_id": "unjudged", "text": "x"}
    ]
    (root / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n", encoding="utf-8")
    (root / "qrels").mkdir(exist_ok=True)
    lines = ["query-id\tcorpus-id\tscore"] + [f"q{i}\td{i}\t2" for i in range(len(TOPICS))]
    lines += ["q0\td1\t1", "q1\td0\t0"]
    (root / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


class TestMetrics:
    def test_ndcg_graded(self) -> None:
        # ranked a, b, c with a=1, c=2: DCG = 1/log2(2) + 2/log2(4) = 2; ideal c, a: 2 + 1/log2(3)
        assert ndcg_at_k(["a", "b", "c"], {"a": 1, "c": 2}, 10) == pytest.approx(2 / (2 + 1 / math.log2(3)))
        assert ndcg_at_k(["c", "a"], {"a": 1, "c": 2}) == pytest.approx(1.0)
        assert ndcg_at_k(["x", "y"], {"a": 1}) == 0.0
        # the cut: a relevant document at rank 11 does not count for nDCG@10
        assert ndcg_at_k([f"x{i}" for i in range(10)] + ["a"], {"a": 1}, 10) == 0.0

    def test_ndcg_ideal_is_cut_at_k_too(self) -> None:
        rel = {f"r{i}": 1 for i in range(15)}
        assert ndcg_at_k([f"r{i}" for i in range(10)], rel, 10) == pytest.approx(1.0)

    def test_recall(self) -> None:
        assert recall_at_k(["a", "x", "b"], {"a": 1, "b": 3, "c": 1}, 100) == pytest.approx(2 / 3)
        assert recall_at_k(["a", "x", "b"], {"a": 1, "b": 3, "c": 1}, 2) == pytest.approx(1 / 3)

    def test_mrr(self) -> None:
        assert mrr_at_k(["x", "y", "a", "b"], {"a": 1, "b": 1}) == pytest.approx(1 / 3)
        assert mrr_at_k(["x"] * 10 + ["a"], {"a": 1}, 10) == 0.0

    def test_mean_counts_queries_without_results_as_zero(self) -> None:
        m = mean_metrics({"q1": ["a"]}, {"q1": {"a": 1}, "q2": {"b": 1}})
        assert m == {"ndcg_at_10": 0.5, "recall_at_100": 0.5, "mrr_at_10": 0.5}

    def test_exact_top_k_is_sorted_and_stable(self) -> None:
        m = np.array([[1, 0], [0, 1], [1, 0], [0.6, 0.8]], dtype=np.float32)
        got = exact_top_k(m, np.array([1, 0], np.float32), ["a", "b", "c", "d"], 3)
        assert [d for d, _ in got] == ["a", "c", "d"]
        assert [s for _, s in got] == pytest.approx([1.0, 1.0, 0.6])
        assert exact_top_k(m, np.array([1, 0], np.float32), ["a", "b", "c", "d"], 10)[-1][0] == "b"


class TestBeirData:
    def test_load(self, tmp_path: Path) -> None:
        data = load_beir(write_dataset(tmp_path / "toy"))
        assert data.name == "toy" and len(data.corpus) == 6
        assert "unjudged" not in data.queries and len(data.queries) == 6
        assert data.qrels["q0"] == {"d0": 2, "d1": 1}
        assert data.qrels["q1"] == {"d1": 2}  # score 0 is not relevant
        assert list(load_beir(tmp_path / "toy", limit_queries=2).queries) == ["q0", "q1"]

    def test_bad_data(self, tmp_path: Path) -> None:
        with pytest.raises(InputError, match=r"corpus\.jsonl"):
            load_beir(tmp_path)
        root = write_dataset(tmp_path / "toy")
        with pytest.raises(InputError, match="not found"):
            load_beir(root, qrels=root / "nope.tsv")
        bad = tmp_path / "bad.tsv"
        bad.write_text("q0\td0\n", encoding="utf-8")
        with pytest.raises(InputError, match="3 tab-separated"):
            load_qrels(bad)
        other = tmp_path / "other.tsv"
        other.write_text("zz\td0\t1\n", encoding="utf-8")
        with pytest.raises(InputError, match="wrong qrels"):
            load_beir(root, qrels=other)


class TestRunEval:
    def test_scores_and_second_run_is_cached(self, tmp_path: Path) -> None:
        root = write_dataset(tmp_path / "toy")
        emb = HashingEmbedder(64)
        events: list[tuple[str, int, int]] = []
        with EmbeddingCache(tmp_path / "cache.sqlite") as cache:
            first = run_eval(root, emb, None, cache, progress=lambda *e: events.append(e), batch_size=4)
            calls = emb.calls
            second = run_eval(root, emb, None, cache)
        assert first.ndcg_at_10 > 0.9 and first.recall_at_100 == 1.0 and first.mrr_at_10 == 1.0
        assert (first.documents, first.queries, first.docs_embedded, first.cache_hits) == (6, 6, 6, 0)
        assert first.query_p50_ms > 0 and first.docs_per_s > 0
        assert first.space == emb.space.fingerprint
        assert ("index", 6, 6) in events and ("query", 6, 6) in events
        assert (second.docs_embedded, second.cache_hits) == (0, 6)
        assert emb.calls - calls == 6  # only the six queries, one at a time; no document encoded
        assert second.ndcg_at_10 == first.ndcg_at_10

    def test_dims_change_the_space_and_the_cache_key(self, tmp_path: Path) -> None:
        root = write_dataset(tmp_path / "toy")
        cache = EmbeddingCache(None)
        run_eval(root, HashingEmbedder(64), None, cache)
        report = run_eval(root, HashingEmbedder(64), 32, cache)
        assert report.docs_embedded == 6 and report.space.split("/")[2] == "32"

    def test_pluggable_search_step(self, tmp_path: Path) -> None:
        class Reversed:
            """Ranks the corpus backwards: a deliberately bad search step."""

            space_fingerprint = "test/reversed"

            def index(self, corpus: Sequence[Document], progress: ProgressFn | None = None) -> None:
                self.ids = [d.id for d in corpus][::-1]

            def search(self, query: str, k: int) -> Ranking:
                return [(d, 0.0) for d in self.ids[:k]]

        report = run_eval(write_dataset(tmp_path / "toy"), HashingEmbedder(64), None, None, search=Reversed())
        assert report.space == "test/reversed"
        assert report.recall_at_100 == 1.0 and report.mrr_at_10 < 0.5
