"""A thread-safe circuit breaker: closed -> open after repeated failures -> half-open after a cool-down."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from ..errors import CloudUnavailableError, ConfigurationError

BreakerState = Literal["closed", "open", "half_open"]

_log = logging.getLogger(__name__)


class CircuitBreaker:
    """Stops calling a failing service for ``cooldown_s`` after ``failure_threshold`` failures in a row.

    After the cool-down the breaker is half-open: up to ``half_open_max_calls`` trial calls go
    through; a success closes it, a failure opens it again for another cool-down.

    With ``state_path`` the breaker's state survives the process: it is written (atomically) on every
    transition and read back at construction, so ``edgeroute status`` and the next command see that the
    cloud was failing instead of hammering it again from a fresh, closed breaker.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        cooldown_s: float = 30.0,
        *,
        half_open_max_calls: int = 1,
        clock: Callable[[], float] = time.monotonic,
        state_path: str | os.PathLike[str] | None = None,
    ) -> None:
        if failure_threshold < 1 or half_open_max_calls < 1 or cooldown_s < 0:
            raise ConfigurationError(
                "CircuitBreaker needs failure_threshold >= 1, half_open_max_calls >= 1 and cooldown_s >= 0"
            )
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.half_open_max_calls = half_open_max_calls
        self._clock = clock
        self._lock = threading.Lock()
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._trials = 0
        self._state_path = Path(state_path) if state_path is not None else None
        self._load()

    # -- persistence ----------------------------------------------------------------------------------

    def _load(self) -> None:
        if self._state_path is None or not self._state_path.is_file():
            return
        try:
            saved = json.loads(self._state_path.read_text(encoding="utf-8"))
            failures = int(saved["failures"])
            opened_wall = float(saved["opened_at_wall"])
            state = saved["state"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            _log.warning("ignoring unreadable circuit state %s: %s", self._state_path, exc)
            return
        self._failures = failures
        if state in ("open", "half_open"):
            # Wall clock across processes; translate into this process's monotonic clock.
            self._state = "open"
            self._opened_at = self._clock() - max(0.0, time.time() - opened_wall)

    def _save(self) -> None:
        if self._state_path is None:
            return
        opened_wall = time.time() - (self._clock() - self._opened_at) if self._state != "closed" else 0.0
        doc = {
            "state": self._state,
            "failures": self._failures,
            "opened_at_wall": opened_wall,
            "cooldown_s": self.cooldown_s,
            "updated_at": time.time(),
        }
        try:
            self._state_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._state_path.with_name(f"{self._state_path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(doc), encoding="utf-8")
            tmp.replace(self._state_path)
        except OSError as exc:  # health bookkeeping must never fail a query
            _log.warning("could not persist circuit state to %s: %s", self._state_path, exc)

    @property
    def state(self) -> BreakerState:
        """``"closed"``, ``"open"`` or ``"half_open"`` (open past its cool-down reads half-open)."""
        with self._lock:
            self._advance()
            return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a trial call through (0 when not open)."""
        with self._lock:
            self._advance()
            if self._state != "open":
                return 0.0
            return max(0.0, self._opened_at + self.cooldown_s - self._clock())

    def _advance(self) -> None:
        if self._state == "open" and self._clock() - self._opened_at >= self.cooldown_s:
            self._state = "half_open"
            self._trials = 0

    def before_call(self) -> None:
        """Admit a call or raise :class:`CloudUnavailableError` while the circuit is open."""
        with self._lock:
            self._advance()
            if self._state == "closed":
                return
            if self._state == "half_open" and self._trials < self.half_open_max_calls:
                self._trials += 1
                return
            wait = max(0.0, self._opened_at + self.cooldown_s - self._clock())
        raise CloudUnavailableError(
            f"cloud circuit is {self._state} after {self._failures} consecutive failures; "
            f"not calling the cloud for another {wait:.1f} s (serve from the edge meanwhile)",
            status="CIRCUIT_OPEN",
            retry_after=wait,
        )

    def record_success(self) -> None:
        with self._lock:
            changed = self._state != "closed" or self._failures != 0
            self._state = "closed"
            self._failures = 0
            self._trials = 0
            if changed:
                self._save()

    def record_failure(self) -> None:
        with self._lock:
            self._advance()
            self._failures += 1
            if self._state == "half_open" or self._failures >= self.failure_threshold:
                self._state = "open"
                self._opened_at = self._clock()
                self._trials = 0
            self._save()

    def reset(self) -> None:
        """Close the breaker and forget past failures."""
        self.record_success()
