"""Per-tenant request rate limits: a token bucket each, refilled continuously.

In-process (each replica limits its own share); put the limit a tenant gets from N replicas in
the keys file as rate / N, or front the replicas with a shared limiter. ``acquire`` returns 0
when a request may go, else the seconds until it may (the Retry-After header).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass


@dataclass
class _Bucket:
    rate: float
    capacity: float
    tokens: float
    stamp: float


class RateLimiter:
    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, tenant: str, rate_per_s: float | None, burst: int | None = None) -> float:
        """0.0 if ``tenant`` may make a request now (a token is taken), else seconds to wait."""
        if rate_per_s is None:
            return 0.0
        capacity = float(burst if burst is not None else max(1, math.ceil(rate_per_s)))
        now = time.monotonic()
        with self._lock:
            b = self._buckets.get(tenant)
            if b is None or b.rate != rate_per_s or b.capacity != capacity:
                b = self._buckets[tenant] = _Bucket(rate_per_s, capacity, capacity, now)
            b.tokens = min(b.capacity, b.tokens + (now - b.stamp) * b.rate)
            b.stamp = now
            if b.tokens >= 1.0:
                b.tokens -= 1.0
                return 0.0
            return (1.0 - b.tokens) / b.rate


def retry_after_header(wait_s: float) -> str:
    """Retry-After is whole seconds; never 0, or clients would retry at once."""
    return str(max(1, math.ceil(wait_s)))


__all__ = ["RateLimiter", "retry_after_header"]
