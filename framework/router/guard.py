"""The privacy guard: the last check before any byte reaches the cloud client.

The policy already keeps private queries and documents on the device; this guard exists in case
a bug does not. Installed as ``CloudEmbedder(guard=...)``, it sees the final parts (task prefixes
included) of every request and raises :class:`PrivacyViolationError` (nothing is sent) when a
part's sha256 is in the private set, a registered private text appears inside it, or on-device
detection finds PII in it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from ...policies.config import PolicyConfig
from ...policies.pii import detect_pii
from ..digest import sha256_bytes, sha256_text
from ..errors import PrivacyViolationError
from ..parts import Part

# The cloud embedder prefixes the first text part with a task instruction; the guard must see
# through it, or hashing the sent text would never match a registered private text.
_PREFIX_MARKERS = (" | query: ", " | text: ")
# Shorter private texts are matched by hash only: a two-word private query must not block every
# public text that happens to contain those words.
MIN_SUBSTRING_CHARS = 24


def _candidates(text: str) -> set[str]:
    """The text as sent, plus every tail after a task-prefix marker."""
    out = {text}
    for marker in _PREFIX_MARKERS:
        start = text.find(marker)
        while start != -1:
            out.add(text[start + len(marker) :])
            start = text.find(marker, start + 1)
    return out


class PrivacyGuard:
    """Refuses cloud requests that carry private content. Thread-safe; a callable ``Guard``.

    ``config`` selects the PII detectors (the policy's ``pii`` section). With ``redact_then_send``
    opted in, queries reach the guard already redacted, so detection still applies to them.
    """

    def __init__(self, config: PolicyConfig | None = None, *, check_pii: bool = True) -> None:
        self.config = config or PolicyConfig()
        self.check_pii = check_pii
        self._hashes: set[str] = set()
        self._texts: set[str] = set()
        self._lock = threading.Lock()
        self.refusals = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._hashes)

    def add_text(self, *texts: str | None) -> None:
        """Register private texts: their hashes, and (from ``MIN_SUBSTRING_CHARS`` on) the texts
        themselves for substring search, kept in memory only."""
        with self._lock:
            for t in texts:
                if t and t.strip():
                    self._hashes.add(sha256_text(t))
                    if len(t) >= MIN_SUBSTRING_CHARS:
                        self._texts.add(t)

    def add_part(self, part: Part) -> None:
        """Register a private part: text by content, inline bytes by sha256, references by URI."""
        if part.text_value is not None:
            self.add_text(part.text_value)
        with self._lock:
            if part.data is not None:
                self._hashes.add(sha256_bytes(part.data))
            if part.uri is not None:
                self._hashes.add(sha256_text(part.uri))

    def add_hashes(self, hashes: Iterable[str]) -> None:
        """Register sha256 hex digests of private texts or bytes whose content is not at hand."""
        with self._lock:
            self._hashes.update(h.lower() for h in hashes)

    def is_private(self, part: Part) -> bool:
        """True when ``part`` must not leave the device (the check :meth:`__call__` applies)."""
        return self._problem(part) is not None

    def _problem(self, part: Part) -> str | None:
        with self._lock:
            hashes = self._hashes
            if part.data is not None and sha256_bytes(part.data) in hashes:
                return f"inline {part.mime_type or 'data'} bytes are registered as private"
            if part.uri is not None and sha256_text(part.uri) in hashes:
                return f"file reference {part.uri!r} is registered as private"
            text = part.text_value
            if text is None:
                return None
            if any(sha256_text(c) in hashes for c in _candidates(text)):
                return "a text part is registered as private (sha256 match)"
            if any(private in text for private in self._texts):
                return "a text part contains a registered private text"
        if self.check_pii:
            found = detect_pii(text, self.config)
            if found:
                kinds = ", ".join(sorted({f.kind for f in found}))
                return f"PII/secrets detected in a text part ({kinds})"
        return None

    def __call__(self, contents: Sequence[Sequence[Part]]) -> None:
        """Check every part of every input; raise before anything is sent."""
        for i, content in enumerate(contents):
            for j, part in enumerate(content):
                problem = self._problem(part)
                if problem is not None:
                    with self._lock:
                        self.refusals += 1
                    raise PrivacyViolationError(
                        f"refused to send input {i}, part {j} to the cloud: {problem}. Nothing was sent. "
                        "This is a guard against a routing bug: keep the content on the edge index "
                        "(mark it confidential) or remove the private data."
                    )


__all__ = ["MIN_SUBSTRING_CHARS", "PrivacyGuard", "sha256_bytes", "sha256_text"]
