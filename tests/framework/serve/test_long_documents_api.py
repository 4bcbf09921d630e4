"""POST /v1/documents refuses a document too long to embed whole, as the engine does: 400 naming it."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from conftest import Served


def test_an_over_long_document_is_a_400_and_nothing_is_written(serve: Callable[..., Served]) -> None:
    s = serve()
    huge = (
        "lorem ipsum dolor sit amet " * 2_500
    )  # about 16,900 estimated tokens, under the 100,000 characters
    body = {
        "collection": "notes",
        "sensitivity": "public",
        "documents": [{"id": "short", "text": "espresso machines"}, {"id": "handbook", "text": huge}],
    }
    r = httpx.post(s.url + "/v1/documents", json=body, headers=s.headers(), timeout=30)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request"
    assert "'handbook' has about" in error["message"] and "over the cloud model's 8192" in error["message"]
    assert "lorem" not in error["message"]
    r = httpx.post(
        s.url + "/v1/retrieve", json={"collection": "notes", "query": "espresso", "k": 1}, headers=s.headers()
    )
    assert r.status_code == 404  # the short document of the same request was not written either
