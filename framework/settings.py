"""Router settings for the command line: resolved from arguments, then environment, then defaults.

One typed value object (:class:`RouterSettings`) says where the store, outbox, audit log and
cache live, which edge embedder and policy to use, and how to reach the cloud. The cloud endpoint
comes from the usual google-genai settings (``GEMINI_API_KEY``/``GOOGLE_API_KEY``,
``GOOGLE_GEMINI_BASE_URL``), so the same commands run against Google or ``edgeroute emulator``.

==========================  ===========================================  =========================
setting                     environment variable                         default
==========================  ===========================================  =========================
store                       ``EDGEROUTE_STORE``                          ``~/.edgeroute/store``
collection                  ``EDGEROUTE_COLLECTION``                     ``default``
edge (``model``/``hashing``)  ``EDGEROUTE_EDGE``                          ``model``
model_dir                   ``EDGEROUTE_EDGE_MODEL``                     resolved by model_dir
policy_file                 ``EDGEROUTE_POLICY``                         built-in defaults
api_key                     ``GEMINI_API_KEY`` / ``GOOGLE_API_KEY``      none: cloud not configured
base_url                    ``GOOGLE_GEMINI_BASE_URL``                   Google's endpoint
cloud_model / cloud_dims    ``EDGEROUTE_CLOUD_MODEL`` / ``..._DIMS``     gemini-embedding-2-preview / 768
cloud_timeout_s             ``EDGEROUTE_CLOUD_TIMEOUT_S``                10
offline                     ``EDGEROUTE_OFFLINE`` (1/true/yes)           false
outbox / audit / cache      ``EDGEROUTE_OUTBOX`` / ``_AUDIT`` / ``_CACHE``  files in the store dir
audit_text                  ``EDGEROUTE_AUDIT_TEXT``                     false (hashes only)
budget_usd                  ``EDGEROUTE_BUDGET_USD``                     unlimited
chroma_url                  ``EDGEROUTE_CHROMA_URL``                     none: the embedded store
lock_timeout_s              ``EDGEROUTE_LOCK_TIMEOUT_S``                 10 (seconds a writer waits)
==========================  ===========================================  =========================

With ``chroma_url`` the vectors live on that ``chroma run`` server (which serialises writers, so no
file lock is taken) and ``store`` holds only this host's files: outbox, audit log, cache, spend
ledger and circuit state. Without it the store directory is an embedded Chroma store, written by one
process at a time (see :mod:`edgeroute.framework.store.lock`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..policies.config import PolicyConfig
from .cloud.media import DEFAULT_MODEL
from .errors import ConfigurationError, StoreError
from .store.chroma import validate_logical_name
from .store.lock import DEFAULT_LOCK_TIMEOUT_S, check_lock_timeout, lock_timeout_from_env

if TYPE_CHECKING:
    from .cloud.breaker import CircuitBreaker
    from .cloud.embedder import CloudEmbedder, Guard
    from .cloud.ledger import SpendLedger
    from .embedder import Embedder
    from .router.engine import HybridEngine
    from .store.chroma import VectorStore

EdgeKind = Literal["model", "hashing"]
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _env_bool(env: Mapping[str, str], name: str) -> bool | None:
    raw = env.get(name)
    if raw is None:
        return None
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(f"${name}={raw!r} is not a boolean; use 1/0, true/false or yes/no")


def _env_number(env: Mapping[str, str], name: str, kind: type[int] | type[float]) -> Any:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return None
    try:
        return kind(raw)
    except ValueError:
        raise ConfigurationError(f"${name}={raw!r} is not a valid {kind.__name__}") from None


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


@dataclass(frozen=True, slots=True)
class RouterSettings:
    """Everything the router commands need; build with :func:`resolve_settings`."""

    store: Path
    collection: str
    edge: EdgeKind = "model"
    model_dir: Path | None = None
    edge_dims: int | None = None
    policy_file: Path | None = None
    api_key: str | None = field(default=None, repr=False)  # never printed
    base_url: str | None = None
    cloud_model: str = DEFAULT_MODEL
    cloud_dims: int = 768
    cloud_timeout_s: float = 10.0
    offline: bool = False
    outbox: Path | None = None
    audit: Path | None = None
    audit_text: bool = False
    cache: Path | None = None
    budget_usd: float | None = None
    chroma_url: str | None = None
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S

    @property
    def cloud_configured(self) -> bool:
        """True when an api key is known (from the argument or the environment)."""
        return bool(self.api_key)

    @property
    def outbox_path(self) -> Path:
        return self.outbox or self.store / "outbox.sqlite"

    @property
    def audit_path(self) -> Path:
        return self.audit or self.store / "audit.jsonl"

    def describe(self) -> dict[str, Any]:
        """A printable view (the api key only as present/absent)."""
        return {
            "store": str(self.store),
            "chroma_url": self.chroma_url,
            "collection": self.collection,
            "edge": self.edge,
            "model_dir": str(self.model_dir) if self.model_dir else None,
            "policy_file": str(self.policy_file) if self.policy_file else None,
            "cloud": {
                "configured": self.cloud_configured,
                "base_url": self.base_url,
                "model": self.cloud_model,
                "dims": self.cloud_dims,
                "offline": self.offline,
            },
            "outbox": str(self.outbox_path),
            "audit": str(self.audit_path),
            "cache": str(self.cache) if self.cache else None,
            "budget_usd": self.budget_usd,
        }


def resolve_settings(
    *,
    store: str | Path | None = None,
    collection: str | None = None,
    edge: str | None = None,
    model_dir: str | Path | None = None,
    edge_dims: int | None = None,
    policy_file: str | Path | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    cloud_model: str | None = None,
    cloud_dims: int | None = None,
    offline: bool | None = None,
    outbox: str | Path | None = None,
    audit: str | Path | None = None,
    audit_text: bool | None = None,
    cache: str | Path | None = None,
    budget_usd: float | None = None,
    chroma_url: str | None = None,
    lock_timeout_s: float | None = None,
    env: Mapping[str, str] | None = None,
) -> RouterSettings:
    """Arguments win over environment variables, which win over defaults (see the module table)."""
    e = os.environ if env is None else env
    store_dir = Path(_first(store, e.get("EDGEROUTE_STORE")) or "~/.edgeroute/store").expanduser()
    name = validate_logical_name(_first(collection, e.get("EDGEROUTE_COLLECTION")) or "default")
    kind = (_first(edge, e.get("EDGEROUTE_EDGE")) or "model").strip().lower()
    if kind not in ("model", "hashing"):
        raise ConfigurationError(
            f"edge embedder {kind!r} is unknown; use 'model' (EmbeddingGemma) or 'hashing' (no model, tests)"
        )
    dims = _first(cloud_dims, _env_number(e, "EDGEROUTE_CLOUD_DIMS", int)) or 768
    timeout = _env_number(e, "EDGEROUTE_CLOUD_TIMEOUT_S", float) or 10.0
    budget = _first(budget_usd, _env_number(e, "EDGEROUTE_BUDGET_USD", float))
    if budget is not None and budget < 0:
        raise ConfigurationError(f"the cloud budget must be >= 0 USD, got {budget}")
    policy = _first(policy_file, e.get("EDGEROUTE_POLICY"))
    cache_raw = _first(cache, e.get("EDGEROUTE_CACHE"))
    cache_path = (
        None
        if isinstance(cache_raw, str) and cache_raw.strip().lower() == "off"
        else Path(cache_raw).expanduser()
        if cache_raw
        else store_dir / "cache.sqlite"
    )
    model = _first(model_dir, e.get("EDGEROUTE_EDGE_MODEL"))
    url = (_first(chroma_url, e.get("EDGEROUTE_CHROMA_URL")) or "").strip() or None
    if url is not None:
        parse_chroma_url(url)  # a malformed URL fails here, before anything is opened
    wait = (
        lock_timeout_from_env(dict(e))
        if lock_timeout_s is None
        else check_lock_timeout(lock_timeout_s, "--lock-timeout")
    )
    return RouterSettings(
        store=store_dir,
        collection=name,
        edge=kind,  # type: ignore[arg-type]
        model_dir=Path(model).expanduser() if model else None,
        edge_dims=edge_dims,
        policy_file=Path(policy).expanduser() if policy else None,
        api_key=_first(api_key, e.get("GEMINI_API_KEY"), e.get("GOOGLE_API_KEY")) or None,
        base_url=_first(base_url, e.get("GOOGLE_GEMINI_BASE_URL")) or None,
        cloud_model=_first(cloud_model, e.get("EDGEROUTE_CLOUD_MODEL")) or DEFAULT_MODEL,
        cloud_dims=int(dims),
        cloud_timeout_s=float(timeout),
        offline=bool(_first(offline, _env_bool(e, "EDGEROUTE_OFFLINE"))),
        outbox=Path(_first(outbox, e.get("EDGEROUTE_OUTBOX"))).expanduser()
        if _first(outbox, e.get("EDGEROUTE_OUTBOX"))
        else None,
        audit=Path(_first(audit, e.get("EDGEROUTE_AUDIT"))).expanduser()
        if _first(audit, e.get("EDGEROUTE_AUDIT"))
        else None,
        audit_text=bool(_first(audit_text, _env_bool(e, "EDGEROUTE_AUDIT_TEXT"))),
        cache=cache_path,
        budget_usd=budget,
        chroma_url=url,
        lock_timeout_s=wait,
    )


def parse_chroma_url(url: str) -> tuple[str, int]:
    """``http://HOST:PORT`` (or ``HOST:PORT``; port 8000 when absent) of a ``chroma run`` server."""
    from urllib.parse import urlparse

    parsed = urlparse(url if "://" in url else f"http://{url}")
    try:
        port = parsed.port
    except ValueError:
        port = -1
    if parsed.scheme not in ("http", "https") or not parsed.hostname or port == -1:
        raise ConfigurationError(
            f"--chroma-url {url!r} is not an http URL; use for example http://127.0.0.1:8000"
        )
    return parsed.hostname, port or 8000


