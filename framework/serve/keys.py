"""Tenants and their API keys, in one JSON file that the CLI writes and the service reads.

A key is ``er-<id>-<secret>``. Only a salted sha256 of it is stored, so the file does not grant
access if it leaks; the service compares digests in constant time (:func:`hmac.compare_digest`).
The ``id`` part finds the record without comparing against every key, and names the key in
``keys list`` and ``keys revoke``. The service re-reads the file when it changes, so a revoked
key stops working without a restart.

Each tenant carries its limits: the cloud sensitivity ceiling (None: the server policy's), a
cloud budget in USD, a request rate (with a burst), and whether it may use the cloud model.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ...policies.decision import SENSITIVITY_LEVELS
from ..errors import ConfigurationError, InputError

_TENANT_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$")
_KEY_RE = re.compile(r"^er-([0-9a-f]{12})-([A-Za-z0-9_-]{20,100})$")
NAMESPACE_SEP = "__"


def validate_tenant_name(name: str) -> str:
    """Lower-case letters, digits and single dashes, 1-48 characters (it prefixes store collections)."""
    if not isinstance(name, str) or not _TENANT_RE.match(name) or "--" in name:
        raise InputError(
            f"invalid tenant name {name!r}: use 1-48 lower-case letters, digits and single dashes, "
            "starting and ending with a letter or digit (for example 'acme' or 'team-7')"
        )
    return name


@dataclass(frozen=True, slots=True)
class Tenant:
    """One tenant's limits; None means "no limit" (or, for the ceiling, the server policy's)."""

    name: str
    cloud_ceiling: str | None = None
    budget_usd: float | None = None
    rate_per_s: float | None = None
    burst: int | None = None
    allow_cloud: bool = True

    def __post_init__(self) -> None:
        validate_tenant_name(self.name)
        if self.cloud_ceiling is not None and self.cloud_ceiling not in SENSITIVITY_LEVELS:
            raise InputError(
                f"cloud ceiling {self.cloud_ceiling!r} is unknown; use one of {', '.join(SENSITIVITY_LEVELS)}"
            )
        if self.budget_usd is not None and self.budget_usd < 0:
            raise InputError(f"budget must be >= 0 USD, got {self.budget_usd}")
        if self.rate_per_s is not None and self.rate_per_s <= 0:
            raise InputError(f"rate must be > 0 requests per second, got {self.rate_per_s}")
        if self.burst is not None and self.burst < 1:
            raise InputError(f"burst must be >= 1, got {self.burst}")


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    tenant: str
    salt: str
    digest: str
    created: float
    label: str = ""
    revoked: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked is None


def _digest(salt: str, key: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + key.encode()).hexdigest()


@dataclass
class _Data:
    tenants: dict[str, Tenant] = field(default_factory=dict)
    keys: dict[str, KeyRecord] = field(default_factory=dict)


class KeyStore:
    """The keys file at ``path``: ``create``/``revoke``/``list`` for the CLI, ``authenticate`` for the service."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        self._data = _Data()
        self._stamp: tuple[float, int] | None = None
        self._checked = 0.0
        self._load(force=True)

    # -- file ------------------------------------------------------------------------------------------

    def _load(self, *, force: bool = False) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._data, self._stamp = _Data(), None
            return
        except OSError as exc:
            raise ConfigurationError(f"keys file {self.path} cannot be read ({exc.strerror or exc})") from exc
        stamp = (st.st_mtime, st.st_size)
        if not force and stamp == self._stamp:
            return
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            tenants = {n: Tenant(name=n, **t) for n, t in raw.get("tenants", {}).items()}
            keys = {k["id"]: KeyRecord(**k) for k in raw.get("keys", [])}
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ConfigurationError(
                f"keys file {self.path} is not a valid edgeroute keys file ({exc}); "
                "create keys with `edgeroute keys create --tenant NAME --keys FILE`"
            ) from exc
        self._data, self._stamp = _Data(tenants, keys), stamp

    def _save(self) -> None:
        body = {
            "version": 1,
            "tenants": {
                n: {k: v for k, v in asdict(t).items() if k != "name"} for n, t in self._data.tenants.items()
            },
            "keys": [asdict(k) for k in self._data.keys.values()],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Write-then-rename: a reader never sees half a file; 0600 because it lists the tenants.
        fd, tmp = tempfile.mkstemp(prefix=".keys-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(body, fh, indent=2)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        st = self.path.stat()
        self._stamp = (st.st_mtime, st.st_size)

    @contextlib.contextmanager
    def _editing(self) -> Iterator[_Data]:
        with self._lock:
            self._load(force=True)
            yield self._data
            self._save()

    def refresh(self, min_interval_s: float = 1.0) -> None:
        """Re-read the file if it changed (checked at most every ``min_interval_s``)."""
        now = time.monotonic()
        if now - self._checked < min_interval_s:
            return
        with self._lock:
            self._checked = now
            self._load()

    # -- administration (CLI) ---------------------------------------------------------------------------------

    def set_tenant(self, tenant: Tenant) -> Tenant:
        with self._editing() as data:
            data.tenants[tenant.name] = tenant
        return tenant

    def create(
        self, tenant: str, *, label: str = "", limits: dict[str, Any] | None = None
    ) -> tuple[str, KeyRecord]:
        """A new key for ``tenant`` (created with ``limits`` if new; ``limits`` update it otherwise)."""
        validate_tenant_name(tenant)
        with self._editing() as data:
            current = data.tenants.get(tenant, Tenant(tenant))
            data.tenants[tenant] = replace(current, **(limits or {}))
            key_id = secrets.token_hex(6)
            while key_id in data.keys:
                key_id = secrets.token_hex(6)
            key = f"er-{key_id}-{secrets.token_urlsafe(32)}"
            salt = secrets.token_hex(16)
            rec = KeyRecord(key_id, tenant, salt, _digest(salt, key), time.time(), label)
            data.keys[key_id] = rec
        return key, rec

    def revoke(self, key_id: str) -> KeyRecord:
        """Revoke by key id (the part after ``er-``) or by the whole key."""
        m = _KEY_RE.match(key_id)
        kid = m.group(1) if m else key_id
        with self._editing() as data:
            rec = data.keys.get(kid)
            if rec is None:
                raise InputError(
                    f"no key with id {kid!r} in {self.path}; `edgeroute keys list` shows the ids"
                )
            rec = replace(rec, revoked=rec.revoked or time.time())
            data.keys[kid] = rec
        return rec

    def list(self) -> list[KeyRecord]:
        with self._lock:
            self._load()
            return sorted(self._data.keys.values(), key=lambda r: (r.tenant, r.created))

    def tenants(self) -> dict[str, Tenant]:
        with self._lock:
            self._load()
            return dict(self._data.tenants)

    def active_count(self) -> int:
        return sum(1 for r in self.list() if r.active)

    # -- service ---------------------------------------------------------------------------------------------

    def authenticate(self, key: str | None) -> Tenant | None:
        """The tenant of an active ``key``; None for a missing, malformed, unknown or revoked key."""
        if not key:
            return None
        m = _KEY_RE.match(key)
        if m is None:
            return None
        self.refresh()
        data = self._data
        rec = data.keys.get(m.group(1))
        if rec is None:
            # Spend the same time as a real comparison, so timing does not reveal which ids exist.
            hmac.compare_digest(_digest("00" * 16, key), "0" * 64)
            return None
        if not hmac.compare_digest(_digest(rec.salt, key), rec.digest) or not rec.active:
            return None
        return data.tenants.get(rec.tenant, Tenant(rec.tenant))


def namespaced(tenant: str, collection: str) -> str:
    """The store name of a tenant's collection: ``<tenant>__<collection>``."""
    return f"{tenant}{NAMESPACE_SEP}{collection}"


def split_namespaced(name: str) -> tuple[str, str] | None:
    tenant, sep, collection = name.partition(NAMESPACE_SEP)
    return (tenant, collection) if sep and tenant and collection else None


__all__ = [
    "KeyRecord",
    "KeyStore",
    "Tenant",
    "namespaced",
    "split_namespaced",
    "validate_tenant_name",
]
