"""Two replicas against one `chroma run` server, all on loopback; kill -9 of one in the middle of an
ingest. The client retries on the other replica; every document ends up in both indexes exactly once,
and only the cloud batch that was in flight when the replica died may be sent a second time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_helpers import chroma_run, wait_ready
from typer.testing import CliRunner

from edgeroute.framework.cli import app
from edgeroute.framework.router.outbox import Outbox
from edgeroute.framework.serve.server import free_port
from edgeroute.framework.store.chroma import VectorStore
from edgeroute.framework.testing.emulator import GeminiEmulator

pytestmark = pytest.mark.server
LEASES = hasattr(Outbox, "claim")
N_DOCS = 320


@pytest.fixture
def chroma(tmp_path: Path) -> Iterator[str]:
    with chroma_run(tmp_path / "chroma", tmp_path / "chroma.log") as port:
        yield f"http://127.0.0.1:{port}"


def replica(
    name: str, chroma_url: str, tmp: Path, keys: Path, emu: GeminiEmulator
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "GEMINI_API_KEY": "scaleout-key",
        "GOOGLE_GEMINI_BASE_URL": emu.base_url,
        "EDGEROUTE_EDGE": "hashing",
        "EDGEROUTE_CLOUD_DIMS": "256",
    }
    log = (tmp / f"{name}.log").open("wb")
    args = [
        sys.executable, "-m", "edgeroute.framework.cli", "serve", "--port", str(port),
        "--chroma-url", chroma_url, "--state-dir", str(tmp / name),
        "--outbox", str(tmp / "outbox.sqlite"),  # one outbox per host, shared by its replicas
        "--keys", str(keys), "--drain-interval", "0.3",
    ]  # fmt: skip
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    wait_ready(proc, url, tmp / f"{name}.log")
    return proc, url


def sent_texts(emu: GeminiEmulator) -> list[list[str]]:
    """The document markers in each request the emulator received."""
    out = []
    for req in emu.requests:
        texts = [p.get("text") or "" for content in req.get("parts") or [] for p in content]
        out.append([t.split("doc-")[1][:4] for t in texts if "doc-" in t])
    return out


@pytest.mark.skipif(
    not LEASES, reason="needs outbox leases (issue 12: Outbox.claim) for exactly-once across replicas"
)
def test_kill_9_of_a_replica_mid_ingest_loses_and_duplicates_nothing(chroma: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    result = CliRunner().invoke(
        app, ["keys", "create", "--tenant", "acme", "--keys", str(keys)], catch_exceptions=False
    )
    key = result.stdout.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {key}"}
    docs = [
        {"id": f"d{i:04d}", "text": f"doc-{i:04d} scale-out note about topic {i % 17} and item {i}"}
        for i in range(N_DOCS)
    ]
    body = {"collection": "docs", "documents": docs, "sensitivity": "public"}
    # One recording emulator per replica, so every cloud request is known to come from A or from B.
    with (
        GeminiEmulator(latency_ms=150, record_path=tmp_path / "cloud-a.jsonl") as emu_a,
        GeminiEmulator(latency_ms=150, record_path=tmp_path / "cloud-b.jsonl") as emu_b,
    ):
        a, url_a = replica("a", chroma, tmp_path, keys, emu_a)
        b, url_b = replica("b", chroma, tmp_path, keys, emu_b)
        try:
            outcome: dict[str, object] = {}

            def ingest_on_a() -> None:
                try:
                    outcome["a"] = httpx.post(url_a + "/v1/documents", json=body, headers=headers, timeout=60)
                except httpx.HTTPError as exc:
                    outcome["a"] = exc

            t = threading.Thread(target=ingest_on_a)
            t.start()
            # Wait until A is sending to the cloud, then kill it without warning.
            deadline = time.monotonic() + 30
            while emu_a.request_count < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            a.kill()
            a.wait(10)
            t.join(30)
            assert isinstance(outcome["a"], httpx.HTTPError), "the kill must land before A answered"
            # The client retries the same request on B (ingest is idempotent by id and content).
            r = httpx.post(url_b + "/v1/documents", json=body, headers=headers, timeout=120)
            assert r.status_code == 200, r.text
            deadline = time.monotonic() + 60
            while httpx.get(url_b + "/readyz").json()["outbox_depth"] and time.monotonic() < deadline:
                time.sleep(0.2)
            assert httpx.get(url_b + "/readyz").json()["outbox_depth"] == 0
        finally:
            for p in (a, b):
                p.kill()
                p.wait(10)
        host, port = chroma.removeprefix("http://").split(":")
        vs = VectorStore.http(host, int(port))
        assert vs.get_collection("acme__docs.edge").count() == N_DOCS  # nothing lost, ids unique
        assert vs.get_collection("acme__docs.cloud").count() == N_DOCS
        by_a = Counter(m for req in sent_texts(emu_a) for m in req)
        by_b = Counter(m for req in sent_texts(emu_b) for m in req)
        assert set(by_a) | set(by_b) == {
            f"{i:04d}" for i in range(N_DOCS)
        }  # every document reached the cloud
        # Each replica sent each document at most once (leases between its own drains and A's leftovers) ...
        assert max(by_a.values()) == 1 and max(by_b.values(), default=1) == 1
        # ... and B repeated only what A had in flight when it died (sent, answered to nobody): at most one
        # batch per drain A was running (its request's drain and the background one).
        resent = set(by_a) & set(by_b)
        assert len(resent) <= 2 * 32, len(resent)
        (tmp_path / "report.json").write_text(
            json.dumps({"sent_by_a": len(by_a), "sent_by_b": len(by_b), "resent": len(resent)})
        )