def open_store(settings: RouterSettings, *, read_only: bool = False) -> VectorStore:
    """The vector store ``settings`` name: the ``chroma run`` server at ``chroma_url``, else the embedded
    store in ``settings.store`` (taking its writer lock unless ``read_only``). Close it when done."""
    from .store.chroma import VectorStore

    if settings.chroma_url:
        host, port = parse_chroma_url(settings.chroma_url)
        store = VectorStore.http(host, port)
        store.read_only = read_only
        return store
    return VectorStore.persistent(settings.store, read_only=read_only, lock_timeout_s=settings.lock_timeout_s)


def spend_path(settings: RouterSettings) -> Path:
    """The store's spend ledger (every process on the store adds to it; the budget cap reads it)."""
    return settings.store / "spend.sqlite"


def cloud_embedder(
    settings: RouterSettings, *, breaker: CircuitBreaker, ledger: SpendLedger, guard: Guard | None = None
) -> CloudEmbedder:
    """The cloud embedder these settings describe (model, dims, key, endpoint, timeout, offline), with the
    caller's breaker, spend ledger and privacy guard: one place for what every process builds alike."""
    from .cloud.embedder import CloudEmbedder

    return CloudEmbedder(
        settings.cloud_model,
        settings.cloud_dims,
        api_key=settings.api_key,
        base_url=settings.base_url,
        timeout_s=settings.cloud_timeout_s,
        offline=settings.offline,
        breaker=breaker,
        ledger=ledger,
        guard=guard,
    )


