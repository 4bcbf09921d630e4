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
==========================  ===========================================  =========================
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

if TYPE_CHECKING:
    from .embedder import Embedder
    from .router.engine import HybridEngine

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


@contextmanager
def build_engine(settings: RouterSettings, *, read_only: bool = False) -> Iterator[HybridEngine]:
    """``with build_engine(settings) as engine``: a :class:`HybridEngine` for ``settings`` that owns
    what it opened (audit log, cache, outbox, the edge model's inference thread) and closes it all on
    exit. The policy file is loaded first, so a broken one fails before the store is opened;
    ``read_only`` refuses a missing store instead of creating it."""
    from .router.audit import AuditLog
    from .router.engine import HybridEngine
    from .store.cache import EmbeddingCache
    from .store.chroma import VectorStore

    policy = load_policy(settings)
    if read_only:
        require_store(settings)
    with ExitStack() as owned:
        edge: Embedder
        if settings.edge == "hashing":
            from .testing.hashing import HashingEmbedder

            edge = HashingEmbedder(dims=settings.edge_dims or 256)
        else:
            from .edge.embedder import (
                EdgeEmbedder,  # lazy: onnxruntime costs time the other commands need not pay
            )

            model = EdgeEmbedder.load(settings.model_dir)
            owned.callback(model.close)
            edge = model
        cloud = None
        if settings.cloud_configured:
            from .cloud.breaker import CircuitBreaker
            from .cloud.embedder import CloudEmbedder

            cloud = CloudEmbedder(
                settings.cloud_model,
                settings.cloud_dims,
                api_key=settings.api_key,
                base_url=settings.base_url,
                timeout_s=settings.cloud_timeout_s,
                offline=settings.offline,
                # Shared by every command on this store, so `edgeroute status` reports what the last run saw.
                breaker=CircuitBreaker(state_path=Path(settings.store) / "circuit.json"),
            )
        store = VectorStore.persistent(settings.store)
        audit = owned.enter_context(AuditLog(settings.audit_path, record_text=settings.audit_text))
        cache = owned.enter_context(EmbeddingCache(settings.cache)) if settings.cache is not None else None
        yield owned.enter_context(
            HybridEngine(
                store,
                settings.collection,
                edge=edge,
                cloud=cloud,
                policy=policy,
                outbox_path=settings.outbox_path,
                audit=audit,
                cache=cache,
                edge_dims=settings.edge_dims if settings.edge == "model" else None,
                budget_usd=settings.budget_usd,
            )
        )


__all__ = ["EdgeKind", "RouterSettings", "build_engine", "load_policy", "require_store", "resolve_settings"]
