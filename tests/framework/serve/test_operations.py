"""Readiness when the store is gone, and the background drain of the outbox."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from conftest import Served

from edgeroute.framework.errors import StoreError
from edgeroute.framework.serve.keys import Tenant

DOCS = [{"id": f"d{i}", "text": f"public product note number {i} about kettles"} for i in range(5)]


def test_readyz_is_503_when_the_store_is_unreachable(
    serve: Callable[..., Served], monkeypatch: pytest.MonkeyPatch
) -> None:
    s = serve()
    assert httpx.get(s.url + "/readyz").status_code == 200

    def down() -> list[str]:
        raise StoreError("connection refused")

    monkeypatch.setattr(s.service.store, "list_collections", down)
    r = httpx.get(s.url + "/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["error"]["code"] == "not_ready" and body["store"].startswith("unreachable")
    assert body["breaker"] == "closed" and "outbox_depth" in body
    assert httpx.get(s.url + "/healthz").status_code == 200  # alive, just not ready


def test_documents_queued_while_the_cloud_is_away_are_drained_in_the_background(
    serve: Callable[..., Served],
) -> None:
    s = serve()
    cloud = s.service.cloud_for(Tenant("acme"))
    assert cloud is not None
    cloud.offline = True
    r = httpx.post(
        s.url + "/v1/documents",
        json={"collection": "notes", "documents": DOCS, "sensitivity": "public"},
        headers=s.headers(),
        timeout=30,
    )
    assert r.status_code == 200 and r.json()["queued"] == 5
    assert httpx.get(s.url + "/readyz").json()["outbox_depth"] == 5
    assert "edgeroute_outbox_depth 5.0" in httpx.get(s.url + "/metrics").text
    cloud.offline = False
    deadline = time.monotonic() + 60  # a loaded machine drains slowly; an idle one in well under 1 s
    while httpx.get(s.url + "/readyz").json()["outbox_depth"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert httpx.get(s.url + "/readyz").json()["outbox_depth"] == 0
    sent = [p.get("text", "") for req in s.emu.requests for c in req.get("parts") or [] for p in c]
    assert sum("kettles" in t for t in sent) == 5
