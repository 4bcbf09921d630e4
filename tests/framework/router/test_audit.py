"""The audit log: hashes not text by default, summaries, tail, crash-torn lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeroute.framework.router.audit import AuditLog, text_sha256


def test_query_fields_hold_the_hash_and_the_text_only_when_configured(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "a.jsonl") as log:
        assert log.query_fields("secret question") == {"query_sha256": text_sha256("secret question")}
    with AuditLog(None, record_text=True) as log:
        assert log.query_fields("q")["query_text"] == "q"


def test_summary_counts_routes_degraded_share_and_cloud_spend(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    with AuditLog(path) as log:
        log.write(
            {
                "type": "query",
                "route": "edge",
                "reasons": ["confidence.ok"],
                "degraded": False,
                "cloud": "not_used",
                "latency_ms": {"total": 5.0},
            }
        )
        log.write(
            {
                "type": "query",
                "route": "edge",
                "reasons": ["deadline.missed"],
                "degraded": True,
                "cloud": "late",
                "latency_ms": {"total": 200.0},
            }
        )
        log.write(
            {
                "type": "query",
                "route": "hybrid",
                "reasons": ["stakes.high"],
                "degraded": False,
                "cloud": "ok",
                "latency_ms": {"total": 50.0},
            }
        )
        log.write(
            {
                "type": "cloud_call",
                "purpose": "query",
                "outcome": "ok",
                "tokens": 10,
                "bytes": 40,
                "cost_usd": 2e-6,
            }
        )
        log.write(
            {
                "type": "cloud_call",
                "purpose": "index",
                "outcome": "error",
                "tokens": 0,
                "bytes": 0,
                "cost_usd": 0.0,
            }
        )
    with path.open("a") as fh:
        fh.write('{"type": "query", "route": "ed')  # a line torn by a crash
    s = AuditLog(path).summary()
    assert s.queries == 3 and s.routes == {"edge": 2, "hybrid": 1}
    assert s.degraded == 1 and abs(s.degraded_share - 1 / 3) < 1e-9
    assert s.cloud_calls == 2 and s.cloud_failures == 1 and s.cloud_late == 1
    assert s.cloud_tokens == 10 and s.cloud_bytes == 40 and s.cloud_cost_usd == 2e-6
    assert s.by_purpose == {"query": 1, "index": 1}
    assert s.latency_p50_ms == 50.0


def test_tail_returns_the_last_records_in_order(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "a.jsonl") as log:
        for i in range(5):
            log.write({"type": "query", "n": i})
        assert [r["n"] for r in log.tail(2)] == [3, 4]
    lines = (tmp_path / "a.jsonl").read_text().splitlines()
    assert all("time" in json.loads(line) for line in lines)


def test_non_finite_numbers_are_written_as_null_so_every_line_stays_json(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    log.write({"kind": "query", "deadline_ms": float("inf"), "scores": [0.5, float("nan")]})
    log.close()
    line = (tmp_path / "audit.jsonl").read_text(encoding="utf-8").strip()
    assert "Infinity" not in line and "NaN" not in line
    rec = json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in the audit log"))
    assert rec["deadline_ms"] is None and rec["scores"] == [0.5, None]
