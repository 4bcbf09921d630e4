"""`edgeroute bench serve` against a running loopback server (short), and its loopback-only rule."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import Served

from edgeroute.framework.errors import InputError
from edgeroute.framework.eval.bench_serve import check_loopback, run_serve_bench, synthetic_queries


def test_bench_measures_a_running_server(serve: Callable[..., Served]) -> None:
    s = serve()
    result = run_serve_bench(4, 1.0, url=s.url, key=s.keys["acme"], warmup_s=0.3, single_s=0.5)
    assert result.batched.requests > 0 and result.batched.errors == 0
    assert result.batched.p50_ms <= result.batched.p95_ms <= result.batched.p99_ms
    assert result.single_requests > 0 and result.unbatched is None and result.speedup is None
    assert result.batched.mean_batch is not None and result.batched.mean_batch >= 1
    assert set(result.to_dict()) >= {"batched", "unbatched", "single_p50_ms", "targets"}


def test_single_requests_side_by_side_with_the_in_process_work(serve: Callable[..., Served]) -> None:
    s = serve()
    seen: list[str] = []

    def work(query: str) -> tuple[float, float, float]:
        seen.append(query)
        return 2.0, 1.0, 1.5

    result = run_serve_bench(
        4, 1.0, url=s.url, key=s.keys["acme"], warmup_s=0.2, single_s=0.3, load=False,
        in_process=work, side_requests=20,
    )  # fmt: skip
    sbs = result.side_by_side
    assert result.batched is None and result.unbatched is None and sbs is not None
    assert sbs.requests == 20 and sbs.embed_query_p50_ms == 2.0 and sbs.embed_query_cpu_ms == 1.5
    assert sbs.cpu_ratio is None  # a server given by URL: its process is not known
    assert sbs.served_over_embed_query == pytest.approx(sbs.served_p50_ms / 2.0, abs=0.01)
    # The in-process work ran on exactly the queries that were served (3 warm-up ones too).
    assert len(seen) == 23 and len(set(seen)) == 23
    assert result.targets["single_le_1_3x_embed_query"] is not None


def test_the_cpu_of_a_process_is_read_from_its_threads() -> None:
    import os

    from edgeroute.framework.eval.bench_serve import process_cpu_s

    before = process_cpu_s(os.getpid())
    assert before is not None and before > 0
    sum(i * i for i in range(200_000))
    after = process_cpu_s(os.getpid())
    assert after is not None and after > before
    assert process_cpu_s(2**22 + 12345) is None  # no such process


def test_bench_targets_loopback_only() -> None:
    with pytest.raises(InputError, match="loopback"):
        check_loopback("http://10.0.0.8:8080")
    assert check_loopback("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    with pytest.raises(InputError, match="needs --key"):
        run_serve_bench(1, 1.0, url="http://127.0.0.1:1")


def test_queries_are_varied() -> None:
    qs = synthetic_queries(200)
    assert len(set(qs)) == 200  # no repeats: a cache cannot flatter the figures


def test_bench_limits_runs_and_reports_the_refusals() -> None:
    from edgeroute.framework.eval.bench_limits import run_limits_bench

    result = run_limits_bench(
        body_mb=64, phase_s=0.5, rounds=1, flood_concurrency=2, flood_body_kb=1, docs=20
    )
    assert [b.status for b in result.bodies] == [413, 413]
    assert result.bodies[0].sent_mb < 64 and all(b.rss_peak_mb >= b.rss_idle_mb > 0 for b in result.bodies)
    f = result.flood
    assert f.flood_refused_429 > 0 and f.alone_median_ms > 0 and f.flood_median_ms > 0
    assert set(result.to_dict()["targets"]) == {"huge_body_413_within_100_mb", "flood_p50_le_2x"}
