"""Gemini Embedding 2's model id and input limits, and the client-side checks of those limits, run
before any byte leaves the process.

Each check raises :class:`InputError` naming the limit and what to do instead. The checks read
the bytes themselves (magic numbers, the MP4 ``mvhd`` duration, the PDF page tree) rather than
trusting a file name or MIME type.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence

from ..errors import InputError
from ..parts import Part

DEFAULT_MODEL = "gemini-embedding-2-preview"
"""The cloud model every default in edgeroute names (the client, the connectors, the settings)."""
MEDIA_TOKENS = 258
"""Tokens per image or PDF page: the public rule of thumb for estimates; the cloud reports real figures."""
MIN_DIMS = 128
MAX_DIMS = 3072
MAX_INPUT_TOKENS = 8192
MAX_IMAGES = 6
MAX_VIDEO_SECONDS = 120.0
MAX_PDF_PAGES = 6

# Aliases a user may pass, mapped to the MIME type the API expects on the wire.
WIRE_MIME: dict[str, str] = {
    "image/png": "image/png",
    "image/jpeg": "image/jpeg",
    "image/jpg": "image/jpeg",
    "audio/mpeg": "audio/mpeg",
    "audio/mp3": "audio/mpeg",
    "audio/wav": "audio/wav",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "video/mp4": "video/mp4",
    "video/quicktime": "video/quicktime",
    "application/pdf": "application/pdf",
}

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"


def wire_mime(mime_type: str | None) -> str:
    """The API's spelling of ``mime_type``; :class:`InputError` when Gemini Embedding 2 cannot take it."""
    mime = (mime_type or "").strip().lower()
    if mime not in WIRE_MIME:
        raise InputError(
            f"unsupported MIME type {mime_type!r}: Gemini Embedding 2 accepts "
            f"{', '.join(sorted(set(WIRE_MIME.values())))}; convert the file or embed its text instead"
        )
    return WIRE_MIME[mime]


def validate_dims(dims: int) -> int:
    """Return ``dims`` if it is an int in 128-3072, else raise :class:`InputError`."""
    if isinstance(dims, bool) or not isinstance(dims, int) or not MIN_DIMS <= dims <= MAX_DIMS:
        raise InputError(
            f"dims must be an integer from {MIN_DIMS} to {MAX_DIMS}, got {dims!r}; "
            "768, 1536 and 3072 are recommended"
        )
    return dims


def estimate_tokens(text: str) -> int:
    """A cheap upper-side estimate: about 4 characters per token, at least one per word."""
    return max(len(text) // 4, len(text.split()))


def estimate_part_tokens(part: Part) -> int:
    """Estimated input tokens of one part: its text's estimate, or :data:`MEDIA_TOKENS` for media."""
    return estimate_tokens(part.text_value) if part.text_value is not None else MEDIA_TOKENS


def image_kind(data: bytes) -> str | None:
    """``"image/png"`` or ``"image/jpeg"`` from the magic bytes, else None."""
    if data.startswith(_PNG):
        return "image/png"
    if data.startswith(_JPEG):
        return "image/jpeg"
    return None


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """ISO-BMFF boxes in ``data[start:end]`` as (type, payload start, box end)."""
    out: list[tuple[bytes, int, int]] = []
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            if pos + 16 > end:
                break
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            break
        out.append((kind, pos + header, pos + size))
        pos += size
    return out


def mp4_duration_s(data: bytes) -> float | None:
    """Duration in seconds from the ``moov/mvhd`` box of an MP4 or MOV file; None if there is none."""
    for kind, start, end in _boxes(data, 0, len(data)):
        if kind != b"moov":
            continue
        for sub, s, e in _boxes(data, start, end):
            if sub != b"mvhd" or e - s < 20:
                continue
            version = data[s]
            if version == 1 and e - s >= 32:
                timescale, duration = struct.unpack(">IQ", data[s + 20 : s + 32])
            else:
                timescale, duration = struct.unpack(">II", data[s + 12 : s + 20])
            return duration / timescale if timescale else None
    return None


_PAGE_OBJ = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")
_PAGES_COUNT = re.compile(rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)|/Count\s+(\d+)[^>]*?/Type\s*/Pages\b", re.S)


def pdf_page_count(data: bytes) -> int:
    """Pages of a PDF: the root page tree's ``/Count`` when readable, else the number of page objects."""
    counts = [int(a or b) for a, b in _PAGES_COUNT.findall(data)]
    if counts:
        return max(counts)
    return len(_PAGE_OBJ.findall(data))


def _check_part(part: Part, where: str) -> None:
    if part.text_value is not None:
        if not part.text_value.strip():
            raise InputError(f"{where} is empty text; remove it or give it some words")
        return
    mime = wire_mime(part.mime_type)
    if part.uri is not None:
        return  # a file reference: the bytes are not here to inspect
    data = part.data
    if not data:
        raise InputError(f"{where} ({mime}) has no bytes; pass the file's contents or a file reference")
    if mime.startswith("image/"):
        if image_kind(data) is None:
            raise InputError(
                f"{where} is declared {mime} but its bytes are not PNG or JPEG; "
                "convert the image to PNG or JPEG before embedding"
            )
    elif mime.startswith("video/"):
        duration = mp4_duration_s(data)
        if duration is None:
            raise InputError(
                f"{where} ({mime}) has no readable MP4/MOV 'moov/mvhd' header, so its length is unknown; "
                "re-mux it as MP4 with the moov box present"
            )
        if duration > MAX_VIDEO_SECONDS:
            raise InputError(
                f"{where} is a video of {duration:.1f} s; Gemini Embedding 2 takes at most "
                f"{MAX_VIDEO_SECONDS:.0f} s per input: cut it into clips of <= 120 s and embed each"
            )
    elif mime == "application/pdf":
        if not data.lstrip()[:5] == b"%PDF-":
            raise InputError(f"{where} is declared application/pdf but does not start with %PDF-")
        pages = pdf_page_count(data)
        if pages > MAX_PDF_PAGES:
            raise InputError(
                f"{where} is a PDF of {pages} pages; Gemini Embedding 2 takes at most {MAX_PDF_PAGES} pages "
                "per input: split it into parts of <= 6 pages and embed each"
            )


def validate_content(parts: Sequence[Part], index: int = 0) -> None:
    """Check one embedding input (its parts become one vector) against the API's limits."""
    where = f"input {index}"
    if not parts:
        raise InputError(f"{where} has no parts; give at least one text or media part")
    images = 0
    tokens = 0
    for j, part in enumerate(parts):
        if not isinstance(part, Part):
            raise InputError(f"{where} part {j} is {type(part).__name__}, expected edgeroute Part or str")
        _check_part(part, f"{where} part {j}")
        if part.text_value is not None:
            tokens += estimate_tokens(part.text_value)
        elif wire_mime(part.mime_type).startswith("image/"):
            images += 1
    if images > MAX_IMAGES:
        raise InputError(
            f"{where} has {images} images; Gemini Embedding 2 takes at most {MAX_IMAGES} images per input: "
            "split them across several inputs"
        )
    # Only reject text that is clearly too long: the estimate is rough, so leave 25 % headroom.
    if tokens > MAX_INPUT_TOKENS * 1.25:
        raise InputError(
            f"{where} has about {tokens} tokens of text; Gemini Embedding 2 takes at most "
            f"{MAX_INPUT_TOKENS} tokens per input: chunk the text first (edgeroute.framework.store.chunking)"
        )
