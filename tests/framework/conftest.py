"""Fixtures for the router tests: a recording emulator, an ephemeral store, an engine factory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from router_helpers import EngineFactory, make_cloud

from edgeroute.framework.cloud.embedder import CloudEmbedder
from edgeroute.framework.router.audit import AuditLog
from edgeroute.framework.router.engine import HybridEngine
from edgeroute.framework.store.chroma import VectorStore
from edgeroute.framework.testing.emulator import GeminiEmulator
from edgeroute.framework.testing.hashing import HashingEmbedder


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[GeminiEmulator]:
    with GeminiEmulator(record_path=tmp_path / "requests.jsonl", retry_after_s=0.05, timeout_hold_s=2.0) as e:
        yield e


@pytest.fixture
def store() -> VectorStore:
    return VectorStore.ephemeral()


@pytest.fixture
def make_engine(store: VectorStore, emu: GeminiEmulator) -> Iterator[EngineFactory]:
    made: list[HybridEngine] = []

    def factory(*, cloud: CloudEmbedder | str | None = "default", **kw: Any) -> HybridEngine:
        c = make_cloud(emu) if cloud == "default" else cloud
        kw.setdefault("audit", AuditLog(None))
        engine = HybridEngine(
            kw.pop("store", store), kw.pop("collection", "docs"), edge=HashingEmbedder(128), cloud=c, **kw
        )
        made.append(engine)
        return engine

    yield factory
    for e in made:
        e.close()
