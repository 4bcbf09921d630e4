"""Text to token ids for the edge model, the smallest tokenizer the model directory allows: the compact
form ``tokenizer.bin`` (:mod:`.compact_tokenizer`, memory-mapped, about 7 MB resident at most), else
SentencePiece on ``tokenizer.model`` (about 46 MB), else Hugging Face ``tokenizers`` on ``tokenizer.json``.

Why three: parsing Gemma's 33 MB ``tokenizer.json`` with ``tokenizers`` peaks about 354 MB above the
process's base and keeps about 94 MB after ``malloc_trim``, more than the rest of a query process
together. The checkpoint's own ``tokenizer.model`` (4.7 MB) loads with ``sentencepiece`` in 0.4 s and
holds about 46 MB, peak included. ``tokenizer.bin`` holds the same 262,144 pieces in a 6.8 MB file
written from ``tokenizer.model`` at export, read memory-mapped (resident: the pages a text touches, at
most the file) and loaded in milliseconds; it re-implements SentencePiece's BPE, so it gives the same
ids, offsets and masks as the class below (checked on 24,038 texts). The ids are the same: SentencePiece is what ``tokenizer.json`` was
converted from. Two differences of the converted tokenizer are reproduced here so that ids, offsets and
special-token masks stay identical (checked on the parity sample, XQuAD en/de/es/zh and SciFact, 24,048
texts; ``tests/framework/edge/test_tokenizer.py``):

- ``tokenizers`` matches the control tokens (``<pad>``, ``<eos>``, ``<bos>``, ``<unk>``) when they
  appear literally in a text; SentencePiece spells them out. The text is split on them first.
- For a character encoded as several byte-fallback tokens, ``tokenizers`` gives every byte token the
  character's span; SentencePiece gives the last one the span and the others an empty one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

logger = logging.getLogger(__name__)

SENTENCEPIECE_FILE = "tokenizer.model"
COMPACT_FILE = "tokenizer.bin"
BOS_ID = 2
EOS_ID = 1


class Encoded(Protocol):
    """What the embedder reads of one text's tokens (``tokenizers.Encoding`` satisfies it)."""

    @property
    def ids(self) -> list[int]: ...

    @property
    def offsets(self) -> list[tuple[int, int]]: ...

    @property
    def special_tokens_mask(self) -> list[int]: ...

    @property
    def overflowing(self) -> Sequence[Any]: ...


class TextTokenizer(Protocol):
    """``encode_batch``: one :class:`Encoded` per text, ``<bos>`` + tokens + ``<eos>``, cut at max tokens."""

    kind: str

    def encode_batch(self, texts: list[str], *, offsets: bool = False) -> Sequence[Encoded]: ...

    def full_counts(self, texts: list[str]) -> list[int]:
        """Each text's token count before truncation, ``<bos>`` and ``<eos>`` included."""
        ...


@dataclass(frozen=True, slots=True)
class Encoding:
    """One text's tokens. ``offsets`` (code points, ``[start, end)``) and the mask are empty unless asked."""

    ids: list[int]
    offsets: list[tuple[int, int]]
    special_tokens_mask: list[int]
    overflowing: tuple[bool, ...]


class HFTokenizer:
    """``tokenizers`` on ``tokenizer.json`` (any model directory; the only choice for non-Gemma ones)."""

    kind = "tokenizers"

    def __init__(self, path: Path, max_tokens: int) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(path))
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=max_tokens)

    def encode_batch(self, texts: list[str], *, offsets: bool = False) -> Sequence[Encoded]:
        return self._tok.encode_batch(texts)

    def full_counts(self, texts: list[str]) -> list[int]:
        out = []
        for enc in self._tok.encode_batch(texts):
            # The overflowing windows repeat the special tokens; count only their text tokens.
            rest = sum(len(o.ids) - sum(o.special_tokens_mask) for o in enc.overflowing)
            out.append(len(enc.ids) + rest)
        return out


