"""Each fault kind is retried or surfaced as the right error; Retry-After is honoured; the breaker trips."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from edgeroute.framework.cloud.breaker import CircuitBreaker
from edgeroute.framework.cloud.embedder import CloudEmbedder
from edgeroute.framework.cloud.retry import RetryPolicy, parse_retry_after
from edgeroute.framework.errors import (
    CloudAuthError,
    CloudRejectedError,
    CloudUnavailableError,
    ConfigurationError,
)
from edgeroute.framework.testing.emulator import GeminiEmulator
from edgeroute.framework.testing.fixtures import TEST_API_KEY, emulated_gemini

FAST = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02)


@pytest.fixture
def pair() -> Iterator[tuple[GeminiEmulator, CloudEmbedder]]:
    with emulated_gemini(
        emulator_kwargs={"retry_after_s": 0.2},
        timeout_s=0.5,
        deadline_s=5,
        retry=FAST,
        breaker=CircuitBreaker(50, 30),
    ) as p:
        yield p


@pytest.mark.parametrize("fault", ["429", "500", "503", "timeout", "drop"])
def test_single_fault_is_retried(pair: tuple[GeminiEmulator, CloudEmbedder], fault: str) -> None:
    emu, cloud = pair
    emu.script_faults([fault])
    assert cloud.embed_queries(["x"]).shape == (1, 768)
    assert emu.request_count == 2 and [r["fault"] for r in emu.requests] == [fault, None]


@pytest.mark.parametrize("fault", ["429", "500", "503", "timeout", "drop"])
async def test_single_fault_is_retried_async(pair: tuple[GeminiEmulator, CloudEmbedder], fault: str) -> None:
    emu, cloud = pair
    emu.script_faults([fault])
    assert (await cloud.aembed_queries(["x"])).shape == (1, 768)
    assert emu.request_count == 2


@pytest.mark.parametrize(
    ("fault", "code", "needle"),
    [
        ("429", 429, "RESOURCE_EXHAUSTED"),
        ("500", 500, "INTERNAL"),
        ("503", 503, "UNAVAILABLE"),
        ("timeout", None, "timed out"),
        ("drop", None, "failed"),
    ],
)
def test_persistent_fault_surfaces_as_unavailable(
    pair: tuple[GeminiEmulator, CloudEmbedder], fault: str, code: int | None, needle: str
) -> None:
    emu, cloud = pair
    emu.script_faults([fault] * 3)
    with pytest.raises(CloudUnavailableError, match=needle) as info:
        cloud.embed_queries(["x"])
    assert info.value.retryable and info.value.status_code == code
    assert emu.request_count == 3


def test_retry_after_is_honoured(pair: tuple[GeminiEmulator, CloudEmbedder]) -> None:
    emu, cloud = pair
    emu.script_faults(["429"])
    t = time.monotonic()
    cloud.embed_queries(["x"])
    gap = emu.requests[1]["time"] - emu.requests[0]["time"]
    assert gap >= 0.2 and time.monotonic() - t >= 0.2


async def test_retry_after_surfaces_on_the_error(pair: tuple[GeminiEmulator, CloudEmbedder]) -> None:
    emu, cloud = pair
    emu.script_faults(["429"] * 3)
    with pytest.raises(CloudUnavailableError) as info:
        await cloud.aembed_queries(["x"])
    assert info.value.retry_after == pytest.approx(0.2)


def test_deadline_stops_retries() -> None:
    # Retry-After 60 s against a 10 s deadline: no retry fits, so the error comes at once (well before
    # the deadline, let alone the minute; the bound leaves a loaded machine slack).
    with emulated_gemini(emulator_kwargs={"retry_after_s": 60}, deadline_s=10.0) as (emu, cloud):
        emu.script_faults(["429"])
        t = time.monotonic()
        with pytest.raises(CloudUnavailableError, match="deadline"):
            cloud.embed_queries(["x"])
        assert time.monotonic() - t < 10.0 and emu.request_count == 1


def test_wrong_api_key_is_a_rejection_not_retried() -> None:
    with GeminiEmulator(api_key=TEST_API_KEY) as emu:
        cloud = CloudEmbedder(api_key="wrong-key-123", base_url=emu.base_url, retry=FAST)
        with pytest.raises(CloudAuthError, match=r"^API key rejected") as info:
            cloud.embed_queries(["x"])
        assert not info.value.retryable and info.value.status_code == 400
        assert "malformed" not in str(info.value)  # Gemini's 400 for a bad key is not a bad request
        assert isinstance(info.value, CloudRejectedError)
        assert emu.request_count == 1 and cloud.breaker.state == "closed"


def test_unknown_model_is_rejected_404() -> None:
    with emulated_gemini(model="text-embedding-999") as (emu, cloud):
        with pytest.raises(CloudRejectedError, match="404") as info:
            cloud.embed_queries(["x"])
        assert info.value.status_code == 404 and emu.request_count == 1


def test_connection_refused_is_unavailable() -> None:
    # A port this test holds bound and never listens on refuses every connection; a port freed by a
    # closed server could be taken by any other server started on the machine meanwhile.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{held.getsockname()[1]}"
        cloud = CloudEmbedder(api_key="k" * 10, base_url=url, retry=FAST, timeout_s=1)
        with pytest.raises(CloudUnavailableError, match=r"ConnectError|refused"):
            cloud.embed_queries(["x"])


def test_breaker_transitions_with_a_clock() -> None:
    now = [0.0]
    b = CircuitBreaker(failure_threshold=2, cooldown_s=10, clock=lambda: now[0])
    assert b.state == "closed"
    b.record_failure()
    assert b.state == "closed"
    b.record_failure()
    assert b.state == "open"
    with pytest.raises(CloudUnavailableError, match="circuit") as info:
        b.before_call()
    assert info.value.retry_after == pytest.approx(10)
    now[0] = 10.0
    assert b.state == "half_open"
    b.before_call()  # the one trial call
    with pytest.raises(CloudUnavailableError):
        b.before_call()
    b.record_failure()
    assert b.state == "open"
    now[0] = 20.0
    b.before_call()
    b.record_success()
    assert b.state == "closed" and b.consecutive_failures == 0


def test_breaker_opens_on_the_wire_and_recovers() -> None:
    # The breaker's own clock, moved by hand: a loaded machine that is slow between the calls below
    # cannot let the cooldown run out before the "open" checks.
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=0.3, clock=lambda: now[0])
    with emulated_gemini(breaker=breaker, retry=FAST) as (emu, cloud):
        emu.script_faults(["503"] * 3)
        with pytest.raises(CloudUnavailableError):
            cloud.embed_queries(["x"])
        assert cloud.breaker.state == "open" and cloud.health()["available"] is False
        with pytest.raises(CloudUnavailableError, match="circuit"):
            cloud.embed_queries(["x"])
        assert emu.request_count == 3  # the open circuit sent nothing
        now[0] += 0.35  # past the cooldown
        assert cloud.breaker.state == "half_open"
        assert cloud.embed_queries(["x"]).shape == (1, 768)
        assert cloud.breaker.state == "closed"


def test_random_fault_rate_is_absorbed_by_retries() -> None:
    with emulated_gemini(
        emulator_kwargs={
            "fault_rate": 0.3,
            "faults": ("429", "500", "503", "drop"),
            "retry_after_s": 0,
            "seed": 1,
        },
        retry=RetryPolicy(max_attempts=8, base_delay_s=0.005, max_delay_s=0.01),
        breaker=CircuitBreaker(100, 1),
    ) as (emu, cloud):
        vecs = cloud.embed_documents([f"doc {i}" for i in range(250)])
        assert vecs.shape == (250, 768)
        assert any(r["fault"] for r in emu.requests)


def test_retry_policy_and_header_parsing() -> None:
    p = RetryPolicy(base_delay_s=1, max_delay_s=4)
    assert p.delay(0, 2.5) == 2.5
    assert all(0 <= p.delay(5, None) <= 4 for _ in range(50))
    assert parse_retry_after("3") == 3.0 and parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    with pytest.raises(ConfigurationError):
        RetryPolicy(max_attempts=0)


def test_a_retry_that_succeeds_logs_no_failure_and_a_failed_call_logs_one(
    pair: tuple[GeminiEmulator, CloudEmbedder], caplog: pytest.LogCaptureFixture
) -> None:
    emu, cloud = pair
    caplog.set_level("DEBUG", logger="edgeroute.framework.cloud.embedder")
    emu.script_faults(["503"])
    cloud.embed_queries(["x"])
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [] and any("retrying" in r.getMessage() for r in caplog.records)
    caplog.clear()
    emu.script_faults(["503", "503", "503"])
    with pytest.raises(CloudUnavailableError):
        cloud.embed_queries(["y"])
    failed = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(failed) == 1 and "gemini call failed after 3 attempt(s)" in failed[0]
