from __future__ import annotations

import json
import time
from pathlib import Path

from edgeroute.framework.cloud.breaker import CircuitBreaker


def test_open_state_survives_the_process(tmp_path: Path) -> None:
    path = tmp_path / "circuit.json"
    first = CircuitBreaker(failure_threshold=2, cooldown_s=60, state_path=path)
    first.record_failure()
    first.record_failure()
    assert first.state == "open"
    second = CircuitBreaker(failure_threshold=2, cooldown_s=60, state_path=path)
    assert second.state == "open"
    assert 55 < second.retry_in() <= 60
    second.record_success()
    assert CircuitBreaker(state_path=path).state == "closed"


def test_cooldown_counts_from_when_it_opened(tmp_path: Path) -> None:
    path = tmp_path / "circuit.json"
    path.write_text(json.dumps({"state": "open", "failures": 5, "opened_at_wall": time.time() - 31}))
    assert CircuitBreaker(cooldown_s=30, state_path=path).state == "half_open"


def test_unreadable_state_file_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "circuit.json"
    path.write_text("{garbage")
    breaker = CircuitBreaker(state_path=path)
    assert breaker.state == "closed"
    breaker.record_failure()
    assert json.loads(path.read_text())["failures"] == 1
