"""Content parts: text and media that make up one embedding input (interleaved when mixed)."""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .digest import sha256_chunks

Modality = Literal["text", "image", "audio", "video", "pdf"]

MIME_MODALITY: dict[str, Modality] = {
    "image/png": "image",
    "image/jpeg": "image",
    "audio/mpeg": "audio",
    "audio/mp3": "audio",
    "audio/wav": "audio",
    "audio/x-wav": "audio",
    "video/mp4": "video",
    "video/quicktime": "video",
    "application/pdf": "pdf",
}


@dataclass(frozen=True, slots=True)
class Part:
    """One piece of an input: text, inline bytes with a MIME type, or a file reference (URI).

    Build parts with the constructors: ``Part.text("red shoes")``, ``Part.image(png_bytes)``,
    ``Part.file("clip.mp4")``, ``Part.reference("gs://...", "application/pdf")``.
    """

    text_value: str | None = None
    data: bytes | None = None
    mime_type: str | None = None
    uri: str | None = None

    @staticmethod
    def text(text: str) -> Part:
        return Part(text_value=text)

    @staticmethod
    def image(data: bytes, mime_type: str = "image/png") -> Part:
        return Part(data=data, mime_type=mime_type)

    @staticmethod
    def audio(data: bytes, mime_type: str = "audio/wav") -> Part:
        return Part(data=data, mime_type=mime_type)

    @staticmethod
    def video(data: bytes, mime_type: str = "video/mp4") -> Part:
        return Part(data=data, mime_type=mime_type)

    @staticmethod
    def pdf(data: bytes) -> Part:
        return Part(data=data, mime_type="application/pdf")

    @staticmethod
    def file(path: str | Path, mime_type: str | None = None) -> Part:
        """Inline the bytes of a local file; the MIME type is guessed from the name when not given."""
        p = Path(path)
        guessed = mime_type or mimetypes.guess_type(p.name)[0] or "application/octet-stream"
        return Part(data=p.read_bytes(), mime_type=guessed)

    @staticmethod
    def reference(uri: str, mime_type: str) -> Part:
        return Part(uri=uri, mime_type=mime_type)

    @property
    def modality(self) -> Modality:
        if self.text_value is not None:
            return "text"
        return MIME_MODALITY.get((self.mime_type or "").lower(), "image" if (self.mime_type or "").startswith("image/") else "pdf")

    @property
    def is_text(self) -> bool:
        return self.text_value is not None

    def content_hash(self) -> str:
        chunks: list[bytes] = []
        if self.text_value is not None:
            chunks.append(b"t:" + self.text_value.encode())
        if self.data is not None:
            chunks += [b"d:" + (self.mime_type or "").encode() + b":", self.data]
        if self.uri is not None:
            chunks.append(b"u:" + self.uri.encode())
        return sha256_chunks(chunks)


Content = list[Part]
"""One embedding input: one or more parts, embedded together into ONE vector."""
