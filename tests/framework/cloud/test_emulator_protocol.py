"""The emulator speaks Gemini's wire protocol: raw HTTP and the unmodified google-genai client."""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from edgeroute.framework.testing.emulator import GeminiEmulator
from edgeroute.framework.testing.fixtures import TEST_API_KEY

MODEL = "gemini-embedding-2-preview"
JPEG = next(iter(sorted(Path("/work/shared/data/flickr8k_1k/images").glob("*.jpg")))).read_bytes()


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[GeminiEmulator]:
    with GeminiEmulator(api_key=TEST_API_KEY, record_path=tmp_path / "rec.jsonl") as e:
        yield e


def post(
    emu: GeminiEmulator, path: str, body: Any, key: str | None = TEST_API_KEY
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["x-goog-api-key"] = key
    req = urllib.request.Request(emu.base_url + path, data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def batch_path(version: str = "v1") -> str:
    return f"/{version}/models/{MODEL}:batchEmbedContents"


def text_req(text: str, dims: int = 256) -> dict[str, Any]:
    return {"content": {"parts": [{"text": text}]}, "outputDimensionality": dims, "model": f"models/{MODEL}"}


def client(emu: GeminiEmulator, version: str | None = None) -> genai.Client:
    return genai.Client(
        api_key=TEST_API_KEY, http_options=types.HttpOptions(base_url=emu.base_url, api_version=version)
    )


@pytest.mark.parametrize("version", ["v1", "v1beta"])
def test_batch_text_both_versions(emu: GeminiEmulator, version: str) -> None:
    status, body = post(emu, batch_path(version), {"requests": [text_req("a b"), text_req("c d")]})
    assert status == 200
    vecs = np.array([e["values"] for e in body["embeddings"]])
    assert vecs.shape == (2, 256)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    usage = body["usageMetadata"]
    assert usage["promptTokenCount"] > 0
    assert usage["promptTokenDetails"][0]["modality"] == "TEXT"


def test_deterministic_and_semantic(emu: GeminiEmulator) -> None:
    _, a = post(emu, batch_path(), {"requests": [text_req("red running shoes", 768)]})
    _, b = post(emu, batch_path(), {"requests": [text_req("red running shoes", 768)]})
    _, c = post(
        emu, batch_path(), {"requests": [text_req("shoes for running, red", 768), text_req("tax law", 768)]}
    )
    va = np.array(a["embeddings"][0]["values"])
    assert va.tolist() == b["embeddings"][0]["values"]
    near, far = (np.array(e["values"]) @ va for e in c["embeddings"])
    assert near > far


def test_text_embedder_through_orthogonal_map_keeps_cosines() -> None:
    rng = np.random.default_rng(3)
    table = {t: rng.standard_normal(64) for t in ["a", "b", "c"]}

    def embed(texts: list[str]) -> np.ndarray[Any, Any]:
        return np.stack([table[t] / np.linalg.norm(table[t]) for t in texts])

    with GeminiEmulator(text_embedder=embed) as e:
        _, body = post(e, batch_path(), {"requests": [text_req(t, 3072) for t in ["a", "b", "c"]]})
    got = np.array([x["values"] for x in body["embeddings"]])
    src = embed(["a", "b", "c"])
    assert np.allclose(got @ got.T, src @ src.T, atol=1e-4)
    assert not np.allclose(got[:, :64], src, atol=1e-2)  # a space of its own, not the source's


def test_embed_content_endpoint_and_snake_case_urlsafe_base64(emu: GeminiEmulator) -> None:
    data = base64.urlsafe_b64encode(JPEG).decode()
    body = {
        "content": {"parts": [{"inline_data": {"mime_type": "image/jpeg", "data": data}}]},
        "output_dimensionality": 128,
    }
    status, out = post(emu, f"/v1beta/models/{MODEL}:embedContent", body)
    assert status == 200 and len(out["embedding"]["values"]) == 128
    camel = {
        "content": {
            "parts": [{"inlineData": {"mimeType": "image/jpeg", "data": base64.b64encode(JPEG).decode()}}]
        }
    }
    status2, out2 = post(emu, f"/v1/models/{MODEL}:embedContent", {**camel, "outputDimensionality": 128})
    assert status2 == 200 and out2["embedding"]["values"] == out["embedding"]["values"]
    assert out2["usageMetadata"]["promptTokenDetails"] == [{"modality": "IMAGE", "tokenCount": 258}]


def test_101_requests_gives_the_real_400_body(emu: GeminiEmulator) -> None:
    status, body = post(emu, batch_path(), {"requests": [text_req(f"t{i}") for i in range(101)]})
    assert status == 400
    assert body == {
        "error": {
            "code": 400,
            "message": "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch\n",
            "status": "INVALID_ARGUMENT",
        }
    }


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"requests": [text_req("x", 127)]}, "output_dimensionality"),
        ({"requests": [text_req("x", 3073)]}, "output_dimensionality"),
        ({"requests": [{"content": {"parts": []}}]}, "must not be empty"),
        (
            {
                "requests": [
                    {"content": {"parts": [{"inlineData": {"mimeType": "image/gif", "data": "R0lG"}}]}}
                ]
            },
            "Unsupported MIME",
        ),
        (
            {
                "requests": [
                    {"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": "aGVsbG8="}}]}}
                ]
            },
            "not valid",
        ),
        (
            {
                "requests": [
                    {
                        "content": {
                            "parts": [
                                {
                                    "inlineData": {
                                        "mimeType": "image/jpeg",
                                        "data": base64.b64encode(JPEG).decode(),
                                    }
                                }
                            ]
                            * 7
                        }
                    }
                ]
            },
            "at most 6 images",
        ),
    ],
)
def test_invalid_requests_get_status_bodies(emu: GeminiEmulator, body: dict[str, Any], needle: str) -> None:
    status, out = post(emu, batch_path(), body)
    assert status == 400
    assert out["error"]["status"] == "INVALID_ARGUMENT" and needle in out["error"]["message"]


