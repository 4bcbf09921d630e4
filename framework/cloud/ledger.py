"""A spend ledger per store: what every process using the store has spent on the cloud, so far.

:class:`~edgeroute.framework.cloud.embedder.CloudUsage` counts one process's calls; a budget cap that
only sees its own process lets three CLI calls each spend up to the cap. The ledger is a small SQLite
file beside the circuit state (``spend.sqlite`` in the store directory), written on every successful
cloud call and read by the budget check and ``edgeroute status``. SQLite in WAL mode serialises
writers across processes; each call adds its tokens and cost in one transaction, so totals are exact
whatever the interleaving.

The file is opened lazily: reading a store that never spent anything creates nothing (a read-only
store stays untouched). Bookkeeping never fails a cloud call: an unwritable ledger logs a warning.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spend (
    modality TEXT PRIMARY KEY,
    tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    calls INTEGER NOT NULL DEFAULT 0,
    requests INTEGER NOT NULL DEFAULT 0,
    since REAL NOT NULL,
    updated_at REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Spend:
    """Totals in a ledger: estimated USD, tokens by modality, calls and inputs, since when."""

    cost_usd: float = 0.0
    tokens: dict[str, int] = field(default_factory=dict)
    calls: int = 0
    requests: int = 0
    since: float | None = None

    @property
    def total_tokens(self) -> int:
        return sum(self.tokens.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "cost_usd": round(self.cost_usd, 8),
            "tokens": dict(self.tokens),
            "total_tokens": self.total_tokens,
            "calls": self.calls,
            "requests": self.requests,
            "since": self.since,
        }


class SpendLedger:
    """Cumulative cloud spend shared by every process on one store (see the module docstring).

    ``reset()`` starts a new budget period (the cap applies to spend since the last reset).
    """

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 10.0) -> None:
        self.path = Path(path).expanduser()
        self._busy_timeout_s = busy_timeout_s
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connect(self, *, create: bool) -> sqlite3.Connection | None:
        if self._db is not None:
            return self._db
        if not create and not self.path.is_file():
            return None
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        uri = f"file:{self.path}" + ("" if create else "?mode=ro")
        db = sqlite3.connect(
            uri, uri=True, timeout=self._busy_timeout_s, check_same_thread=False, isolation_level=None
        )
        if create:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            self._db = db  # keep the writable connection; a read-only one is opened per read
        return db

    def add(
        self, tokens_by_modality: Mapping[str, int], cost_by_modality: Mapping[str, float], requests: int
    ) -> None:
        """Record one successful call: tokens and estimated USD per modality, and how many inputs it had."""
        # Several processes switching the new file to WAL, or a long writer on a loaded box, can
        # outlast one busy timeout: a few more tries keep the total exact instead of dropping a call.
        for attempt in range(5):
            if self._add_once(tokens_by_modality, cost_by_modality, requests, last=attempt == 4):
                return
            time.sleep(0.05 * (attempt + 1))

    def _add_once(
        self,
        tokens_by_modality: Mapping[str, int],
        cost_by_modality: Mapping[str, float],
        requests: int,
        *,
        last: bool,
    ) -> bool:
        now = time.time()
        with self._lock:
            try:
                db = self._connect(create=True)
                assert db is not None
                db.execute("BEGIN IMMEDIATE")
                try:
                    for modality, n in tokens_by_modality.items():
                        db.execute(
                            "INSERT INTO spend (modality, tokens, cost_usd) VALUES (?, ?, ?) "
                            "ON CONFLICT (modality) DO UPDATE SET tokens = tokens + excluded.tokens, "
                            "cost_usd = cost_usd + excluded.cost_usd",
                            (modality, int(n), float(cost_by_modality.get(modality, 0.0))),
                        )
                    db.execute(
                        "INSERT INTO calls (id, calls, requests, since, updated_at) VALUES (1, 1, ?, ?, ?) "
                        "ON CONFLICT (id) DO UPDATE SET calls = calls + 1, "
                        "requests = requests + excluded.requests, updated_at = excluded.updated_at",
                        (int(requests), now, now),
                    )
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                if not last:
                    return False
                logger.warning("could not record cloud spend in %s: %s", self.path, exc)
            except (OSError, sqlite3.Error) as exc:  # bookkeeping must never fail a cloud call
                logger.warning("could not record cloud spend in %s: %s", self.path, exc)
        return True

    def total(self) -> Spend:
        """What has been spent since the ledger was created or last reset (zero when it does not exist)."""
        with self._lock:
            try:
                db = self._connect(create=False)
                if db is None:
                    return Spend()
                try:
                    rows = db.execute("SELECT modality, tokens, cost_usd FROM spend").fetchall()
                    head = db.execute("SELECT calls, requests, since FROM calls WHERE id = 1").fetchone()
                finally:
                    if db is not self._db:
                        db.close()
            except sqlite3.Error as exc:
                logger.warning("could not read cloud spend from %s: %s", self.path, exc)
                return Spend()
        calls, requests, since = head if head is not None else (0, 0, None)
        return Spend(
            cost_usd=sum(float(c) for _, _, c in rows),
            tokens={str(m): int(t) for m, t, _ in rows},
            calls=int(calls),
            requests=int(requests),
            since=since,
        )

    def reset(self) -> Spend:
        """Start a new budget period; returns what the old one had spent."""
        before = self.total()
        with self._lock:
            db = self._connect(create=True)
            assert db is not None
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM spend")
            db.execute("DELETE FROM calls")
            db.execute("COMMIT")
        return before

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


__all__ = ["Spend", "SpendLedger"]
