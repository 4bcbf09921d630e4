"""Retry schedule shared by the sync and async cloud paths: exponential backoff, full jitter, Retry-After."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from ..errors import CloudUnavailableError, ConfigurationError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to wait between attempts.

    The delay before attempt ``k+1`` is drawn uniformly from ``[0, min(max_delay_s, base_delay_s * 2**k)]``
    (full jitter), unless the server sent ``Retry-After``: that value wins (capped at
    ``max_retry_after_s``), because retrying earlier only earns another 429.
    """

    max_attempts: int = 4
    base_delay_s: float = 0.2
    max_delay_s: float = 8.0
    max_retry_after_s: float = 60.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ConfigurationError("retry delays must be non-negative")

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.max_retry_after_s)
        return self.rng.uniform(0.0, min(self.max_delay_s, self.base_delay_s * (2**attempt)))


class Attempts:
    """Drives one call's attempts against a deadline; sync and async loops both use it.

    ``next_delay(err)`` returns how long to sleep before the next attempt, or re-raises ``err``
    when attempts or the deadline are exhausted.
    """

    def __init__(self, policy: RetryPolicy, deadline_s: float) -> None:
        self.policy = policy
        self.deadline = time.monotonic() + deadline_s
        self.attempt = 0

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def next_delay(self, err: CloudUnavailableError) -> float:
        self.attempt += 1
        if self.attempt >= self.policy.max_attempts:
            raise err
        wait = self.policy.delay(self.attempt - 1, err.retry_after)
        if wait >= self.remaining():
            raise CloudUnavailableError(
                f"{err} (gave up: the next retry in {wait:.2f} s would pass the call's deadline)",
                status_code=err.status_code,
                status=err.status,
                retry_after=err.retry_after,
            ) from err
        return wait


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form; HTTP dates are ignored)."""
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        return None