class SentencePieceTokenizer:
    """``sentencepiece`` on ``tokenizer.model``, giving the ids, offsets and masks of ``tokenizer.json``."""

    kind = "sentencepiece"

    def __init__(self, path: Path, max_tokens: int) -> None:
        import sentencepiece as spm

        self._sp = spm.SentencePieceProcessor(model_file=str(path))
        self._max = max_tokens
        # The tokens tokenizer.json matches inside a text that SentencePiece does not: control + unknown.
        literal = {
            self._sp.id_to_piece(i): i
            for i in range(self._sp.get_piece_size())
            if self._sp.is_control(i) or self._sp.is_unknown(i)
        }
        self._literal = literal
        self._literal_re = re.compile("|".join(re.escape(p) for p in sorted(literal, key=len, reverse=True)))
        self._bos = self._sp.bos_id() if self._sp.bos_id() >= 0 else BOS_ID
        self._eos = self._sp.eos_id() if self._sp.eos_id() >= 0 else EOS_ID

    def encode_batch(self, texts: list[str], *, offsets: bool = False) -> Sequence[Encoded]:
        out: list[Encoding | None] = [None] * len(texts)
        # One batched call for the texts without a literal control token (nearly all of them).
        plain = [i for i, t in enumerate(texts) if not self._literal_re.search(t)]
        if plain:
            batch = [texts[i] for i in plain]
            if offsets:
                for i, res in zip(plain, self._sp.encode(batch, return_type="offset_mapping"), strict=True):
                    ids = list(res["ids"])
                    out[i] = self._finish(ids, self._byte_spans(ids, list(res["offsets"])), offsets=True)
            else:
                for i, ids in zip(plain, self._sp.encode(batch), strict=True):
                    out[i] = self._finish(ids, [], offsets=False)
        for i, enc in enumerate(out):
            if enc is None:
                out[i] = self._finish(*self._with_literals(texts[i]), offsets=offsets)
        return [e for e in out if e is not None]

    def full_counts(self, texts: list[str]) -> list[int]:
        out = []
        for text in texts:
            ids = self._with_literals(text)[0] if self._literal_re.search(text) else self._sp.encode(text)
            out.append(len(ids) + 2)
        return out

    def _with_literals(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Ids and code-point spans of ``text`` (no special tokens), literal control tokens matched."""
        ids: list[int] = []
        spans: list[tuple[int, int]] = []
        start = 0
        for m in self._literal_re.finditer(text):
            self._segment(text[start : m.start()], start, ids, spans)
            ids.append(self._literal[m.group()])
            spans.append((m.start(), m.end()))
            start = m.end()
        self._segment(text[start:], start, ids, spans)
        return ids, spans

    def _segment(self, segment: str, base: int, ids: list[int], spans: list[tuple[int, int]]) -> None:
        if not segment:
            return
        res = self._sp.encode(segment, return_type="offset_mapping")
        seg_ids = list(res["ids"])
        seg_spans = self._byte_spans(seg_ids, [(s + base, e + base) for s, e in res["offsets"]])
        ids.extend(seg_ids)
        spans.extend(seg_spans)

    def _byte_spans(self, ids: list[int], spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Byte-fallback tokens of one character all get the character's span, as tokenizers gives them."""
        for k in range(len(ids) - 2, -1, -1):
            s, e = spans[k]
            if s == e and self._sp.is_byte(ids[k]):
                spans[k] = spans[k + 1]
        return spans

    def _finish(self, ids: list[int], spans: list[tuple[int, int]], *, offsets: bool) -> Encoding:
        room = max(self._max - 2, 0)
        cut = len(ids) > room
        body = ids[:room]
        if not offsets:
            return Encoding([self._bos, *body, self._eos], [], [], (True,) if cut else ())
        n = len(body)
        return Encoding(
            [self._bos, *body, self._eos],
            [(0, 0), *spans[:n], (0, 0)],
            [1, *([0] * n), 1],
            (True,) if cut else (),
        )


def load_tokenizer(
    model_dir: Path,
    tokenizer_json: Path,
    max_tokens: int,
    *,
    prefer_sentencepiece: bool = True,
    prefer_compact: bool = False,
    compact_source: str | None = None,
) -> TextTokenizer:
    """The compact tokenizer when ``prefer_compact`` and ``model_dir`` holds ``tokenizer.bin`` (written
    from the ``tokenizer.model`` whose sha256 is ``compact_source``, when given); SentencePiece when
    ``prefer_sentencepiece``, ``model_dir`` holds ``tokenizer.model`` and the package is installed; else
    ``tokenizers`` on ``tokenizer.json`` (model directories exported before either file was written
    still load, with the larger tokenizer)."""
    compact = model_dir / COMPACT_FILE
    if prefer_compact and compact.is_file():
        from .compact_tokenizer import CompactTokenizer

        tok = CompactTokenizer(compact, max_tokens)
        source = str((tok.header.get("source") or {}).get("sha256", ""))
        if compact_source is None or source == compact_source:
            return tok
        tok.close()
        logger.warning(
            "%s was written from another %s (sha256 %s..., the directory's is %s...); not used",
            compact,
            SENTENCEPIECE_FILE,
            source[:12],
            compact_source[:12],
        )
    sp_file = model_dir / SENTENCEPIECE_FILE
    if prefer_sentencepiece and sp_file.is_file():
        try:
            import sentencepiece  # noqa: F401
        except ImportError:
            pass
        else:
            return SentencePieceTokenizer(sp_file, max_tokens)
    return HFTokenizer(tokenizer_json, max_tokens)


__all__ = [
    "COMPACT_FILE",
    "SENTENCEPIECE_FILE",
    "Encoded",
    "Encoding",
    "HFTokenizer",
    "SentencePieceTokenizer",
    "TextTokenizer",
    "load_tokenizer",
]
