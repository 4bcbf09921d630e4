"""Fixtures for the service tests: a Service over an ephemeral store, hashing edge model, keys for
two tenants, the Gemini emulator as the cloud, and the app on a loopback port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from edgeroute.framework.serve.app import create_app
from edgeroute.framework.serve.keys import KeyStore
from edgeroute.framework.serve.server import BackgroundServer
from edgeroute.framework.serve.service import ServeConfig, Service
from edgeroute.framework.settings import resolve_settings
from edgeroute.framework.store.chroma import VectorStore
from edgeroute.framework.testing.emulator import GeminiEmulator
from edgeroute.framework.testing.hashing import HashingEmbedder

CLOUD_KEY = "serve-test-key"


@dataclass
class Served:
    url: str
    service: Service
    keys: dict[str, str]
    emu: GeminiEmulator
    keystore: KeyStore

    def headers(self, tenant: str = "acme") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[tenant]}"}


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[GeminiEmulator]:
    with GeminiEmulator(record_path=tmp_path / "requests.jsonl", retry_after_s=0.05) as e:
        yield e


ServiceFactory = Callable[..., Service]


@pytest.fixture
def make_service(tmp_path: Path, emu: GeminiEmulator) -> Iterator[ServiceFactory]:
    made: list[Service] = []

    def factory(
        *, edge: Any = None, limits: dict[str, dict[str, Any]] | None = None, **config: Any
    ) -> Service:
        state = tmp_path / f"state{len(made)}"
        settings = resolve_settings(
            store=state,
            edge="hashing",
            api_key=CLOUD_KEY,
            base_url=emu.base_url,
            cloud_dims=256,
            cache="off",
            env={},
        )
        keystore = KeyStore(tmp_path / "keys.json")
        for tenant, lim in (limits or {}).items():
            keystore.create(tenant, limits=lim)
        if not keystore.list():
            keystore.create("acme")
        config.setdefault("drain_interval_s", 0.2)
        cfg = ServeConfig(settings=settings, keys_path=tmp_path / "keys.json", **config)
        service = Service(
            cfg, edge=edge or HashingEmbedder(128), store=VectorStore.ephemeral(), keys=keystore
        )
        made.append(service)
        return service

    yield factory


@pytest.fixture
def serve(
    make_service: ServiceFactory, emu: GeminiEmulator, tmp_path: Path
) -> Iterator[Callable[..., Served]]:
    servers: list[BackgroundServer] = []

    def start(*, tenants: dict[str, dict[str, Any]] | None = None, **kw: Any) -> Served:
        keystore = KeyStore(tmp_path / "keys.json")
        keys = {}
        for tenant, lim in (tenants or {"acme": {}, "globex": {}}).items():
            keys[tenant], _ = keystore.create(tenant, limits=lim)
        service = make_service(**kw)
        srv = BackgroundServer(create_app(service, tool_defaults=kw.pop("tools", None))).start()
        servers.append(srv)
        return Served(srv.url, service, keys, emu, keystore)

    yield start
    for s in servers:
        s.stop()
