"""The service under hostile input: bodies over the cap refused before they are read, refusals
(401, 429) that never read the body, query and metadata caps, NaN and Infinity, a collection that
stays usable after a refused write, and /readyz turning false for an unusable collection."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from conftest import Served

Start = Callable[..., Served]
MiB = 1024 * 1024


def raw_request(
    url: str, head: str, body_chunks: int = 0, chunk: bytes = b"", *, chunked: bool = False
) -> tuple[str, int]:
    """Send ``head`` (request line and headers) and up to ``body_chunks`` chunks of the body on a raw
    socket, stopping as soon as the server answers or closes. Returns (response text, bytes sent)."""
    u = urlparse(url)
    sent = 0
    with socket.create_connection((u.hostname or "127.0.0.1", u.port or 80), timeout=20) as sock:
        sock.sendall(head.encode() + b"\r\n")
        sock.setblocking(False)
        got = b""
        for _ in range(body_chunks):
            with contextlib.suppress(BlockingIOError):
                got += sock.recv(65536)
            if got:
                break
            data = (f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n") if chunked else chunk
            try:
                sock.setblocking(True)
                sock.settimeout(5)
                sock.sendall(data)
                sent += len(chunk)
                sock.setblocking(False)
            except OSError:  # the server answered and closed while we were still sending
                break
        sock.setblocking(True)
        sock.settimeout(20)
        while b"\r\n\r\n" not in got:
            try:
                more = sock.recv(65536)
            except OSError:
                break
            if not more:
                break
            got += more
        head_end = got.find(b"\r\n\r\n")
        if head_end >= 0 and b"content-length" in got[:head_end].lower():
            length = int(got[:head_end].lower().split(b"content-length:")[1].split(b"\r\n")[0])
            while len(got) < head_end + 4 + length:
                more = sock.recv(65536)
                if not more:
                    break
                got += more
    return got.decode("utf-8", "replace"), sent


def status_and_body(response: str) -> tuple[int, dict[str, Any]]:
    head, _, body = response.partition("\r\n\r\n")
    return int(head.split(" ", 2)[1]), json.loads(body) if body.strip() else {}


def head(path: str, length: int | None, key: str | None = None, *, chunked: bool = False) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    if key:
        lines.append(f"Authorization: Bearer {key}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    return "\r\n".join(lines) + "\r\n"


def test_a_1_gb_content_length_is_refused_with_413_before_the_body_is_sent(serve: Start) -> None:
    s = serve()
    t0 = time.perf_counter()
    response, sent = raw_request(s.url, head("/v1/documents", 2**30, s.keys["acme"]))
    status, body = status_and_body(response)
    assert status == 413 and body["error"]["code"] == "too_large", response
    assert "33,554,432 bytes" in body["error"]["message"] and "--max-body-mb" in body["error"]["message"]
    assert sent == 0 and time.perf_counter() - t0 < 5
    assert httpx.get(s.url + "/healthz").status_code == 200


def test_an_http_client_sending_over_the_cap_gets_413(serve: Start) -> None:
    s = serve(max_body_bytes=1 * MiB)
    doc = {"id": "big", "text": "x" * 90_000}
    r = httpx.post(
        s.url + "/v1/documents",
        json={"collection": "docs", "documents": [doc] * 20},  # about 1.8 MB
        headers=s.headers(),
        timeout=30,
    )
    assert r.status_code == 413 and "1,048,576 bytes" in r.json()["error"]["message"]
    # Under the cap, a request as large is served (each document under the cloud model's 8,192 tokens,
    # which ingest checks separately).
    r = httpx.post(
        s.url + "/v1/documents",
        json={"collection": "docs", "documents": [{"id": f"d{i}", "text": "x" * 25_000} for i in range(36)]},
        headers=s.headers(),
        timeout=30,
    )
    assert r.status_code == 200, r.text


def test_a_chunked_body_without_a_length_is_refused_once_it_passes_the_cap(serve: Start) -> None:
    s = serve(max_body_bytes=1 * MiB)
    chunk = b"x" * 65536
    response, sent = raw_request(
        s.url,
        head("/v1/documents", None, s.keys["acme"], chunked=True),
        body_chunks=2000,  # 128 MiB if the server kept reading
        chunk=chunk,
        chunked=True,
    )
    status, body = status_and_body(response)
    assert status == 413 and "1,048,576 bytes" in body["error"]["message"], response
    # Refused after about 1 MiB; what else went out sits in socket buffers, not in the server.
    assert sent < 16 * MiB, sent


def test_an_httpx_stream_without_a_length_gets_413(serve: Start) -> None:
    s = serve(max_body_bytes=1 * MiB)
    produced = 0

    def stream() -> Any:
        nonlocal produced
        for _ in range(400):  # 25 MiB at most
            produced += 65536
            yield b"x" * 65536

    try:
        r = httpx.post(s.url + "/v1/documents", content=stream(), headers=s.headers(), timeout=30)
        assert r.status_code == 413
    except httpx.TransportError:
        pass  # some clients see the close before the response; the server refused either way
    assert produced < 25 * MiB


@pytest.mark.parametrize("case", ["no key", "rate limited"])
def test_refusals_do_not_read_the_body(serve: Start, case: str) -> None:
    s = serve(tenants={"acme": {}, "flood": {"rate_per_s": 0.01, "burst": 1}})
    key = None
    if case == "rate limited":
        key = s.keys["flood"]
        first = httpx.post(
            s.url + "/v1/embeddings",
            json={"input": "hi", "model": "edge"},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert first.status_code == 200
    # A body announced at 30 MB (under the cap) and never sent: the answer comes at once, so the
    # server cannot have read, parsed or validated any of it.
    t0 = time.perf_counter()
    response, sent = raw_request(s.url, head("/v1/retrieve", 30 * MiB, key))
    status, body = status_and_body(response)
    assert time.perf_counter() - t0 < 5 and sent == 0
    if case == "no key":
        assert status == 401 and body["error"]["code"] == "unauthorized", response
    else:
        assert status == 429 and body["error"]["code"] == "rate_limited", response
        assert "retry-after:" in response.lower()


def test_nan_and_infinity_are_refused_at_parse_and_never_reach_the_audit_log(serve: Start) -> None:
    s = serve()
    ok = httpx.post(
        s.url + "/v1/documents",
        json={"collection": "docs", "documents": [{"id": "a", "text": "Trail running shoes."}]},
        headers=s.headers(),
    )
    assert ok.status_code == 200
    bodies = [
        b'{"collection": "docs", "query": "shoes", "deadline_ms": Infinity}',
        b'{"collection": "docs", "query": "shoes", "deadline_ms": -Infinity}',
        b'{"collection": "docs", "query": "shoes", "where": {"price": NaN}}',
        b'{"collection": "docs", "documents": [{"id": "b", "text": "t", "metadata": {"x": NaN}}]}',
    ]
    for raw, path in zip(bodies, ["/v1/retrieve"] * 3 + ["/v1/documents"], strict=True):
        r = httpx.post(s.url + path, content=raw, headers={**s.headers(), "Content-Type": "application/json"})
        assert r.status_code == 400, (raw, r.text)
        assert "not JSON" in r.json()["error"]["message"]
    assert (
        httpx.post(
            s.url + "/v1/retrieve",
            json={"collection": "docs", "query": "shoes", "deadline_ms": 5000},
            headers=s.headers(),
        ).status_code
        == 200
    )
    audit = s.service.settings.audit_path.read_text(encoding="utf-8")
    assert "Infinity" not in audit and "NaN" not in audit
    for line in audit.splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in audit.jsonl"))


def test_query_length_is_capped(serve: Start) -> None:
    s = serve(max_query_chars=1000)
    httpx.post(
        s.url + "/v1/documents",
        json={"collection": "docs", "documents": [{"id": "a", "text": "Trail running shoes."}]},
        headers=s.headers(),
    )
    r = httpx.post(
        s.url + "/v1/retrieve", json={"collection": "docs", "query": "q" * 1001}, headers=s.headers()
    )
    assert r.status_code == 400 and "1,001 characters; the limit is 1,000" in r.json()["error"]["message"]
    parts = [{"text": "q" * 600}, {"text": "q" * 600}]
    r = httpx.post(s.url + "/v1/retrieve", json={"collection": "docs", "query": parts}, headers=s.headers())
    assert r.status_code == 400
    r = httpx.post(
        s.url + "/v1/tools/route",
        json={"request": "q" * 1001, "tools": [{"name": "t", "description": "d", "examples": ["e"]}]},
        headers=s.headers(),
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "request"
    r = httpx.post(
        s.url + "/v1/retrieve", json={"collection": "docs", "query": "q" * 1000}, headers=s.headers()
    )
    assert r.status_code == 200


def test_default_query_cap_refuses_a_20_mb_query_at_once(serve: Start) -> None:
    s = serve()
    t0 = time.perf_counter()
    r = httpx.post(
        s.url + "/v1/retrieve",
        json={"collection": "docs", "query": "word " * 4_000_000},
        headers=s.headers(),
        timeout=60,
    )
    assert r.status_code == 400 and "the limit is 32,768" in r.json()["error"]["message"]
    assert time.perf_counter() - t0 < 30


def test_metadata_chroma_cannot_store_is_refused_before_any_store_call(serve: Start) -> None:
    s = serve()

    def ingest(meta: dict[str, Any], doc_id: str = "m") -> httpx.Response:
        return httpx.post(
            s.url + "/v1/documents",
            json={
                "collection": "meta",
                "documents": [{"id": doc_id, "text": "Some text.", "metadata": meta}],
            },
            headers=s.headers(),
            timeout=60,
        )

    r = ingest({f"k{i}": "v" for i in range(10_000)})
    assert r.status_code == 400, r.text
    assert "documents[0].metadata has 10000 keys; at most 1000" in r.json()["error"]["message"]
    assert not any("meta" in c for c in s.service.store.list_collections())  # no store call was made
    assert ingest({"k" * 300: 1}).status_code == 400
    assert ingest({"note": "x" * 70_000}).status_code == 400
    # The collection works as before: write, read, delete, and /readyz stays 200.
    assert ingest({f"k{i}": i for i in range(1000)}, "full").status_code == 200
    r = httpx.post(
        s.url + "/v1/retrieve", json={"collection": "meta", "query": "some text"}, headers=s.headers()
    )
    assert r.status_code == 200 and r.json()["hits"][0]["id"] == "full"
    r = httpx.request(
        "DELETE", s.url + "/v1/documents", json={"collection": "meta", "ids": ["full"]}, headers=s.headers()
    )
    assert r.status_code in (200, 501), r.text
    assert httpx.get(s.url + "/readyz").status_code == 200


def test_readyz_turns_503_for_an_unusable_collection_and_healthz_stays_200(serve: Start) -> None:
    s = serve()
    r = httpx.post(
        s.url + "/v1/documents",
        json={"collection": "docs", "documents": [{"id": "a", "text": "Trail running shoes."}]},
        headers=s.headers(),
    )
    assert r.status_code == 200
    assert httpx.get(s.url + "/readyz").json()["collections"] == "ok"
    # Break the edge index as 10,000 metadata keys did before the caps: straight through Chroma.
    engine = next(e for _, e in s.service._engines.values())
    raw = engine.open_index("edge")._raw  # type: ignore[union-attr]
    with pytest.raises(Exception, match="compaction"):
        raw.upsert(
            ids=["x"],
            embeddings=[[0.1] * 128],
            documents=["x"],
            metadatas=[{f"k{i}": "v" for i in range(6000)}],
        )
    # Chroma still counts it, but every write now fails: the next ingest is a 503 ...
    r = httpx.post(
        s.url + "/v1/documents",
        json={"collection": "docs", "documents": [{"id": "b", "text": "Espresso machines."}]},
        headers=s.headers(),
    )
    assert r.status_code == 503 and r.json()["error"]["code"] == "store.unavailable"
    # ... and /readyz says so, while /healthz (liveness) stays 200.
    r = httpx.get(s.url + "/readyz")
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["error"]["code"] == "not_ready" and "acme__docs (edge)" in body["error"]["message"]
    assert "acme__docs (edge)" in body["collections"]["unusable"]
    assert httpx.get(s.url + "/healthz").status_code == 200
