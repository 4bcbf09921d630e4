"""CloudEmbedder through the unmodified google-genai client (sync and async) against the emulator."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edgeroute.framework.cloud.embedder import CloudEmbedder
from edgeroute.framework.cloud.pricing import PriceTable
from edgeroute.framework.embedder import Embedder
from edgeroute.framework.errors import CloudUnavailableError, ConfigurationError, PrivacyViolationError
from edgeroute.framework.parts import Part
from edgeroute.framework.testing.emulator import GeminiEmulator
from edgeroute.framework.testing.fixtures import TEST_API_KEY, emulated_gemini, make_mp4, make_pdf, make_wav

IMAGES = sorted(Path("/work/shared/data/flickr8k_1k/images").glob("*.jpg"))[:3]


@pytest.fixture
def pair() -> Iterator[tuple[GeminiEmulator, CloudEmbedder]]:
    with emulated_gemini() as p:
        yield p


def sent_texts(emu: GeminiEmulator) -> list[str]:
    return [
        part["text"] for rec in emu.requests for req in rec["parts"] for part in req if part["kind"] == "text"
    ]


def test_satisfies_embedder_protocol(pair: tuple[GeminiEmulator, CloudEmbedder]) -> None:
    _, cloud = pair
    assert isinstance(cloud, Embedder)
    assert cloud.space.provider == "cloud" and cloud.space.dims == 768
    assert cloud.space.revision == "loopback-emulator"  # never mixed with real Gemini vectors
    assert cloud.space_for(256).dims == 256 and cloud.space_for(256) != cloud.space


def test_batch_of_250_is_three_calls(pair: tuple[GeminiEmulator, CloudEmbedder]) -> None:
    emu, cloud = pair
    vecs = cloud.embed_documents([f"document number {i}" for i in range(250)])
    assert vecs.shape == (250, 768) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert emu.request_count == 3
    assert sorted(len(r["parts"]) for r in emu.requests) == [50, 100, 100]
    assert cloud.usage.calls == 3 and cloud.usage.requests == 250


async def test_async_batch_of_250_is_three_calls(pair: tuple[GeminiEmulator, CloudEmbedder]) -> None:
    emu, cloud = pair
    vecs = await cloud.aembed_documents([f"document number {i}" for i in range(250)], dims=256)
    assert vecs.shape == (250, 256)
    assert emu.request_count == 3
    sync = cloud.embed_documents(["document number 7"], dims=256)
    assert np.allclose(vecs[7], sync[0], atol=1e-5)


def test_task_prefixes_on_the_wire(pair: tuple[GeminiEmulator, CloudEmbedder]) -> None:
    emu, cloud = pair
    cloud.embed_queries(["red shoes"])
    cloud.embed_documents(["a shoe shop", "untitled"], titles=["Shoes", None])
    cloud.embed(["plain"], task="none")
    cloud.embed(["is the sky green"], task="fact_checking")
    assert sent_texts(emu) == [
        "task: search result | query: red shoes",
        "title: Shoes | text: a shoe shop",
        "title: none | text: untitled",
        "plain",
        "task: fact checking | query: is the sky green",
    ]


def test_queries_retrieve_matching_documents(pair: tuple[GeminiEmulator, CloudEmbedder]) -> None:
    _, cloud = pair
    docs = cloud.embed_documents(["red running shoes for the marathon", "tax law for small companies"])
    q = cloud.embed_queries(["running shoes"])
    assert int(np.argmax(docs @ q[0])) == 0


def test_interleaved_image_and_text_is_one_vector(pair: tuple[GeminiEmulator, CloudEmbedder]) -> None:
    emu, cloud = pair
    jpegs = [p.read_bytes() for p in IMAGES]
    vecs = cloud.embed(
        [
            [
                Part.text("two dogs on grass"),
                Part.image(jpegs[0], "image/jpeg"),
                Part.image(jpegs[1], "image/jpeg"),
            ],
            [Part.image(jpegs[2], "image/jpeg")],
        ]
    )
    assert vecs.shape == (2, 768)
    assert emu.request_count == 1
    first = emu.requests[0]["parts"][0]
    assert [p["kind"] for p in first] == ["text", "inline_data", "inline_data"]
    assert first[1]["sha256"] == hashlib.sha256(jpegs[0]).hexdigest() and first[1]["bytes"] == len(jpegs[0])
    alone = cloud.embed([[Part.image(jpegs[0], "image/jpeg")]])
    assert not np.allclose(alone[0], vecs[0])  # combined, not just the image
    assert cloud.usage.tokens["image"] >= 3 * 258


@pytest.mark.parametrize(
    ("part", "modality"),
    [
        (Part.audio(make_wav(0.3)), "audio"),
        (Part.audio(make_wav(0.3), "audio/x-wav"), "audio"),
        (Part.video(make_mp4(3.0)), "video"),
        (Part.video(make_mp4(3.0), "video/quicktime"), "video"),
        (Part.pdf(make_pdf(6)), "pdf"),
        (Part.reference("https://example.com/files/report.pdf", "application/pdf"), "pdf"),
    ],
)
def test_each_modality(pair: tuple[GeminiEmulator, CloudEmbedder], part: Part, modality: str) -> None:
    emu, cloud = pair
    vec = cloud.embed([[Part.text("about this"), part]])
    assert vec.shape == (1, 768)
    assert cloud.usage.tokens.get(modality, 0) > 0 and cloud.usage.cost_usd > 0
    sent = emu.requests[0]["parts"][0][1]
    assert sent["kind"] == ("file_data" if part.uri else "inline_data")
    if part.data is not None:
        assert sent["bytes"] == len(part.data)
        assert sent["mime_type"] in {"audio/wav", "video/mp4", "video/quicktime", "application/pdf"}


def test_usage_and_cost_from_price_table() -> None:
    with emulated_gemini(prices={"text": 1_000_000.0}) as (_, cloud):
        cloud.embed_queries(["one two three four"])
        tokens = cloud.usage.tokens["text"]
        assert tokens > 0 and cloud.usage.cost_usd == pytest.approx(tokens * 1.0)
    assert PriceTable().cost({"video": 1_000_000}) == pytest.approx(12.0)


def test_guard_runs_before_any_request(pair: tuple[GeminiEmulator, CloudEmbedder]) -> None:
    emu, cloud = pair
    seen: list[str] = []

    def guard(contents: object) -> None:
        seen.extend(p.text_value or "" for c in contents for p in c)  # type: ignore[attr-defined]
        raise PrivacyViolationError("a private document tried to leave the device")

    cloud.guard = guard
    with pytest.raises(PrivacyViolationError):
        cloud.embed_documents(["my ssn is 078-05-1120"])
    assert seen == ["title: none | text: my ssn is 078-05-1120"]
    assert emu.request_count == 0


async def test_offline_mode_never_touches_the_network(pair: tuple[GeminiEmulator, CloudEmbedder]) -> None:
    emu, cloud = pair
    cloud.offline = True
    with pytest.raises(CloudUnavailableError, match="offline"):
        cloud.embed_queries(["x"])
    with pytest.raises(CloudUnavailableError, match="offline"):
        await cloud.aembed_queries(["x"])
    assert emu.request_count == 0 and cloud.health()["available"] is False
    cloud.offline = False
    assert cloud.embed_queries(["x"]).shape == (1, 768)


def test_api_key_and_base_url_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    with GeminiEmulator(api_key=TEST_API_KEY) as emu:
        monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
        monkeypatch.setenv("GEMINI_API_KEY", TEST_API_KEY)
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emu.base_url)
        cloud = CloudEmbedder(dims=128)
        assert cloud.embed_queries(["x"]).shape == (1, 128)
        assert TEST_API_KEY not in repr(cloud) and TEST_API_KEY not in str(cloud.health())


def test_missing_api_key_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigurationError, match="GEMINI_API_KEY"):
        CloudEmbedder(base_url="http://127.0.0.1:9").embed_queries(["x"])


def test_health_snapshot(pair: tuple[GeminiEmulator, CloudEmbedder]) -> None:
    _, cloud = pair
    cloud.embed_queries(["x"])
    h = cloud.health()
    assert h["breaker"] == "closed" and h["available"] is True and h["usage"]["calls"] == 1
