"""Prometheus metrics for one replica, on a registry of its own (so tests can run several apps).

Request counts and latency histograms are labelled by endpoint, route (``edge``/``cloud``/
``hybrid`` for routed work, ``-`` otherwise) and status. Cloud calls, spend per tenant, outbox
depth, dead-lettered outbox rows per collection, breaker state and micro-batching figures are read from the live objects at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ENDPOINTS = frozenset(
    {
        "/v1/embeddings",
        "/v1/models",
        "/v1/retrieve",
        "/v1/documents",
        "/v1/tools/route",
        "/healthz",
        "/readyz",
        "/metrics",
        "/docs",
        "/openapi.json",
    }
)
_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BREAKER_STATES = ("closed", "half_open", "open", "offline", "absent")


def endpoint_label(path: str) -> str:
    """The path for known endpoints, ``other`` for anything else (bounded label values)."""
    return path if path in ENDPOINTS else "other"


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    """An unlabelled counter family holding ``value``."""
    family = CounterMetricFamily(name, documentation)
    family.add_metric([], value)
    return family


class _Live(Collector):
    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        snap = self._read()
        calls = CounterMetricFamily(
            "edgeroute_cloud_calls", "Cloud embedding calls that returned vectors", labels=["tenant"]
        )
        inputs = CounterMetricFamily(
            "edgeroute_cloud_inputs", "Inputs embedded by the cloud", labels=["tenant"]
        )
        spend = GaugeMetricFamily(
            "edgeroute_cloud_spend_usd", "Estimated cloud spend in USD", labels=["tenant"]
        )
        for tenant, usage in sorted(snap.get("cloud", {}).items()):
            calls.add_metric([tenant], usage.get("calls", 0))
            inputs.add_metric([tenant], usage.get("requests", 0))
            spend.add_metric([tenant], usage.get("cost_usd", 0.0))
        yield calls
        yield inputs
        yield spend
        depth = GaugeMetricFamily("edgeroute_outbox_depth", "Documents queued for the cloud index")
        depth.add_metric([], snap.get("outbox_depth", 0))
        yield depth
        dead = GaugeMetricFamily(
            "edgeroute_outbox_dead",
            "Dead-lettered outbox rows (refused by the cloud for good, no longer sent) per collection",
            labels=["collection"],
        )
        for collection, n in sorted(snap.get("outbox_dead", {}).items()):
            dead.add_metric([collection], n)
        yield dead
        breaker = GaugeMetricFamily(
            "edgeroute_breaker_state", "1 for the cloud circuit's current state", labels=["state"]
        )
        current = snap.get("breaker", "absent")
        for state in BREAKER_STATES:
            breaker.add_metric([state], 1.0 if state == current else 0.0)
        yield breaker
        batch = snap.get("batch", {})
        yield _counter(
            "edgeroute_edge_batches", "Edge model calls made by the micro-batcher", batch.get("batches", 0)
        )
        yield _counter(
            "edgeroute_edge_batched_texts", "Texts embedded through the micro-batcher", batch.get("texts", 0)
        )
        yield _counter(
            "edgeroute_edge_dropped_requests",
            "Requests dropped before their batch ran (client gone)",
            batch.get("dropped", 0),
        )
        sb = snap.get("store_batch", {})
        yield _counter(
            "edgeroute_store_query_batches", "Store queries made by the query batcher", sb.get("batches", 0)
        )
        yield _counter(
            "edgeroute_store_batched_queries",
            "Searches served through the query batcher",
            sb.get("queries", 0),
        )


class Metrics:
    def __init__(self, live: Callable[[], dict[str, Any]]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "edgeroute_requests",
            "HTTP requests by endpoint, route and status",
            ["endpoint", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "edgeroute_request_seconds",
            "Request latency by endpoint and route",
            ["endpoint", "route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_Live(live))

    def observe(self, endpoint: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, route, str(status)).inc()
        self.latency.labels(endpoint, route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["CONTENT_TYPE", "Metrics", "endpoint_label"]
