"""Helpers for the router tests: documents, a CloudEmbedder on the emulator, a leak check."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeroute.framework.cloud.embedder import CloudEmbedder
from edgeroute.framework.cloud.retry import RetryPolicy
from edgeroute.framework.documents import Document
from edgeroute.framework.router.engine import HybridEngine
from edgeroute.framework.testing.emulator import GeminiEmulator

API_KEY = "router-test-key"
JPEG = next(iter(sorted(Path("/work/shared/data/flickr8k_1k/images").glob("*.jpg")))).read_bytes()

PUBLIC = [
    Document(f"pub-{i}", f"{topic} buying guide part {i}: comfort, price and warranty", sensitivity="public")
    for i, topic in enumerate(["running shoes", "trail cameras", "espresso machines", "mountain bikes"] * 3)
]
CONFIDENTIAL = Document(
    "conf-1",
    "Internal margin sheet: our cost for running shoes is 17 dollars per pair",
    sensitivity="confidential",
)
WITH_PII = Document(
    "pii-1",
    "Customer case: running shoes returned, reach the owner at jane.roe@example.org",
    sensitivity="public",
)


def make_cloud(emu: GeminiEmulator, **kw: Any) -> CloudEmbedder:
    kw.setdefault("timeout_s", 2.0)
    kw.setdefault("retry", RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.05))
    return CloudEmbedder(api_key=API_KEY, base_url=emu.base_url, dims=256, **kw)


def leaked(emu: GeminiEmulator, private: list[str]) -> list[str]:
    """Private texts found in what the emulator received (substring of text parts, sha256 of bytes)."""
    digests = {hashlib.sha256(t.encode()).hexdigest(): t for t in private}
    found = []
    for req in emu.requests:
        for content in req.get("parts") or []:
            for part in content:
                sent = part.get("text") or ""
                found += [t for t in private if t in sent]
                if part.get("sha256") in digests:
                    found.append(digests[part["sha256"]])
    return found


EngineFactory = Callable[..., HybridEngine]
