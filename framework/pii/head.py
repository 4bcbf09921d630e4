"""The PII token-classification head: numpy over EmbeddingGemma's token states, no torch at run time.

Per token: RMS-normalise the concatenated final- and middle-layer states, project to a small hidden
size, add context with a 1-D convolution over neighbouring tokens, and classify into BIO tags of the
entity kinds. Spans are decoded from the tags (a ``B-`` or a kind change starts a span) and scored by
the mean probability of their kind over their tokens; each kind has its own threshold.

The weights (``data/head.npz``) and their manifest (``data/head.json``: training command, data recipe,
seeds, sha256) come from ``scripts/train-pii-head``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ...policies.config import ENTITY_KINDS
from ..errors import ModelIntegrityError

# One list for the policy side and the head: the trained weights' tag order follows it, so a kind
# added there needs a retrained head.
HEAD_KINDS: tuple[str, ...] = ENTITY_KINDS
"""Entity kinds the head tags (:data:`edgeroute.policies.config.ENTITY_KINDS`)."""

TAGS: tuple[str, ...] = ("O", *(f"{p}-{k}" for k in HEAD_KINDS for p in ("B", "I")))


def tag_index(tag: str) -> int:
    return TAGS.index(tag)


@dataclass(frozen=True)
class HeadSpan:
    """A decoded span in token-offset terms: ``[start, end)`` characters of the text, kind and score."""

    kind: str
    start: int
    end: int
    score: float


def _gelu(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.asarray(0.5 * x * (1.0 + np.tanh(0.7978845608 * (x + 0.044715 * x**3))), dtype=np.float32)


class PiiHead:
    """Loaded head weights; :meth:`spans` decodes one text's token states into typed spans."""

    def __init__(self, weights: dict[str, np.ndarray[Any, Any]], manifest: dict[str, Any]) -> None:
        self.w = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}
        self.manifest = manifest
        self.kernel = int(self.w["conv_w"].shape[0])
        self.dims = int(self.w["proj_w"].shape[0])
        if tuple(manifest.get("tags", ())) != TAGS:
            raise ModelIntegrityError(
                "the PII head's tags do not match this edgeroute version; retrain it with scripts/train-pii-head"
            )

    @property
    def thresholds(self) -> dict[str, float]:
        """Per-kind thresholds chosen on the training recipe's dev split (empty when the manifest has none)."""
        raw = self.manifest.get("thresholds") or {}
        return {str(k): float(v) for k, v in raw.items() if k in HEAD_KINDS}

    @property
    def prompts(self) -> tuple[str, ...]:
        """Prompts whose token states the head was trained on (``query``, and ``document`` since the
        head trained on real sentences)."""
        p = (self.manifest.get("features") or {}).get("prompt", "query")
        return (p,) if isinstance(p, str) else tuple(str(x) for x in p)

    @classmethod
    def load(cls, directory: str | Path | None = None) -> PiiHead:
        """Load ``head.npz``/``head.json`` from ``directory`` (default: the weights shipped in the package),
        checking the weights against the manifest's sha256."""
        if directory is None:
            return _shipped()
        path = Path(directory)
        return cls._from_files(path / "head.npz", path / "head.json")

    @classmethod
    def _from_files(cls, npz: Path, meta: Path) -> PiiHead:
        if not npz.is_file() or not meta.is_file():
            raise ModelIntegrityError(
                f"no PII head at {npz.parent} (need head.npz and head.json); train one with scripts/train-pii-head"
            )
        manifest = json.loads(meta.read_text(encoding="utf-8"))
        raw = npz.read_bytes()
        if hashlib.sha256(raw).hexdigest() != manifest.get("sha256"):
            raise ModelIntegrityError(
                f"{npz} does not match the sha256 in {meta.name}: reinstall edgeroute or retrain the head"
            )
        with np.load(npz) as data:
            weights = {k: data[k] for k in data.files}
        return cls(weights, manifest)

    def probabilities(self, states: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Tag probabilities ``(tokens, len(TAGS))`` for one text's token states ``(tokens, dims)``."""
        w = self.w
        x = np.asarray(states, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dims:
            raise ValueError(f"token states must have shape (tokens, {self.dims}), got {x.shape}")
        x = x * (1.0 / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-6)) * w["norm_scale"]
        h = _gelu(x @ w["proj_w"] + w["proj_b"])
        pad = self.kernel // 2
        hp = np.pad(h, ((pad, pad), (0, 0)))
        n = len(h)
        c = np.broadcast_to(w["conv_b"], (n, w["conv_b"].shape[0])).copy()
        for j in range(self.kernel):
            c += hp[j : j + n] @ w["conv_w"][j]
        logits = np.concatenate([h, _gelu(c)], axis=-1) @ w["out_w"] + w["out_b"]
        logits -= logits.max(-1, keepdims=True)
        p = np.exp(logits)
        return np.asarray(p / p.sum(-1, keepdims=True), dtype=np.float32)

    def spans(
        self,
        states: np.ndarray[Any, Any],
        offsets: np.ndarray[Any, Any],
        thresholds: dict[str, float],
        text: str | None = None,
    ) -> list[HeadSpan]:
        """Typed spans whose score reaches the kind's threshold (kinds missing from ``thresholds`` are off).

        With ``text`` (the string the offsets index), tokens are decoded as whole words: the subword
        tokens of one word ("Яро" "пол" "к") share one reading, that of the word's first token (its
        ``B-`` tag carries the decision; later pieces are often unsure), so a span never stops inside a
        word. Scripts written without spaces (CJK, kana) keep one reading per token.
        """
        if len(states) == 0:
            return []
        probs = self.probabilities(states)
        if text is not None:
            firsts, offsets = _words(text, offsets)
            probs = probs[firsts]
        n_kinds = len(HEAD_KINDS)
        # Probability that a token belongs to each kind (B + I), and of being outside any entity.
        kind_p = probs[:, 1:].reshape(len(probs), n_kinds, 2).sum(-1)
        best = kind_p.argmax(-1)
        inside = kind_p.max(-1) > probs[:, 0]
        begins = probs[:, 1::2]
        out: list[HeadSpan] = []
        t = 0
        while t < len(probs):
            if not inside[t]:
                t += 1
                continue
            k = int(best[t])
            end = t + 1
            while (
                end < len(probs)
                and inside[end]
                and int(best[end]) == k
                and begins[end, k] < probs[end, 2 + 2 * k]  # a new B- of the same kind starts a new span
            ):
                end += 1
            kind = HEAD_KINDS[k]
            score = float(kind_p[t:end, k].mean())
            limit = thresholds.get(kind)
            if limit is not None and score >= limit:
                start_char = int(offsets[t][0])
                end_char = int(offsets[end - 1][1])
                out.append(HeadSpan(kind, start_char, end_char, round(score, 4)))
            t = end
        return out


def _joined(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` belong to one word: both alphanumeric, neither from a script written
    without spaces (CJK, kana), where every character boundary may be a word boundary."""
    return a.isalnum() and b.isalnum() and ord(a) < 0x2E80 and ord(b) < 0x2E80


def _words(text: str, offsets: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Group tokens into words: ``(index of each word's first token, each word's (start, end))``.

    A token continues the word before it when no character separates them and the characters on both
    sides of the seam are letters or digits of a spaced script (a token's leading space starts a word).
    """
    firsts: list[int] = []
    spans: list[list[int]] = []
    prev_end = -1
    for t, (a, b) in enumerate(np.asarray(offsets).tolist()):
        a, b = int(a), int(b)
        core = a
        while core < b and text[core].isspace():
            core += 1
        if spans and core == a == prev_end and 0 < a < len(text) and _joined(text[a - 1], text[a]):
            spans[-1][1] = max(spans[-1][1], b)
        else:
            firsts.append(t)
            spans.append([a, b])
        prev_end = b
    return np.asarray(firsts, dtype=np.int64), np.asarray(spans, dtype=np.int64).reshape(-1, 2)


@lru_cache(maxsize=1)
def _shipped() -> PiiHead:
    base = resources.files("edgeroute.framework.pii").joinpath("data")
    return PiiHead._from_files(Path(str(base.joinpath("head.npz"))), Path(str(base.joinpath("head.json"))))


__all__ = ["HEAD_KINDS", "TAGS", "HeadSpan", "PiiHead", "tag_index"]