def load_policy(settings: RouterSettings) -> PolicyConfig:
    """The policy file's config (a broken file raises :class:`ConfigurationError`), or the defaults."""
    if settings.policy_file is None:
        return PolicyConfig()
    from .router.policy_files import load_policy_file

    return load_policy_file(settings.policy_file)


def require_store(settings: RouterSettings) -> None:
    """For read-only commands: refuse a store directory that does not exist instead of creating it."""
    if not settings.store.is_dir():
        raise StoreError(
            f"no store at {settings.store}: index documents first (`edgeroute index PATH --store "
            f"{settings.store}`), or point --store / $EDGEROUTE_STORE at an existing one"
        )


def _writable(directory: Path) -> bool:
    return os.access(directory, os.W_OK) and _probe(directory)


def _probe(directory: Path) -> bool:
    # A throw-away file: permission bits lie under root and on read-only mounts.
    import tempfile

    try:
        fd, name = tempfile.mkstemp(prefix=".edgeroute-probe-", dir=directory)
    except OSError:
        return False
    os.close(fd)
    Path(name).unlink()
    return True


def _stored_edge(store: VectorStore, settings: RouterSettings) -> Embedder:
    """The edge index's space without its model (see :class:`~.edge.unloaded.UnloadedEdge`)."""
    from .edge.unloaded import UnloadedEdge
    from .errors import CollectionNotFoundError
    from .spaces import EmbeddingSpace
    from .store.chroma import index_collection_name

    try:
        return UnloadedEdge(store.get_collection(index_collection_name(settings.collection, "edge")).space)
    except CollectionNotFoundError:
        # No edge index (nothing indexed yet, or media only): no edge space to check against.
        return UnloadedEdge(EmbeddingSpace("edge", "not-loaded", "none", 1, "none", "none"))


