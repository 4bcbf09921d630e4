"""The one sha256 helper: hex digests of text (UTF-8) and bytes, as the guard, the audit log,
the cache and content hashes store them."""

from __future__ import annotations

import hashlib


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    return sha256_bytes(text.encode("utf-8"))


__all__ = ["sha256_bytes", "sha256_text"]
