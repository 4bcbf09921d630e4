"""The audit log: one JSON record per query and per cloud call, and a summary of them.

The record schemas are the TypedDicts below (:class:`QueryRecord`, :class:`CloudCallRecord`): every
writer builds one of them, so a field cannot be misspelt in one place and read in another. Records are appended to a JSONL file (one object per line, flushed per record, so a crash loses
at most the line being written) or kept in memory when no path is given. Queries are stored as
sha256 hashes; the raw text only when the log is opened with ``record_text=True``.
"""

from __future__ import annotations

import json
import math
import statistics
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict

from ..digest import sha256_text
from ..errors import ConfigurationError

Record = dict[str, Any]
"""A record as read back: :class:`QueryRecord` or :class:`CloudCallRecord` plus a ``time`` field."""

CloudOutcome = Literal["ok", "error", "cancelled"]
CloudStatus = Literal["not_used", "ok", "late", "error"]


class CloudCallRecord(TypedDict):
    """One call to the cloud embedder, written when it ends (``cancelled``: dropped at a deadline).

    ``tokens``/``bytes`` estimate what left the device (0 when a local check refused the call or it
    was cancelled); ``cost_usd`` is 0 unless the call returned vectors.
    """

    type: Literal["cloud_call"]
    collection: str
    purpose: str  # "query", "index" (the engine), or a component's own purpose (the tool router)
    outcome: CloudOutcome
    error: str | None  # the exception's type name
    latency_ms: float
    items: int
    tokens: int
    bytes: int
    cost_usd: float
    space: str | None


class QueryRecord(TypedDict, total=False):
    """One answered query. ``query_text`` only when the log records text (``record_text=True``)."""

    type: Literal["query"]
    collection: str
    query_sha256: str
    query_text: str
    modalities: list[str]
    sensitivity: str
    stakes: str
    planned_route: str
    route: str
    reasons: list[str]
    degraded: bool
    redacted: bool
    cloud: CloudStatus
    spaces: list[str]
    latency_ms: dict[str, float]  # per stage, and "total"
    deadline_ms: float | None
    hits: int
    cloud_tokens: int
    cloud_bytes: int
    cloud_cost_usd: float


text_sha256 = sha256_text
"""The hash the audit log stores in place of a query's text (:func:`edgeroute.framework.digest.sha256_text`)."""


@dataclass(frozen=True, slots=True)
class AuditSummary:
    """What ``edgeroute audit`` prints: routes, degraded share, latency and cloud spend."""

    queries: int
    routes: dict[str, int]
    degraded: int
    degraded_share: float
    reasons: dict[str, int]
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    cloud_calls: int
    cloud_failures: int
    cloud_late: int  # queries whose cloud call missed the deadline (dropped)
    cloud_tokens: int
    cloud_bytes: int
    cloud_cost_usd: float
    by_purpose: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float (in dicts, lists and tuples) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


class AuditLog:
    """Append-only decision records. Thread-safe; ``path=None`` keeps records in memory only.

    ``record_text=True`` stores raw query text next to its hash (off by default: the log should
    not become a copy of what users asked).
    """

    def __init__(
        self, path: str | Path | None = None, *, record_text: bool = False, read_only: bool = False
    ) -> None:
        self.path = Path(path).expanduser() if path is not None else None
        self.record_text = record_text
        self.read_only = read_only  # for reading a log (``edgeroute audit``): never opened for appending
        self._lock = threading.Lock()
        self._memory: list[Record] = []
        self._fh = None
        if self.path is not None and not read_only:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = self.path.open("a", encoding="utf-8")
            except OSError as exc:
                raise ConfigurationError(
                    f"audit log {self.path} cannot be opened for appending ({exc.strerror or exc}); "
                    "choose a writable path with EDGEROUTE_AUDIT (or --store for the default STORE/audit.jsonl)"
                ) from exc

    def query_fields(self, text: str) -> QueryRecord:
        """The fields that identify a query: its hash, and its text only when configured."""
        out: QueryRecord = {"query_sha256": sha256_text(text)}
        if self.record_text:
            out["query_text"] = text
        return out

    def write(self, record: QueryRecord | CloudCallRecord | Mapping[str, Any]) -> Record:
        """Append one record (a ``time`` field is added when missing); returns what was written."""
        rec: Record = {"time": time.time(), **record}
        try:
            line = json.dumps(rec, ensure_ascii=False, default=str, allow_nan=False)
        except ValueError:
            # NaN and Infinity are not JSON: written as is they make the log unreadable to every
            # JSON reader. A non-finite number (a deadline of Infinity) is recorded as null instead.
            rec = _finite(rec)
            line = json.dumps(rec, ensure_ascii=False, default=str, allow_nan=False)
        with self._lock:
            if self.read_only:
                raise ConfigurationError(f"audit log {self.path} was opened read-only; open it to append")
            if self._fh is not None:
                self._fh.write(line + "\n")
                self._fh.flush()
            else:
                self._memory.append(rec)
        return rec

    def records(self) -> Iterator[Record]:
        """Every record, oldest first; a torn last line (from a crash) is skipped."""
        if self.path is None:
            with self._lock:
                yield from list(self._memory)
            return
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(rec, dict):
                    yield rec

    def tail(self, n: int = 20) -> list[Record]:
        """The last ``n`` records."""
        return list(deque(self.records(), maxlen=max(0, n)))

    def summary(self) -> AuditSummary:
        """Counts by route and reason, degraded share, latency percentiles and cloud spend."""
        return summarize(self.records())

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def summarize(records: Iterator[Record] | list[Record]) -> AuditSummary:
    """Summarise audit records (see :meth:`AuditLog.summary`)."""
    routes: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    purposes: Counter[str] = Counter()
    degraded = queries = calls = failures = late = tokens = nbytes = 0
    cost = 0.0
    latencies: list[float] = []
    for rec in records:
        kind = rec.get("type")
        if kind == "query":
            queries += 1
            routes[str(rec.get("route"))] += 1
            degraded += bool(rec.get("degraded"))
            reasons.update(str(c) for c in rec.get("reasons", []))
            late += rec.get("cloud") == "late"
            total = (rec.get("latency_ms") or {}).get("total")
            if isinstance(total, int | float):
                latencies.append(float(total))
        elif kind == "cloud_call":
            calls += 1
            purposes[str(rec.get("purpose"))] += 1
            outcome = rec.get("outcome")
            failures += outcome == "error"
            tokens += int(rec.get("tokens") or 0)
            nbytes += int(rec.get("bytes") or 0)
            cost += float(rec.get("cost_usd") or 0.0)
    return AuditSummary(
        queries=queries,
        routes=dict(routes),
        degraded=degraded,
        degraded_share=degraded / queries if queries else 0.0,
        reasons=dict(reasons.most_common()),
        latency_p50_ms=_percentile(latencies, 50),
        latency_p95_ms=_percentile(latencies, 95),
        cloud_calls=calls,
        cloud_failures=failures,
        cloud_late=late,
        cloud_tokens=tokens,
        cloud_bytes=nbytes,
        cloud_cost_usd=round(cost, 8),
        by_purpose=dict(purposes),
    )


__all__ = [
    "AuditLog",
    "AuditSummary",
    "CloudCallRecord",
    "CloudOutcome",
    "CloudStatus",
    "QueryRecord",
    "Record",
    "summarize",
    "text_sha256",
]