@contextmanager
def build_engine(
    settings: RouterSettings,
    *,
    read_only: bool = False,
    existing: bool = False,
    load_model: bool = True,
    prefetch: bool = False,
) -> Iterator[HybridEngine]:
    """``with build_engine(settings) as engine``: a :class:`HybridEngine` for ``settings`` that owns
    what it opened (the store and, on an embedded store opened writable, its writer lock; audit log,
    cache, outbox, the edge model's inference thread) and closes it all on exit. The policy file is loaded first, so a broken one fails before the store is opened.

    ``existing`` refuses a missing store instead of creating it. ``read_only`` (implies ``existing``)
    is for commands that only read: nothing in the store is created or written (no collection, no
    outbox rows); a store directory this process cannot write is still read (the audit log then
    stays in memory unless ``EDGEROUTE_AUDIT`` points elsewhere, with a warning). ``load_model=False``
    skips loading the on-device model, for commands that never embed (status, sync, delete).
    ``prefetch`` starts loading the model (verify, tokenizer, session) on its inference thread at once,
    beside the store's opening, for a command that is about to embed (``edgeroute index`` of new files).
    """
    import logging

    from .router.audit import AuditLog
    from .router.engine import HybridEngine
    from .router.outbox import Outbox
    from .store.cache import EmbeddingCache

    policy = load_policy(settings)
    if settings.chroma_url:
        # The vectors are on the server; --store is this host's state (outbox, audit, cache, ledger).
        settings.store.mkdir(parents=True, exist_ok=True)
    elif read_only or existing:
        require_store(settings)
    with ExitStack() as owned:
        edge: Embedder | None = None
        if load_model and settings.edge == "hashing":
            from .testing.hashing import HashingEmbedder

            edge = HashingEmbedder(dims=settings.edge_dims or 256)
        elif load_model:
            from .edge.embedder import (
                EdgeEmbedder,  # lazy: onnxruntime costs time the other commands need not pay
            )

            # Resolved (manifest read) before the store is opened; the tokenizer and the ONNX session load
            # on first use, so a command with nothing to embed (a re-index of unchanged files) never pays
            # the ~2 s of onnxruntime's import, the sha256 of the weights and the session.
            model = EdgeEmbedder.load(settings.model_dir, lazy=True)
            owned.callback(model.close)
            if prefetch:
                model.prefetch()
            edge = model
        # Closed before anything else (LIFO): on an embedded store this holds the writer lock (unless
        # read_only) from before Chroma loads anything until after Chroma let go of it.
        store = open_store(settings, read_only=read_only)
        owned.callback(store.close)
        writable = not read_only or (store.snapshot is None and _writable(settings.store))
        if edge is None:
            edge = _stored_edge(store, settings)
        cloud = None
        if settings.cloud_configured:
            from .cloud.breaker import CircuitBreaker
            from .cloud.ledger import SpendLedger

            cloud = cloud_embedder(
                settings,
                # Shared by every command on this store, so `edgeroute status` reports what the last run saw.
                breaker=CircuitBreaker(state_path=Path(settings.store) / "circuit.json"),
                # Likewise the spend: the budget cap holds across processes and `status` shows the real total.
                ledger=SpendLedger(spend_path(settings)),
            )
        if writable or settings.audit is not None:
            audit = owned.enter_context(AuditLog(settings.audit_path, record_text=settings.audit_text))
        else:
            logging.getLogger(__name__).warning(
                "the store %s is read-only, so this command is not audited there; set EDGEROUTE_AUDIT "
                "to a writable file to keep an audit log",
                settings.store,
            )
            audit = owned.enter_context(AuditLog(None, record_text=settings.audit_text))
        cache = (
            owned.enter_context(EmbeddingCache(settings.cache))
            if settings.cache is not None and (writable or settings.cache.parent != settings.store)
            else None
        )
        outbox = owned.enter_context(Outbox(settings.outbox_path, read_only=read_only))
        yield owned.enter_context(
            HybridEngine(
                store,
                settings.collection,
                edge=edge,
                cloud=cloud,
                policy=policy,
                outbox=outbox,
                audit=audit,
                cache=cache,
                edge_dims=settings.edge_dims if settings.edge == "model" and load_model else None,
                budget_usd=settings.budget_usd,
            )
        )


__all__ = [
    "EdgeKind",
    "RouterSettings",
    "build_engine",
    "load_policy",
    "open_store",
    "parse_chroma_url",
    "require_store",
    "resolve_settings",
    "spend_path",
]
