"""Write ``tokenizer.bin``, the compact form of a directory's ``tokenizer.model``, once it is shown to
tokenize exactly like it.

The embedder then tokenizes with :class:`..compact_tokenizer.CompactTokenizer`: a memory-mapped ~7 MB
file instead of SentencePiece's ~45 MB of heap. The ModelProto is read here with a small protobuf
wire-format reader (no ``protobuf`` import); a model this format cannot reproduce (another normalizer,
a dummy prefix, no byte fallback, unused pieces, not BPE) is refused, and the directory keeps
``tokenizer.model``. The exporter calls :func:`write_if_identical`; a directory exported before is
upgraded in place (seconds, no re-export, embeddings unchanged) with::

    python -m edgeroute.framework.edge.export.compact_file MODEL_DIR
"""

from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...digest import sha256_file
from ...errors import ModelIntegrityError
from ..compact_tokenizer import (
    BYTE,
    COMPACT_FILE,
    CONTROL,
    EMPTY,
    FORMAT,
    ID_BITS,
    MAGIC,
    MERGEABLE,
    NORMAL,
    SPACE,
    UNKNOWN,
    UNUSED,
    USER_DEFINED,
    WHOLE,
    CompactTokenizer,
)
from ..model_dir import TOKENIZER_FILE, Manifest, ModelDirectory, write_manifest
from ..tokenizer import SENTENCEPIECE_FILE, HFTokenizer, SentencePieceTokenizer
from .sentencepiece_file import CHECK_SAMPLE

logger = logging.getLogger(__name__)

