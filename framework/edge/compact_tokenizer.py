"""Gemma's SentencePiece BPE tokenizer from a memory-mapped file (``tokenizer.bin``), in pure Python.

Why: ``sentencepiece`` holds Gemma's 262,144-piece model in about 45 MB of heap; this reads the same
pieces from a 6.8 MB file the exporter writes (:mod:`.export.compact_file`), memory-mapped, so only
the pages a text touches become resident (at most the file, plus a word cache of about 0.25 MB), and
it loads in under a millisecond. The ids,
offsets, special-token masks and truncation are those of :class:`.tokenizer.SentencePieceTokenizer`
(and so of ``tokenizer.json``); checked on the parity sample, XQuAD en/de/es/zh and SciFact,
``tests/framework/edge/test_tokenizer.py``.

The algorithm is SentencePiece's ``bpe::Model::SampleEncode`` without dropout, for the model kind the
builder accepts (identity normalizer, spaces escaped to U+2581, no dummy prefix, byte fallback, no
unused pieces): user-defined symbols are matched longest-first and never merged; every other character
is a symbol; the adjacent pair whose concatenation is a piece with the highest score (the leftmost on a
tie) is merged until none is left; a symbol that is no piece becomes its UTF-8 bytes ``<0xNN>``.

Words are tokenized on their own and cached: the text is cut before each U+2581 that follows another
character, which no merge can cross unless a piece holds such a pair (Gemma: one, ``>▁</``; where a
text contains one of them, the cut is not made there). Merges in one part never meet those of
another, so the result is the one of the whole text.

File layout (little-endian): ``EDGEROUTE-TOK\\0\\0\\0``, the header length (uint32), a JSON header,
then 8-byte aligned sections named in the header: ``scores`` float32[n], ``kinds`` uint8[n] (the
SentencePiece piece type, ``| 0x80`` for a piece a word equal to it tokenizes to alone), ``offsets``
uint32[n+1] into ``blob`` (the pieces' UTF-8 bytes) and ``table`` uint32[2^k], an open-addressing hash
table of ``(crc32 >> 18) << 18 | id`` slots (linear probing from ``crc32 & (2^k - 1)``,
``0xFFFFFFFF`` empty).
"""

from __future__ import annotations

import heapq
import json
import mmap
import re
import struct
import sys
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .tokenizer import COMPACT_FILE, Encoded, Encoding

MAGIC = b"EDGEROUTE-TOK\x00\x00\x00"
FORMAT = 1
EMPTY = 0xFFFFFFFF
ID_BITS = 18
ID_MASK = (1 << ID_BITS) - 1
SPACE = "\u2581"
# SentencePiece piece types (sentencepiece_model.proto).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
# What bpe::Model may merge into (ModelInterface::pieces_); the other types are reserved ids.
MERGEABLE = frozenset({NORMAL, USER_DEFINED, UNUSED})
# Set on a piece's type byte when a word that is exactly this piece tokenizes to it alone (the builder
# runs the BPE below on every piece once): such a word needs one lookup instead of the merges.
WHOLE = 0x80
TYPE_MASK = 0x07
CACHE_WORDS = 1024
# A word: optional U+2581 run, then other characters (the crossing pairs are joined afterwards), or a run.
WORD_RE = re.compile("\u2581*[^\u2581]+|\u2581+")


def _utf8_len(ch: str) -> int:
    o = ord(ch)
    return 1 if o < 0x80 else 2 if o < 0x800 else 3 if o < 0x10000 else 4


