"""Test helpers for users' own suites: a Gemini emulator context manager and pytest fixtures.

In a ``conftest.py``::

    pytest_plugins = ["edgeroute.framework.testing"]

then ask for the ``gemini_emulator`` or ``cloud_embedder`` fixture in a test. Outside pytest use
``with emulated_gemini() as (emu, cloud): ...``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from ..cloud.embedder import CloudEmbedder
from .emulator import GeminiEmulator

TEST_API_KEY = "edgeroute-test-key"


@contextmanager
def emulated_gemini(
    *, dims: int = 768, emulator_kwargs: dict[str, Any] | None = None, **cloud_kwargs: Any
) -> Iterator[tuple[GeminiEmulator, CloudEmbedder]]:
    """Start an emulator on loopback and yield it with a :class:`CloudEmbedder` pointed at it.

    The embedder retries fast (small backoff) so fault tests stay quick; pass ``retry=...`` or other
    CloudEmbedder arguments to change that.
    """
    # The SDK trusts proxy variables; a loopback call must never go through a proxy.
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    from ..cloud.retry import RetryPolicy

    kwargs: dict[str, Any] = {"timeout_s": 5.0, "retry": RetryPolicy(base_delay_s=0.01, max_delay_s=0.05)}
    kwargs.update(cloud_kwargs)
    with GeminiEmulator(api_key=TEST_API_KEY, **(emulator_kwargs or {})) as emu:
        yield emu, CloudEmbedder(dims=dims, api_key=TEST_API_KEY, base_url=emu.base_url, **kwargs)


@pytest.fixture
def gemini_emulator() -> Iterator[GeminiEmulator]:
    """A fresh emulator on a free loopback port, api key :data:`TEST_API_KEY`, closed after the test."""
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    with GeminiEmulator(api_key=TEST_API_KEY, retry_after_s=0.05) as emu:
        yield emu


@pytest.fixture
def cloud_embedder(gemini_emulator: GeminiEmulator) -> CloudEmbedder:
    """A :class:`CloudEmbedder` (768 dims, fast retries) talking to the ``gemini_emulator`` fixture."""
    from ..cloud.retry import RetryPolicy

    return CloudEmbedder(
        dims=768,
        api_key=TEST_API_KEY,
        base_url=gemini_emulator.base_url,
        timeout_s=5.0,
        retry=RetryPolicy(base_delay_s=0.01, max_delay_s=0.05),
    )


def make_wav(seconds: float = 0.5, rate: int = 16_000, freq: float = 440.0) -> bytes:
    """A mono 16-bit PCM WAV of a sine tone: a small valid audio fixture."""
    import io
    import math
    import struct
    import wave

    frames = b"".join(
        struct.pack("<h", int(12_000 * math.sin(2 * math.pi * freq * i / rate)))
        for i in range(int(seconds * rate))
    )
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return buf.getvalue()


def make_mp4(seconds: float = 2.0, timescale: int = 1000, *, version: int = 0) -> bytes:
    """A minimal MP4 container (``ftyp`` + ``moov/mvhd``) declaring ``seconds`` of duration."""
    import struct

    def box(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I4s", 8 + len(payload), kind) + payload

    duration = int(seconds * timescale)
    if version == 1:
        head = struct.pack(">B3xQQIQ", 1, 0, 0, timescale, duration)
    else:
        head = struct.pack(">B3xIIII", 0, 0, 0, timescale, duration)
    # rate 1.0, volume 1.0, reserved, identity matrix, pre_defined, next_track_ID
    rest = struct.pack(">IH10x9I24xI", 0x00010000, 0x0100, 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000, 2)
    ftyp = box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2mp41")
    return ftyp + box(b"moov", box(b"mvhd", head + rest))


def make_pdf(pages: int = 1) -> bytes:
    """A valid PDF with ``pages`` empty pages (page tree with ``/Count`` and one ``/Type /Page`` per page)."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{3 + i} 0 R" for i in range(pages))
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>")
    objects += ["<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>"] * pages
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)