def test_api_key_required(emu: GeminiEmulator) -> None:
    status, body = post(emu, batch_path(), {"requests": [text_req("x")]}, key=None)
    assert status == 403 and body["error"]["status"] == "PERMISSION_DENIED"
    status, body = post(emu, batch_path(), {"requests": [text_req("x")]}, key="wrong")
    assert status == 400 and "API key not valid" in body["error"]["message"]


def test_unknown_model_is_404(emu: GeminiEmulator) -> None:
    status, body = post(emu, "/v1/models/gemini-2.5-pro:batchEmbedContents", {"requests": [text_req("x")]})
    assert status == 404 and body["error"]["status"] == "NOT_FOUND"


def test_unmodified_sdk_sync_one_content_per_vector(emu: GeminiEmulator) -> None:
    sdk = client(emu)  # keep a reference: a collected Client closes its HTTP pool
    r = sdk.models.embed_content(
        model=MODEL,
        contents=[types.Content(parts=[types.Part(text=t)]) for t in ["a", "b", "c"]],
        config=types.EmbedContentConfig(output_dimensionality=768),
    )
    assert r.embeddings is not None and len(r.embeddings) == 3
    assert r.usage_metadata is not None and (r.usage_metadata.prompt_token_count or 0) >= 3


async def test_unmodified_sdk_async_interleaved_is_one_vector(emu: GeminiEmulator) -> None:
    sdk = client(emu, "v1beta")
    # The SDK's trap: a list of Parts is merged into ONE Content, so ONE vector comes back.
    parts: list[Any] = [
        types.Part(text="a dog"),
        types.Part.from_bytes(data=JPEG, mime_type="image/jpeg"),
    ]
    r = await sdk.aio.models.embed_content(
        model=MODEL,
        contents=parts,
        config=types.EmbedContentConfig(output_dimensionality=128),
    )
    assert r.embeddings is not None and len(r.embeddings) == 1
    assert emu.requests[-1]["path"] == f"/v1beta/models/{MODEL}:batchEmbedContents"


def test_sdk_surfaces_101_as_client_error(emu: GeminiEmulator) -> None:
    sdk = client(emu)
    with pytest.raises(genai_errors.ClientError) as info:
        sdk.models.embed_content(
            model=MODEL, contents=[types.Content(parts=[types.Part(text=str(i))]) for i in range(101)]
        )
    assert info.value.code == 400 and info.value.status == "INVALID_ARGUMENT"


def test_recording_jsonl(emu: GeminiEmulator, tmp_path: Path) -> None:
    sdk = client(emu)
    sdk.models.embed_content(
        model=MODEL,
        contents=[
            types.Content(
                parts=[types.Part(text="caption"), types.Part.from_bytes(data=JPEG, mime_type="image/jpeg")]
            )
        ],
    )
    lines = [json.loads(x) for x in (tmp_path / "rec.jsonl").read_text().splitlines()]
    assert len(lines) == 1 == emu.request_count
    rec = lines[0]
    assert rec["model"] == MODEL and rec["status"] == 200 and rec["time"] > 0
    text, image = rec["parts"][0]
    assert text == {"kind": "text", "text": "caption"}
    assert image["mime_type"] == "image/jpeg" and image["bytes"] == len(JPEG)
    assert image["sha256"] == hashlib.sha256(JPEG).hexdigest()


def test_twenty_concurrent_calls() -> None:
    from concurrent.futures import ThreadPoolExecutor

    with GeminiEmulator(latency_ms=100) as e:
        with ThreadPoolExecutor(20) as pool:
            results = list(
                pool.map(lambda i: post(e, batch_path(), {"requests": [text_req(str(i))]}), range(20))
            )
        assert [s for s, _ in results] == [200] * 20
        assert e.request_count == 20


def test_reset_and_fault_validation(emu: GeminiEmulator) -> None:
    post(emu, batch_path(), {"requests": [text_req("x")]})
    emu.script_faults(["503"])
    emu.reset()
    assert emu.request_count == 0
    assert post(emu, batch_path(), {"requests": [text_req("x")]})[0] == 200
    with pytest.raises(ValueError, match="unknown fault"):
        emu.script_faults(["418"])
    with pytest.raises(ValueError, match="fault_rate"):
        emu.set_faults(1.5)