class CompactTokenizer:
    """The :class:`.tokenizer.TextTokenizer` of a ``tokenizer.bin``; ``kind`` is ``"compact"``."""

    kind = "compact"

    def __init__(self, path: Path, max_tokens: int) -> None:
        with open(path, "rb") as fh:
            self._mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        mm = self._mm
        if mm[: len(MAGIC)] != MAGIC:
            raise ValueError(f"{path} is not a compact tokenizer file")
        (hlen,) = struct.unpack_from("<I", mm, len(MAGIC))
        start = len(MAGIC) + 4
        head: dict[str, Any] = json.loads(bytes(mm[start : start + hlen]).decode("utf-8"))
        if head.get("format") != FORMAT or sys.byteorder != "little":
            raise ValueError(f"{path}: format {head.get('format')} (this code reads {FORMAT}, little-endian)")
        self.header = head
        view = memoryview(mm)
        self._view = view
        sec = head["sections"]
        if any(off + size > len(mm) for off, size in sec.values()):
            raise ValueError(f"{path} is truncated")

        def part(name: str) -> memoryview:
            off, size = sec[name]
            return view[off : off + size]

        self._scores = part("scores").cast("f")
        self._kinds = part("kinds").cast("B")
        self._offsets = part("offsets").cast("I")
        self._table = part("table").cast("I")
        self._blob_at = int(sec["blob"][0])
        self._mask = len(self._table) - 1
        self._max = max_tokens
        self._bos = int(head["bos_id"])
        self._eos = int(head["eos_id"])
        self._unk = int(head["unk_id"])
        self._byte_ids: list[int] = [int(i) for i in head["byte_ids"]]
        # User-defined symbols by first character: the second characters they can have, and their lengths
        # (longest first); a position whose next character is none of those is only tried at length 1.
        self._ud: dict[str, tuple[frozenset[str], tuple[int, ...], bool]] = {
            c: (frozenset(v["second"]), tuple(v["lengths"]), bool(v["single"])) for c, v in head["ud"].items()
        }
        # Pieces holding a character followed by U+2581: a word cut there could split them.
        self._crossing: list[tuple[str, int]] = [(str(p), int(k)) for p, k in head["crossing"]]
        literal: dict[str, int] = {str(p): int(i) for p, i in head["literal"].items()}
        self._literal = literal
        self._literal_re = re.compile("|".join(re.escape(p) for p in sorted(literal, key=len, reverse=True)))
        # word -> its ids followed by their lengths (one tuple: about 250 bytes a word with the key)
        self._cache: dict[str, tuple[int, ...]] = {}
        self._old: dict[str, tuple[int, ...]] = {}
        if EMPTY != 0xFFFFFFFF or ID_BITS != 18:  # the constants inlined in _lookup
            raise AssertionError("EMPTY / ID_BITS changed without _lookup")
        self._find = self._lookup()

    # -- the piece table -------------------------------------------------------------------------
    def piece_id(self, piece: bytes) -> int:
        """The id of ``piece`` (UTF-8 bytes), any type; -1 when it is no piece."""
        return self._find(piece)

    def _lookup(self) -> Callable[[bytes], int]:
        """The table lookup as a closure over the mapped arrays (about 3x faster than a method)."""
        table, offsets, mm, base, mask = self._table, self._offsets, self._mm, self._blob_at, self._mask
        crc32 = zlib.crc32

        def find(piece: bytes) -> int:
            h = crc32(piece)
            tag = h >> 18
            slot = h & mask
            while True:
                v = table[slot]
                if v == 0xFFFFFFFF:
                    return -1
                if v >> 18 == tag:
                    i = v & 0x3FFFF
                    if mm[base + offsets[i] : base + offsets[i + 1]] == piece:
                        return i
                slot = (slot + 1) & mask

        return find

    def piece_size(self) -> int:
        return len(self._scores)

    # -- encoding --------------------------------------------------------------------------------
    def encode_batch(self, texts: list[str], *, offsets: bool = False) -> Sequence[Encoded]:
        out: list[Encoded] = []
        for text in texts:
            ids, lens = self._text(text)
            out.append(self._finish(ids, lens, offsets=offsets))
        return out

    def full_counts(self, texts: list[str]) -> list[int]:
        return [len(self._text(t)[0]) + 2 for t in texts]

    def _text(self, text: str) -> tuple[list[int], list[int]]:
        """Ids of ``text`` (no special tokens) and each token's length in code points (0: not the last
        byte token of its character; a literal control token counts its characters)."""
        ids: list[int] = []
        lens: list[int] = []
        if not self._literal_re.search(text):
            self._segment(text, ids, lens)
            return ids, lens
        start = 0
        for m in self._literal_re.finditer(text):
            self._segment(text[start : m.start()], ids, lens)
            ids.append(self._literal[m.group()])
            lens.append(m.end() - m.start())
            start = m.end()
        self._segment(text[start:], ids, lens)
        return ids, lens

    def _segment(self, segment: str, ids: list[int], lens: list[int]) -> None:
        if not segment:
            return
        norm = segment.replace(" ", SPACE)
        words: list[str] = WORD_RE.findall(norm)
        if self._crossing and len(words) > 1:
            words = self._join_crossing(norm, words)
        cache = self._cache
        for w in words:
            hit = cache.get(w)
            if hit is None:
                hit = self._old.get(w)
                if hit is None:
                    pid = self._find(w.encode("utf-8"))
                    hit = (pid, len(w)) if pid >= 0 and self._kinds[pid] & WHOLE else self._word(w)
                if len(cache) >= CACHE_WORDS // 2:
                    # Two generations: the words of the last one that come back are kept, at most
                    # CACHE_WORDS in all (about 0.25 MB).
                    self._old = cache
                    cache = self._cache = {}
                cache[w] = hit
            half = len(hit) >> 1
            ids += hit[:half]
            lens += hit[half:]

    def _join_crossing(self, norm: str, words: list[str]) -> list[str]:
        """Join the words a crossing piece in ``norm`` would span (a cut inside it is not made)."""
        keep: set[int] = set()
        for piece, k in self._crossing:
            at = norm.find(piece)
            while at >= 0:
                keep.add(at + k)
                at = norm.find(piece, at + 1)
        if not keep:
            return words
        joined: list[str] = []
        pos = 0
        for w in words:
            if joined and pos in keep:
                joined[-1] += w
            else:
                joined.append(w)
            pos += len(w)
        return joined

    def _symbols(self, word: str) -> tuple[list[int], list[int], list[bool]]:
        """The initial symbols as UTF-8 byte starts, code-point counts and frozen flags: user-defined
        symbols (longest match, never merged), else one character each."""
        ud = self._ud
        n = len(word)
        if not any(c in ud for c in set(word)):
            if word.isascii():
                return list(range(n)), [1] * n, [False] * n
            starts = []
            at = 0
            for c in word:
                starts.append(at)
                at += _utf8_len(c)
            return starts, [1] * n, [False] * n
        starts, chars, frozen = [], [], []
        i = at = 0
        while i < n:
            c = word[i]
            spec = ud.get(c)
            step = 0
            if spec is not None:
                seconds, lengths, single = spec
                if i + 1 < n and word[i + 1] in seconds:
                    for length in lengths:
                        if i + length <= n:
                            pid = self._find(word[i : i + length].encode("utf-8"))
                            if pid >= 0 and self._kinds[pid] & TYPE_MASK == USER_DEFINED:
                                step = length
                                break
                if not step and single:
                    pid = self._find(c.encode("utf-8"))
                    step = 1 if pid >= 0 and self._kinds[pid] & TYPE_MASK == USER_DEFINED else 0
            starts.append(at)
            if step:
                chars.append(step)
                frozen.append(True)
                at += len(word[i : i + step].encode("utf-8"))
                i += step
            else:
                chars.append(1)
                frozen.append(False)
                at += _utf8_len(c)
                i += 1
        return starts, chars, frozen

    def _word(self, word: str) -> tuple[int, ...]:
        """BPE on one word: bpe::Model::SampleEncode (alpha 0), then byte fallback. Symbols are byte
        ranges ``[start[i], end[i])`` of the word's UTF-8; a merged-away symbol has ``end == -1``."""
        wb = word.encode("utf-8")
        start, chars, frozen = self._symbols(word)
        n = len(start)
        end = [*start[1:], len(wb)]
        find = self._find
        kinds = self._kinds
        merged = [-1] * n  # the piece id of a symbol made by a merge
        if n > 1:
            scores = self._scores
            agenda: list[tuple[float, int, int, int, int]] = []
            for i in range(n - 1):
                if not (frozen[i] or frozen[i + 1]):
                    pid = find(wb[start[i] : end[i + 1]])
                    if pid >= 0 and kinds[pid] & TYPE_MASK in MERGEABLE:
                        agenda.append((-scores[pid], i, i + 1, end[i + 1] - start[i], pid))
            if agenda:
                heapq.heapify(agenda)
                prev = list(range(-1, n - 1))
                nxt = [*range(1, n), -1]
                pop, push = heapq.heappop, heapq.heappush
                while agenda:
                    _, left, right, size, pid = pop(agenda)
                    if end[left] < 0 or end[right] < 0 or end[right] - start[left] != size:
                        continue  # stale: one side was merged since
                    merged[left] = pid
                    end[left] = end[right]
                    end[right] = -1
                    chars[left] += chars[right]
                    after = nxt[right]
                    nxt[left] = after
                    if after >= 0:
                        prev[after] = left
                    before = prev[left]
                    if before >= 0 and not frozen[before]:
                        pid = find(wb[start[before] : end[left]])
                        if pid >= 0 and kinds[pid] & TYPE_MASK in MERGEABLE:
                            push(agenda, (-scores[pid], before, left, end[left] - start[before], pid))
                    if after >= 0 and not frozen[after]:
                        pid = find(wb[start[left] : end[after]])
                        if pid >= 0 and kinds[pid] & TYPE_MASK in MERGEABLE:
                            push(agenda, (-scores[pid], left, after, end[after] - start[left], pid))
        ids: list[int] = []
        lens: list[int] = []
        for i in range(n):
            if end[i] < 0:
                continue
            pid = merged[i]
            if pid >= 0:
                ids.append(pid)
                lens.append(chars[i])
                continue
            raw = wb[start[i] : end[i]]
            pid = find(raw)
            if pid < 0 or pid == self._unk:
                # Byte fallback: every byte token gets the character's span, as tokenizer.json gives it.
                for byte in raw:
                    ids.append(self._byte_ids[byte])
                    lens.append(0)
                lens[-1] = chars[i]
            else:
                ids.append(pid)
                lens.append(chars[i])
        return (*ids, *lens)

    def _finish(self, ids: list[int], lens: list[int], *, offsets: bool) -> Encoding:
        room = max(self._max - 2, 0)
        cut = len(ids) > room
        body = ids[:room]
        over = (True,) if cut else ()
        if not offsets:
            return Encoding([self._bos, *body, self._eos], [], [], over)
        spans: list[tuple[int, int]] = []
        pos = 0
        pending = 0  # byte tokens waiting for their character's span
        for k in range(len(body)):
            n = lens[k]
            if n == 0:
                pending += 1
                continue
            span = (pos, pos + n)
            spans.extend([span] * (pending + 1))
            pending = 0
            pos += n
        # A character whose byte tokens were cut at the limit: they still get its span.
        if pending:
            k = len(body)
            while lens[k] == 0:
                k += 1
            spans.extend([(pos, pos + lens[k])] * pending)
        m = len(body)
        return Encoding([self._bos, *body, self._eos], [(0, 0), *spans, (0, 0)], [1, *([0] * m), 1], over)

    def clear_cache(self) -> None:
        """Forget the cached words (for measuring the cost of new ones)."""
        self._cache = {}
        self._old = {}

    def close(self) -> None:
        """Release the mapping (the tokenizer is unusable afterwards)."""
        for v in (self._scores, self._kinds, self._offsets, self._table):
            v.release()
        self._view.release()
        self._cache.clear()
        self._old.clear()
        self._mm.close()


__all__ = ["COMPACT_FILE", "CompactTokenizer"]
