"""What one replica holds: the edge model (loaded once), the store, the keys, and an engine per
tenant collection, built on first use and shared by every request after.

:meth:`Service.load` does everything that can fail before the server binds its port, so a wrong
store, model or keys file stops ``edgeroute serve`` with a clear message instead of answering 500s.
A tenant's collection ``docs`` is the logical collection ``<tenant>__docs`` in the store; the tenant's
cloud ceiling becomes its engines' policy, and its cloud embedder (its own usage, so its own spend
and budget) shares the replica's circuit breaker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ...policies.config import PolicyConfig
from ..aio import to_thread
from ..cloud.breaker import CircuitBreaker
from ..cloud.embedder import CloudEmbedder
from ..cloud.ledger import SpendLedger
from ..edge.embedder import EdgeEmbedder
from ..embedder import Embedder
from ..errors import CollectionNotFoundError, ConfigurationError, EdgeRouteError, StoreError
from ..pii import PiiDetector
from ..router.audit import AuditLog
from ..router.engine import HybridEngine
from ..router.guard import PrivacyGuard
from ..router.outbox import Outbox
from ..settings import RouterSettings, cloud_embedder, load_policy
from ..store.chroma import VectorStore, index_collection_name, validate_logical_name
from .batcher import MicroBatcher
from .keys import KeyStore, Tenant, namespaced, split_namespaced
from .limits import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_QUERY_CHARS
from .metrics import Metrics
from .querybatch import BatchingStore
from .ratelimit import RateLimiter

logger = logging.getLogger(__name__)

# /readyz counts the indexes of at most this many collections in use (two cheap calls each).
_PROBED_COLLECTIONS = 64
_PROBE_ID = "__edgeroute_readiness_probe__"


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """``settings`` is the router's (model, policy, cloud, state files); the rest is the service's own.

    With ``chroma_url`` the vectors live on that server and ``settings.store`` is only this
    replica's state directory (outbox, audit log, circuit state).
    """

    settings: RouterSettings
    keys_path: Path
    chroma_url: str | None = None
    max_batch: int = 32
    max_wait_ms: float = 2.0
    batching: bool = True
    tools_file: Path | None = None
    drain_interval_s: float = 5.0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_query_chars: int = DEFAULT_MAX_QUERY_CHARS


def parse_chroma_url(url: str) -> tuple[str, int]:
    parsed = urlparse(url if "://" in url else f"http://{url}")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigurationError(
            f"--chroma-url {url!r} is not an http URL; use for example http://127.0.0.1:8000"
        )
    return parsed.hostname, parsed.port or 8000


def open_store(config: ServeConfig) -> VectorStore:
    if config.chroma_url:
        host, port = parse_chroma_url(config.chroma_url)
        return VectorStore.http(host, port)
    # Held for the service's lifetime: the writer lock of the embedded store (see store/lock.py).
    return VectorStore.persistent(config.settings.store, lock_timeout_s=config.settings.lock_timeout_s)


def load_edge(settings: RouterSettings) -> Embedder:
    if settings.edge == "hashing":
        from ..testing.hashing import HashingEmbedder

        return HashingEmbedder(dims=settings.edge_dims or 256)
    from ..edge.embedder import EdgeEmbedder

    return EdgeEmbedder.load(settings.model_dir)


class Service:
    """The shared state behind the app; see :meth:`load` (or pass the parts in, as tests do)."""

    def __init__(
        self,
        config: ServeConfig,
        *,
        edge: Embedder,
        store: VectorStore,
        keys: KeyStore,
        policy: PolicyConfig | None = None,
    ) -> None:
        self.config = config
        self.settings = config.settings
        self.raw_edge = edge
        # Admitted requests being served (the app's middleware counts them): the batchers wait for
        # more requests only while one in flight has not reached them yet, so a lone request never
        # waits out --max-wait-ms.
        self.in_flight = 0
        self.edge = MicroBatcher(
            edge,
            max_batch=config.max_batch,
            max_wait_ms=config.max_wait_ms,
            enabled=config.batching,
            in_flight=self.requests_in_flight,
        )
        # Concurrent requests' store queries share Chroma calls too (see querybatch); off with batching.
        self.store = (
            BatchingStore(
                store,
                max_batch=config.max_batch,
                max_wait_ms=config.max_wait_ms,
                in_flight=self.requests_in_flight,
            )
            if config.batching
            else store
        )
        self.keys = keys
        self.policy = policy or load_policy(config.settings)
        self.audit = AuditLog(self.settings.audit_path, record_text=self.settings.audit_text)
        self.outbox = Outbox(self.settings.outbox_path)
        self.breaker = CircuitBreaker(state_path=self.settings.store / "circuit.json")
        # Keyed by name, holding the Tenant they were built for: a tenant whose limits change in the
        # keys file gets new ones at its next request (the old engine finishes what it serves).
        self._engines: dict[str, tuple[Tenant, HybridEngine]] = {}
        self._retired: list[HybridEngine] = []
        self._clouds: dict[str, tuple[Tenant, CloudEmbedder]] = {}
        self._pii: dict[str, tuple[Tenant, PiiDetector]] = {}
        self._known: set[str] = set()
        self._failed_writes: dict[str, str] = {}
        self.limiter = RateLimiter()
        self.metrics = Metrics(self.snapshot)
        self._lock = threading.Lock()
        self.ready = True
        self.closing = False

    @classmethod
    def load(cls, config: ServeConfig) -> Service:
        """Open keys, policy, store and model, in the order that fails cheapest first."""
        keys = KeyStore(config.keys_path)
        if keys.active_count() == 0:
            raise ConfigurationError(
                f"no active API keys in {config.keys_path}: create one with "
                f"`edgeroute keys create --tenant NAME --keys {config.keys_path}`"
            )
        policy = load_policy(config.settings)
        store = open_store(config)
        try:
            store.list_collections()
        except EdgeRouteError as exc:
            raise StoreError(f"the store at {store.location} is not usable: {exc}") from exc
        edge = load_edge(config.settings)
        return cls(config, edge=edge, store=store, keys=keys, policy=policy)

    def requests_in_flight(self) -> int:
        return self.in_flight

    # -- models ---------------------------------------------------------------------------------------

    @property
    def edge_model(self) -> str:
        return self.edge.space.model

    @property
    def cloud_model(self) -> str | None:
        return self.settings.cloud_model if self.settings.cloud_configured else None

    def may_use_cloud(self, tenant: Tenant) -> bool:
        return self.cloud_model is not None and tenant.allow_cloud

    def resolve_model(self, name: str, tenant: Tenant) -> str | None:
        """``"edge"`` or ``"cloud"`` for a model name (or alias) this tenant may use; None otherwise."""
        if name in (self.edge_model, "edge", self.edge_model.rsplit("/", 1)[-1]):
            return "edge"
        if self.may_use_cloud(tenant) and name in (self.cloud_model, "cloud"):
            return "cloud"
        return None

    # -- per tenant -----------------------------------------------------------------------------------

    def tenant_policy(self, tenant: Tenant) -> PolicyConfig:
        if tenant.cloud_ceiling is None or tenant.cloud_ceiling == self.policy.cloud_ceiling:
            return self.policy
        return self.policy.model_copy(update={"cloud_ceiling": tenant.cloud_ceiling})

    def cloud_for(self, tenant: Tenant) -> CloudEmbedder | None:
        if not self.may_use_cloud(tenant):
            return None
        with self._lock:
            held = self._clouds.get(tenant.name)
            if held is not None and held[0] == tenant:
                return held[1]
            cloud = cloud_embedder(
                self.settings,
                breaker=self.breaker,
                guard=PrivacyGuard(self.tenant_policy(tenant)),
                # Spend per tenant beside the outbox: replicas sharing the host's outbox share budgets,
                # and a restart does not reset them.
                ledger=SpendLedger(self.settings.outbox_path.parent / "spend" / f"{tenant.name}.sqlite"),
            )
            if held is not None:
                cloud.usage = held[1].usage  # new limits, the same spend so far
            self._clouds[tenant.name] = (tenant, cloud)
        return cloud

    def pii_for(self, tenant: Tenant) -> PiiDetector:
        """The tenant's on-device PII detector. With EdgeEmbedder its named-entity head reads token states
        from the same batched forward pass as the query's vector (the batcher stands in for the model)."""
        with self._lock:
            held = self._pii.get(tenant.name)
            if held is not None and held[0] == tenant:
                return held[1]
            model: Any = self.edge if isinstance(self.raw_edge, EdgeEmbedder) else None
            detector = PiiDetector(self.tenant_policy(tenant), embedder=model)
            self._pii[tenant.name] = (tenant, detector)
        return detector

    def spend(self, tenant: Tenant) -> float:
        held = self._clouds.get(tenant.name)
        return held[1].usage.spent_usd() if held is not None else 0.0

    def budget_left(self, tenant: Tenant) -> float | None:
        if tenant.budget_usd is None:
            return None
        return max(0.0, tenant.budget_usd - self.spend(tenant))

    async def engine(self, tenant: Tenant, collection: str, *, create: bool) -> HybridEngine:
        """The engine of ``tenant``'s ``collection``; CollectionNotFoundError when it does not exist
        and ``create`` is false (the same for another tenant's collection: it is not in this namespace)."""
        validate_logical_name(collection)
        name = validate_logical_name(namespaced(tenant.name, collection))
        held = self._engines.get(name)
        if held is not None and held[0] == tenant:
            return held[1]
        if not create and name not in self._known:
            exists = await to_thread(self._exists, name)
            if not exists:
                raise CollectionNotFoundError(f"collection {collection!r} not found")
        cloud = self.cloud_for(tenant)
        pii = self.pii_for(tenant)
        with self._lock:
            held = self._engines.get(name)
            if held is not None and held[0] == tenant:
                return held[1]
            engine = HybridEngine(
                self.store,
                name,
                edge=self.edge,
                pii_detector=pii,
                cloud=cloud,
                policy=self.tenant_policy(tenant),
                outbox_path=self.settings.outbox_path,
                audit=self.audit,
                budget_usd=tenant.budget_usd,
                cloud_dims=self.settings.cloud_dims if self.may_use_cloud(tenant) else None,
            )
            if held is not None:
                self._retired.append(held[1])
            self._engines[name] = (tenant, engine)
            self._known.add(name)
        return engine

    def _exists(self, name: str) -> bool:
        try:
            self.store.get_collection(index_collection_name(name, "edge"))
        except CollectionNotFoundError:
            return False
        self._known.add(name)
        return True

    # -- health ---------------------------------------------------------------------------------------

    def breaker_state(self) -> str:
        if self.cloud_model is None:
            return "absent"
        if self.settings.offline:
            return "offline"
        return str(self.breaker.state)

    def note_write_failure(self, collection: str, exc: BaseException) -> None:
        """A write to ``collection`` (namespaced) failed in the store: /readyz probes it until a write
        succeeds again."""
        self._failed_writes[collection] = f"{type(exc).__name__}: {str(exc)[:200]}"

    def unusable_collections(self) -> dict[str, str]:
        """``{collection (index): reason}`` for the collections in use (their engines are open) that
        the store cannot serve.

        Two cheap probes. Every index in use is counted: a collection that Chroma broke fails every
        read after a restart. A collection whose last write failed is also probed with the delete of
        an id that does not exist: Chroma (1.5) can keep answering reads from a collection on which
        every write fails ("Error in compaction"), and a read cannot tell. A probe that succeeds
        clears the failure.
        """
        bad: dict[str, str] = {}
        for name, (_, engine) in list(self._engines.items())[:_PROBED_COLLECTIONS]:
            write_probe = name in self._failed_writes and not self.store.read_only
            healthy = True
            for index in ("edge", "cloud"):
                try:
                    col = engine.open_index(index)
                    if col is None:
                        continue
                    col.count()
                    if write_probe:
                        col.delete([_PROBE_ID])
                except CollectionNotFoundError:
                    continue  # deleted since: nothing to serve, nothing broken
                except EdgeRouteError as exc:
                    healthy = False
                    bad[f"{name} ({index})"] = f"{type(exc).__name__}: {str(exc)[:200]}"
            if healthy:
                self._failed_writes.pop(name, None)
        return bad

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        checks: dict[str, Any] = {"model": self.edge_model, "model_loaded": True}
        try:
            await asyncio.wait_for(to_thread(self.store.list_collections), timeout=5.0)
            checks["store"] = "ok"
        except (EdgeRouteError, TimeoutError) as exc:
            checks["store"] = f"unreachable ({type(exc).__name__})"
        unusable: dict[str, str] = {}
        if checks["store"] == "ok":
            try:
                unusable = await asyncio.wait_for(to_thread(self.unusable_collections), timeout=5.0)
            except TimeoutError:
                unusable = {"*": "probing the collections in use took over 5 s"}
        checks["collections"] = "ok" if not unusable else {"unusable": unusable}
        checks["breaker"] = self.breaker_state()
        checks["outbox_depth"] = await to_thread(self.outbox.depth)
        ok = self.ready and not self.closing and checks["store"] == "ok" and not unusable
        return ok, checks

    def snapshot(self) -> dict[str, Any]:
        """Live figures for /metrics."""
        try:
            stats = self.outbox.stats()
            depth, dead = int(stats["depth"]), dict(stats["dead_by_collection"])
        except EdgeRouteError:
            depth, dead = -1, {}
        return {
            "cloud": {name: c.usage.as_dict() for name, (_, c) in list(self._clouds.items())},
            "outbox_depth": depth,
            "outbox_dead": dead,
            "breaker": self.breaker_state(),
            "batch": self.edge.stats.to_dict(),
            "store_batch": self.store.stats() if isinstance(self.store, BatchingStore) else {},
        }

    # -- background drain and shutdown ------------------------------------------------------------------

    async def drain_once(self) -> int:
        """Send what waits in the outbox for every tenant collection this replica can serve."""
        if self.cloud_model is None or self.breaker_state() not in ("closed", "half_open"):
            return 0
        stats = await to_thread(self.outbox.stats)
        tenants = self.keys.tenants()
        sent = 0
        for name, depth in stats["by_collection"].items():
            owner = split_namespaced(name)
            if not depth or owner is None:
                continue
            tenant = tenants.get(owner[0])
            if tenant is None or not self.may_use_cloud(tenant):
                continue
            engine = await self.engine(tenant, owner[1], create=True)
            report = await engine.adrain()
            sent += report.written
        return sent

    async def drain_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.drain_interval_s)
            try:
                await self.drain_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the loop must outlive one bad drain; rows stay queued
                logger.warning("background outbox drain failed (%s); will retry", type(exc).__name__)

    async def aclose(self) -> None:
        """Stop batching (after what is queued); close the outbox, the audit log and the store.

        Called after the server has finished its in-flight requests. Queued documents stay in the
        SQLite outbox for the next start (or another replica sharing it).
        """
        self.closing = True
        await self.edge.aclose()
        for engine in [e for _, e in self._engines.values()] + self._retired:
            with contextlib.suppress(Exception):
                engine.close()
        self._engines.clear()
        with contextlib.suppress(Exception):
            self.outbox.close()
        self.audit.close()
        close_model = getattr(self.raw_edge, "close", None)
        if callable(close_model):
            close_model()  # the inference thread
        with contextlib.suppress(Exception):
            self.store.close()  # last: an embedded store's writer lock goes with it


__all__ = ["ServeConfig", "Service", "load_edge", "open_store", "parse_chroma_url"]
