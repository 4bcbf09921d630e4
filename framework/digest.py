"""The one sha256 helper: hex digests of text (UTF-8), bytes, a sequence of chunks and files, as the
privacy guard, the audit log, the cache, content hashes and model manifests store them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path


def sha256_chunks(chunks: Iterable[bytes]) -> str:
    """The digest of the chunks concatenated, without building the concatenation."""
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    return sha256_bytes(text.encode("utf-8"))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks so a 1 GB model never sits in memory twice."""
    with path.open("rb") as f:
        return sha256_chunks(iter(lambda: f.read(chunk), b""))


__all__ = ["sha256_bytes", "sha256_chunks", "sha256_file", "sha256_text"]
