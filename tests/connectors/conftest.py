"""Real parts for the connector tests: an ephemeral Chroma store, the Gemini emulator, the hybrid engine."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeroute.framework.cloud.embedder import CloudEmbedder
from edgeroute.framework.documents import Document
from edgeroute.framework.router.engine import HybridEngine
from edgeroute.framework.store.chroma import VectorStore
from edgeroute.framework.testing.emulator import GeminiEmulator
from edgeroute.framework.testing.hashing import HashingEmbedder
from edgeroute.framework.testing.tiny_model import build_tiny_model
from edgeroute.policies.config import ConfidenceConfig, PolicyConfig

CORPUS = [
    ("pets-1", "Cats purr when they are content and sleep most of the day.", "public"),
    ("pets-2", "Dogs bark to warn their owners and need daily walks.", "public"),
    ("fin-1", "The quarterly report shows revenue grew eight percent.", "internal"),
    ("fin-2", "Salary bands for engineers are reviewed every spring.", "confidential"),
    ("food-1", "Bread is baked in hot ovens after the dough rises.", "public"),
    ("food-2", "Fresh pasta needs flour, eggs and a little salt.", "public"),
    ("wx-1", "Rain falls often in spring and autumn in the north.", "public"),
    ("it-1", "Reset your VPN password from the self-service portal.", "internal"),
]


@pytest.fixture(scope="session")
def emulator() -> Iterator[GeminiEmulator]:
    with GeminiEmulator(port=0) as emu:
        yield emu


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def cloud(emulator: GeminiEmulator) -> CloudEmbedder:
    return CloudEmbedder(base_url=emulator.base_url, api_key="test-key", dims=768)


@pytest.fixture
def engine(cloud: CloudEmbedder) -> Iterator[HybridEngine]:
    eng = HybridEngine(
        VectorStore.ephemeral(),
        f"conn-{uuid.uuid4().hex[:8]}",
        edge=HashingEmbedder(256),
        cloud=cloud,
        # Hashing scores are low; with no confidence floor, routes depend only on stakes and privacy.
        policy=PolicyConfig(confidence=ConfidenceConfig(min_top1=-1.0, min_margin=0.0)),
    )
    eng.ingest(
        [Document(id=i, text=t, sensitivity=s, metadata={"topic": i.split("-")[0]}) for i, t, s in CORPUS]  # type: ignore[arg-type]
    )
    yield eng
    eng.close()
