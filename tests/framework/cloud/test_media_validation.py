"""Every bad input is refused before any byte leaves: the emulator's request count stays at 0."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeroute.framework.cloud.embedder import CloudEmbedder
from edgeroute.framework.cloud.media import (
    estimate_tokens,
    image_kind,
    mp4_duration_s,
    pdf_page_count,
    validate_content,
    validate_dims,
)
from edgeroute.framework.errors import InputError
from edgeroute.framework.parts import Part
from edgeroute.framework.testing.emulator import GeminiEmulator
from edgeroute.framework.testing.fixtures import emulated_gemini, make_mp4, make_pdf, make_wav

JPEG = sorted(Path("/work/shared/data/flickr8k_1k/images").glob("*.jpg"))[0].read_bytes()
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


@pytest.fixture
def pair() -> Iterator[tuple[GeminiEmulator, CloudEmbedder]]:
    with emulated_gemini() as p:
        yield p


BAD_INPUTS: list[tuple[str, list[str | list[Part]], str]] = [
    ("empty text", [""], "empty text"),
    ("blank text", ["   "], "empty text"),
    ("no parts", [[]], "no parts"),
    ("seven images", [[Part.image(JPEG, "image/jpeg")] * 7], "at most 6 images"),
    ("gif named png", [[Part.image(b"GIF89a" + b"\0" * 20, "image/png")]], "not PNG or JPEG"),
    ("text named jpeg", [[Part.image(b"hello", "image/jpeg")]], "not PNG or JPEG"),
    ("long video", [[Part.video(make_mp4(121.0))]], "at most 120 s"),
    ("long video v1 mvhd", [[Part.video(make_mp4(600.0, version=1), "video/quicktime")]], "at most 120 s"),
    ("video without moov", [[Part.video(b"\0\0\0\x10ftypisom\0\0\0\0")]], "moov/mvhd"),
    ("7-page pdf", [[Part.pdf(make_pdf(7))]], "7 pages"),
    ("not a pdf", [[Part.pdf(b"hello world")]], "%PDF-"),
    ("huge text", ["word " * 12_000], "8192 tokens"),
    ("unsupported mime", [[Part(data=b"x", mime_type="image/gif")]], "unsupported MIME"),
    ("unsupported reference", [[Part.reference("gs://b/x.docx", "application/msword")]], "unsupported MIME"),
    ("empty bytes", [[Part.audio(b"")]], "no bytes"),
    ("nothing at all", [], "nothing to embed"),
]


@pytest.mark.parametrize(("name", "contents", "needle"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_never_reaches_the_wire(
    pair: tuple[GeminiEmulator, CloudEmbedder], name: str, contents: list[str | list[Part]], needle: str
) -> None:
    emu, cloud = pair
    with pytest.raises(InputError, match=needle):
        cloud.embed(contents)
    assert emu.request_count == 0


async def test_bad_input_never_reaches_the_wire_async(pair: tuple[GeminiEmulator, CloudEmbedder]) -> None:
    emu, cloud = pair
    with pytest.raises(InputError, match="7 pages"):
        await cloud.aembed([[Part.text("report"), Part.pdf(make_pdf(7))]])
    assert emu.request_count == 0


@pytest.mark.parametrize("dims", [127, 3073, 0, -5])
def test_dims_out_of_range(pair: tuple[GeminiEmulator, CloudEmbedder], dims: int) -> None:
    emu, cloud = pair
    with pytest.raises(InputError, match="128 to 3072"):
        cloud.embed_queries(["x"], dims=dims)
    with pytest.raises(InputError, match="128 to 3072"):
        CloudEmbedder(dims=dims)
    assert emu.request_count == 0


def test_call_shape_errors(pair: tuple[GeminiEmulator, CloudEmbedder]) -> None:
    emu, cloud = pair
    with pytest.raises(InputError, match="single string"):
        cloud.embed_queries("not a list")
    with pytest.raises(InputError, match="titles"):
        cloud.embed_documents(["a", "b"], titles=["only one"])
    with pytest.raises(InputError, match="unknown task"):
        cloud.embed(["a"], task="summarise")
    with pytest.raises(InputError, match="must be strings"):
        cloud.embed_queries([b"bytes"])  # type: ignore[list-item, unused-ignore]
    assert emu.request_count == 0


def test_limits_are_inclusive() -> None:
    validate_content([Part.image(JPEG, "image/jpeg")] * 6)
    validate_content([Part.video(make_mp4(120.0))])
    validate_content([Part.pdf(make_pdf(6))])
    validate_content([Part.text("word " * 8000)])
    validate_content([Part.audio(make_wav(0.1)), Part.image(PNG)])
    assert validate_dims(128) == 128 and validate_dims(3072) == 3072


def test_parsers() -> None:
    assert image_kind(JPEG) == "image/jpeg" and image_kind(PNG) == "image/png" and image_kind(b"GIF8") is None
    assert mp4_duration_s(make_mp4(12.5)) == pytest.approx(12.5)
    assert mp4_duration_s(make_mp4(300, timescale=90_000, version=1)) == pytest.approx(300)
    assert mp4_duration_s(b"garbage") is None
    assert pdf_page_count(make_pdf(1)) == 1 and pdf_page_count(make_pdf(9)) == 9
    # Without a readable page tree the page objects are counted.
    loose = b"%PDF-1.4\n" + b"<< /Type /Page >>\n" * 3 + b"<< /Type /Pages /Kids [] >>"
    assert pdf_page_count(loose) == 3
    assert estimate_tokens("a b c") == 3 and estimate_tokens("x" * 400) == 100