TABLE_BITS = 19  # 524,288 slots for Gemma's 262,144 pieces: half full


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of one message: an int, a ``(start, end)`` span, or raw bytes."""
    i = start
    while i < end:
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
            yield field, wire, value
        elif wire == 2:
            n, i = _varint(buf, i)
            yield field, wire, (i, i + n)
            i += n
        elif wire == 5:
            yield field, wire, buf[i : i + 4]
            i += 4
        elif wire == 1:
            yield field, wire, buf[i : i + 8]
            i += 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def _int32(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


@dataclass
class SentencePieceModel:
    """What the compact form needs of a ModelProto (field numbers of sentencepiece_model.proto)."""

    pieces: list[str]
    scores: list[float]
    kinds: list[int]
    spec: dict[str, Any]

    @classmethod
    def parse(cls, data: bytes) -> SentencePieceModel:
        pieces: list[str] = []
        scores: list[float] = []
        kinds: list[int] = []
        # The proto2 defaults of the fields read below.
        spec: dict[str, Any] = {
            "model_type": 1,
            "treat_whitespace_as_suffix": False,
            "byte_fallback": False,
            "unk_id": 0,
            "bos_id": 1,
            "eos_id": 2,
            "precompiled_charsmap": b"",
            "normalization_rule_tsv": "",
            "add_dummy_prefix": True,
            "remove_extra_whitespaces": True,
            "escape_whitespaces": True,
        }
        trainer = {3: "model_type", 24: "treat_whitespace_as_suffix", 35: "byte_fallback", 40: "unk_id"}
        trainer |= {41: "bos_id", 42: "eos_id"}
        normalizer = {2: "precompiled_charsmap", 6: "normalization_rule_tsv", 3: "add_dummy_prefix"}
        normalizer |= {4: "remove_extra_whitespaces", 5: "escape_whitespaces"}
        for field, wire, value in _fields(data, 0, len(data)):
            if field == 1 and wire == 2:
                piece, score, kind = "", 0.0, NORMAL
                for f, w, v in _fields(data, *value):
                    if f == 1 and w == 2:
                        piece = data[v[0] : v[1]].decode("utf-8")
                    elif f == 2 and w == 5:
                        score = struct.unpack("<f", v)[0]
                    elif f == 3 and w == 0:
                        kind = v
                pieces.append(piece)
                scores.append(score)
                kinds.append(kind)
            elif field in (2, 3) and wire == 2:
                names = trainer if field == 2 else normalizer
                for f, w, v in _fields(data, *value):
                    if f in names:
                        key = names[f]
                        if w == 0:
                            spec[key] = _int32(v) if key.endswith("_id") or key == "model_type" else bool(v)
                        elif w == 2:
                            raw = data[v[0] : v[1]]
                            spec[key] = raw if key == "precompiled_charsmap" else raw.decode("utf-8")
        return cls(pieces, scores, kinds, spec)

    def unsupported(self) -> list[str]:
        """Why the compact tokenizer would not reproduce this model (empty: it does)."""
        s = self.spec
        why = []
        if s["model_type"] != 2:
            why.append(f"model_type {s['model_type']} is not BPE (2)")
        if s["precompiled_charsmap"] or s["normalization_rule_tsv"]:
            why.append("a normalization rule (only the identity normalizer is reproduced)")
        for key, want in (
            ("add_dummy_prefix", False),
            ("remove_extra_whitespaces", False),
            ("escape_whitespaces", True),
            ("treat_whitespace_as_suffix", False),
            ("byte_fallback", True),
        ):
            if s[key] != want:
                why.append(f"{key} is {s[key]}, not {want}")
        if UNUSED in self.kinds:
            why.append("unused pieces (their resegmentation is not reproduced)")
        if len(set(self.pieces)) != len(self.pieces) or "" in self.pieces:
            why.append("duplicate or empty pieces")
        if len(self.pieces) > 1 << ID_BITS:
            why.append(f"{len(self.pieces)} pieces (at most {1 << ID_BITS})")
        if [p for p, k in zip(self.pieces, self.kinds, strict=True) if k == BYTE] != [
            f"<0x{b:02X}>" for b in range(256)
        ]:
            why.append("not the 256 byte pieces <0x00>..<0xFF> in order")
        if self.kinds.count(UNKNOWN) != 1:
            why.append("not exactly one unknown piece")
        return why


def build(sp_file: Path, out: Path) -> None:
    """Write the compact form of ``sp_file`` to ``out``; ValueError when the model is not supported."""
    data = sp_file.read_bytes()
    model = SentencePieceModel.parse(data)
    why = model.unsupported()
    if why:
        raise ValueError(f"{sp_file}: the compact tokenizer does not reproduce this model: {'; '.join(why)}")
    n = len(model.pieces)
    raw = [p.encode("utf-8") for p in model.pieces]
    offsets = array("I", [0])
    for r in raw:
        offsets.append(offsets[-1] + len(r))
    size = 1 << TABLE_BITS
    table = array("I", [EMPTY]) * size
    for i, r in enumerate(raw):
        h = zlib.crc32(r)
        slot = h & (size - 1)
        while table[slot] != EMPTY:
            slot = (slot + 1) & (size - 1)
        table[slot] = (h >> ID_BITS) << ID_BITS | i
    ud: dict[str, dict[str, Any]] = {}
    for p, k in zip(model.pieces, model.kinds, strict=True):
        if k == USER_DEFINED:
            e = ud.setdefault(p[0], {"second": set(), "lengths": set(), "single": False})
            if len(p) == 1:
                e["single"] = True
            else:
                e["second"].add(p[1])
                e["lengths"].add(len(p))
    crossing = [
        [p, k]
        for p, kind in zip(model.pieces, model.kinds, strict=True)
        if kind in MERGEABLE
        for k in range(1, len(p))
        if p[k] == SPACE and p[k - 1] != SPACE
    ]
    sections: list[tuple[str, bytes]] = [
        ("scores", array("f", model.scores).tobytes()),
        ("kinds", bytes(model.kinds)),
        ("offsets", offsets.tobytes()),
        ("blob", b"".join(raw)),
        ("table", table.tobytes()),
    ]
    head: dict[str, Any] = {
        "format": FORMAT,
        "source": {"file": sp_file.name, "sha256": sha256_file(sp_file)},
        "pieces": n,
        "bos_id": model.spec["bos_id"],
        "eos_id": model.spec["eos_id"],
        "unk_id": model.spec["unk_id"],
        "byte_ids": [i for i, k in enumerate(model.kinds) if k == BYTE],
        "literal": {
            p: i
            for i, (p, k) in enumerate(zip(model.pieces, model.kinds, strict=True))
            if k in (CONTROL, UNKNOWN)
        },
        "ud": {
            c: {
                "second": sorted(e["second"]),
                "lengths": sorted(e["lengths"], reverse=True),
                "single": e["single"],
            }
            for c, e in sorted(ud.items())
        },
        "crossing": crossing,
        "table_bits": TABLE_BITS,
    }
    start = 0
    header = b""
    for _ in range(4):  # the offsets depend on the header's length: settle it
        header = json.dumps({**head, "sections": _layout(sections, start)}, ensure_ascii=False).encode(
            "utf-8"
        )
        new_start = _align(len(MAGIC) + 4 + len(header))
        if new_start == start:
            break
        start = new_start
    if _align(len(MAGIC) + 4 + len(header)) != start:
        raise RuntimeError("the header's length did not settle")
    blob = MAGIC + struct.pack("<I", len(header)) + header
    parts = [blob]
    at = len(blob)
    for _, payload in sections:
        pad = _align(at) - at
        parts.append(b"\x00" * pad)
        parts.append(payload)
        at += pad + len(payload)
    out.write_bytes(b"".join(parts))
    _flag_whole_pieces(out, model)


def _flag_whole_pieces(out: Path, model: SentencePieceModel) -> None:
    """Mark, in the written file, each piece that a word equal to it tokenizes to alone (the runtime's
    own BPE decides, so the flag is that word's cached result)."""
    tok = CompactTokenizer(out, 1 << 30)
    try:
        kinds = bytearray(model.kinds)
        for i, (p, k) in enumerate(zip(model.pieces, model.kinds, strict=True)):
            if k in MERGEABLE and tok._word(p) == (i, len(p)):
                kinds[i] |= WHOLE
        at = int(tok.header["sections"]["kinds"][0])
    finally:
        tok.close()
    with out.open("r+b") as fh:
        fh.seek(at)
        fh.write(bytes(kinds))


def _align(n: int) -> int:
    return (n + 7) // 8 * 8


def _layout(sections: list[tuple[str, bytes]], start: int) -> dict[str, list[int]]:
    out = {}
    at = start
    for name, payload in sections:
        at = _align(at)
        out[name] = [at, len(payload)]
        at += len(payload)
    return out


def compare(
    compact_file: Path,
    sp_file: Path,
    texts: Sequence[str],
    max_tokens: int = 2048,
    tokenizer_json: Path | None = None,
) -> list[str]:
    """The texts whose ids, offsets, special-token mask, truncation or full count differ between the
    compact tokenizer and SentencePiece (and ``tokenizer.json``, when given)."""
    ours = CompactTokenizer(compact_file, max_tokens)
    refs: list[Any] = [SentencePieceTokenizer(sp_file, max_tokens)]
    if tokenizer_json is not None:
        refs.append(HFTokenizer(tokenizer_json, max_tokens))
    items = list(texts)
    plain = ours.encode_batch(items)
    full = ours.encode_batch(items, offsets=True)
    counts = ours.full_counts(items)
    bad: set[int] = set()
    for ref in refs:
        for i, (a, b, c, n, m) in enumerate(
            zip(
                ref.encode_batch(items, offsets=True),
                plain,
                full,
                ref.full_counts(items),
                counts,
                strict=True,
            )
        ):
            same = (
                list(a.ids) == b.ids == c.ids
                and [tuple(o) for o in a.offsets] == c.offsets
                and list(a.special_tokens_mask) == c.special_tokens_mask
                and bool(a.overflowing) == bool(b.overflowing) == bool(c.overflowing)
                and n == m
            )
            if not same:
                bad.add(i)
    ours.close()
    return [items[i] for i in sorted(bad)]


def write_if_identical(out_dir: Path, max_tokens: int = 2048) -> bool:
    """Write ``out_dir/tokenizer.bin`` from ``out_dir/tokenizer.model`` when it tokenizes
    :data:`CHECK_SAMPLE` exactly like it (and like ``tokenizer.json``); False, nothing written, when
    ``tokenizer.model`` is absent, ``sentencepiece`` is not installed, the model is not supported or a
    text differs."""
    sp_file = out_dir / SENTENCEPIECE_FILE
    if not sp_file.is_file():
        return False
    try:
        import sentencepiece  # noqa: F401
    except ImportError:
        logger.warning(
            "sentencepiece is not installed: %s not written (tokenizer.model is used)", COMPACT_FILE
        )
        return False
    tmp = out_dir / (COMPACT_FILE + ".tmp")
    try:
        build(sp_file, tmp)
    except ValueError as exc:
        logger.warning("%s; %s not written", exc, COMPACT_FILE)
        return False
    prompts = ("task: search result | query: ", "title: none | text: ")
    sample = [*CHECK_SAMPLE, *(p + t for p in prompts for t in CHECK_SAMPLE), "glaciers retreat " * 1500]
    hf = out_dir / TOKENIZER_FILE
    bad = compare(tmp, sp_file, sample, max_tokens, hf if hf.is_file() else None)
    if bad:
        tmp.unlink()
        logger.warning(
            "%s tokenizes %d sample text(s) differently (first: %r); not written",
            COMPACT_FILE,
            len(bad),
            bad[0][:60],
        )
        return False
    os.replace(tmp, out_dir / COMPACT_FILE)
    return True


def add_compact(model_dir: str | os.PathLike[str]) -> Manifest:
    """Upgrade an exported directory in place: add ``tokenizer.bin`` and re-hash the manifest.

    Needs the directory's ``tokenizer.model`` (pinned by its manifest: add it first with
    ``python -m edgeroute.framework.edge.export.sentencepiece_file``).
    """
    directory = ModelDirectory.open(model_dir, verify=True)
    if SENTENCEPIECE_FILE not in directory.manifest.files:
        raise ModelIntegrityError(
            f"{directory.path} has no {SENTENCEPIECE_FILE} in its manifest; add it first "
            "(python -m edgeroute.framework.edge.export.sentencepiece_file MODEL_DIR CHECKPOINT_DIR)."
        )
    if not write_if_identical(directory.path, directory.manifest.max_tokens):
        raise ModelIntegrityError(
            f"{COMPACT_FILE} was not written for {directory.path} (sentencepiece missing, the model not "
            "supported, or different tokens; see the log); the directory is left as it was."
        )
    return write_manifest(directory.path, directory.manifest)


def main(argv: list[str] | None = None) -> None:
    """``python -m edgeroute.framework.edge.export.compact_file MODEL_DIR``."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m edgeroute.framework.edge.export.compact_file MODEL_DIR")
    logging.basicConfig(level=logging.WARNING)
    add_compact(args[0])
    print(f"{args[0]}: {COMPACT_FILE} added")


if __name__ == "__main__":
    main()


__all__ = ["SentencePieceModel", "add_compact", "build", "compare", "write_if_identical"]
