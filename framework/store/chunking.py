"""Split long text into overlapping chunks on paragraph and sentence boundaries.

Sizes are counted in *approximate* tokens (:func:`approx_tokens`) so chunking needs no tokenizer
and gives the same chunks for the edge and the cloud index. The defaults:

- ``max_tokens=512``: a typical passage (a SciFact abstract is about 300 tokens) stays one chunk;
  well under EmbeddingGemma's 2048-token limit (attention cost grows with length, and one vector
  for a whole chapter blurs its topics) and Gemini Embedding 2's 8192.
- ``overlap_tokens=64``: about two sentences are repeated at the start of the next chunk, so a
  statement that straddles a boundary is still whole in one chunk.

Boundaries are preferred in this order: paragraph (blank line), sentence end, whitespace, and as a
last resort a hard cut (a run of CJK text without spaces). Every chunk is an exact slice
``text[start:end]`` of the input.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..errors import InputError

DEFAULT_MAX_TOKENS = 512
DEFAULT_OVERLAP_TOKENS = 64

_PIECE = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_PARAGRAPH = re.compile(r"\S(?:.*?\S)?(?=\s*\n\s*\n|\s*\Z)", re.DOTALL)
_SENTENCE = re.compile(r"\S.*?(?:[.!?。！？](?=\s|\Z)|[。！？]|\Z)", re.DOTALL)
_WORD = re.compile(r"\S+")


def _is_wide(ch: str) -> bool:
    # CJK, kana, hangul: SentencePiece models give them about one token per character.
    return ord(ch) >= 0x2E80


def approx_tokens(text: str) -> int:
    """A tokenizer-free estimate, on the high side: one per punctuation mark, one per CJK character,
    and ``ceil(len / 4)`` per word of other scripts (English averages about 4 characters a token)."""
    total = 0
    for piece in _PIECE.findall(text):
        wide = sum(1 for ch in piece if _is_wide(ch))
        total += wide + math.ceil((len(piece) - wide) / 4)
    return total


@dataclass(frozen=True, slots=True)
class Chunk:
    """One chunk: ``text == source[start:end]``; ``index`` counts from 0."""

    text: str
    index: int
    start: int
    end: int
    tokens: int


@dataclass(frozen=True, slots=True)
class _Unit:
    start: int
    end: int
    tokens: int
    para: int  # which paragraph it belongs to


def _spans(pattern: re.Pattern[str], text: str, start: int, end: int) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in pattern.finditer(text, start, end) if m.end() > m.start()]


def _units(text: str, max_tokens: int) -> list[_Unit]:
    """Break text into pieces of at most ``max_tokens``, as coarse as possible."""
    out: list[_Unit] = []
    for para, (ps, pe) in enumerate(_spans(_PARAGRAPH, text, 0, len(text))):
        for ss, se in _spans(_SENTENCE, text, ps, pe):
            sent = text[ss:se].strip()
            ss = ss + (len(text[ss:se]) - len(text[ss:se].lstrip()))
            se = ss + len(sent)
            if not sent:
                continue
            n = approx_tokens(sent)
            if n <= max_tokens:
                out.append(_Unit(ss, se, n, para))
                continue
            for ws, we in _spans(_WORD, text, ss, se):
                w = text[ws:we]
                n = approx_tokens(w)
                if n <= max_tokens:
                    out.append(_Unit(ws, we, n, para))
                    continue
                # One "word" over the budget (unspaced CJK, a base64 blob): hard cuts, costed per
                # character (linear time) with a 10% margin for the per-word rounding up.
                pos, cost = ws, 0.0
                for c in range(ws, we):
                    ch = text[c]
                    step = 1.0 if _is_wide(ch) or not (ch.isalnum() or ch == "_") else 0.25
                    if cost + step > 0.9 * max_tokens and c > pos:
                        out.append(_Unit(pos, c, approx_tokens(text[pos:c]), para))
                        pos, cost = c, 0.0
                    cost += step
                out.append(_Unit(pos, we, approx_tokens(text[pos:we]), para))
    return out


def chunk_text(
    text: str, *, max_tokens: int = DEFAULT_MAX_TOKENS, overlap_tokens: int = DEFAULT_OVERLAP_TOKENS
) -> list[Chunk]:
    """Chunks of at most about ``max_tokens`` approximate tokens, consecutive ones sharing up to
    ``overlap_tokens`` of whole sentences. Text that fits is returned as one chunk; blank text as none."""
    if not isinstance(text, str):
        raise InputError(f"text must be a string, got {type(text).__name__}")
    if not isinstance(max_tokens, int) or max_tokens < 16:
        raise InputError(f"max_tokens must be an integer of at least 16, got {max_tokens!r}")
    if not isinstance(overlap_tokens, int) or not 0 <= overlap_tokens < max_tokens // 2:
        raise InputError(
            f"overlap_tokens must be between 0 and {max_tokens // 2 - 1} (under half of max_tokens), "
            f"got {overlap_tokens!r}"
        )
    units = _units(text, max_tokens)
    chunks: list[Chunk] = []
    i = 0
    while i < len(units):
        j, used = i, 0
        while j < len(units) and used + units[j].tokens <= max_tokens:
            # Prefer to end at a paragraph break once the chunk is half full and the next paragraph
            # would not fit whole.
            if j > i and units[j].para != units[j - 1].para and used >= max_tokens // 2:
                para_tokens = sum(u.tokens for u in units[j:] if u.para == units[j].para)
                if used + para_tokens > max_tokens:
                    break
            used += units[j].tokens
            j += 1
        start, end = units[i].start, units[j - 1].end
        chunks.append(Chunk(text[start:end], len(chunks), start, end, used))
        if j >= len(units):
            break
        # Step back over whole trailing units for the overlap, but always move forward.
        back, k = 0, j
        while k - 1 > i and back + units[k - 1].tokens <= overlap_tokens:
            k -= 1
            back += units[k].tokens
        i = k
    return chunks


__all__ = ["DEFAULT_MAX_TOKENS", "DEFAULT_OVERLAP_TOKENS", "Chunk", "approx_tokens", "chunk_text"]
