"""Put the checkpoint's ``tokenizer.model`` into a model directory, once it is shown to tokenize like
``tokenizer.json``.

The embedder then tokenizes with SentencePiece (about 46 MB) instead of parsing ``tokenizer.json``
(peak about 354 MB above the process's base): :mod:`edgeroute.framework.edge.tokenizer`. The exporter
calls :func:`copy_if_identical`; a directory exported before that is upgraded in place (seconds, no
re-export, embeddings unchanged) with::

    python -m edgeroute.framework.edge.export.sentencepiece_file MODEL_DIR CHECKPOINT_DIR
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from ...digest import sha256_file
from ...errors import InputError, ModelIntegrityError
from ..model_dir import TOKENIZER_FILE, Manifest, ModelDirectory, write_manifest
from ..tokenizer import SENTENCEPIECE_FILE, HFTokenizer, SentencePieceTokenizer

logger = logging.getLogger(__name__)

# Texts that exercise what differs between the two tokenizers' code paths: prompts, several scripts,
# byte fallback (characters outside the vocabulary), runs of whitespace, literal special tokens.
CHECK_SAMPLE: tuple[str, ...] = (
    "task: search result | query: what causes dehydration?",
    "title: none | text: Dehydration occurs when you use or lose more fluid than you take in.",
    "title: Glaciers | text: Glaciers store about 69% of the world's fresh water.",
    "¿Cuál es la capital de Australia? Canberra, no Sídney.",
    "Die Photosynthese wandelt Lichtenergie in chemische Energie um und setzt Sauerstoff frei.",
    "东京是日本的首都，拥有世界上最大的都市圈之一。",
    "東京は日本の首都であり、世界最大級の都市圏を持つ。",
    "Москва — столица России. Ελληνικά: Αθήνα. עברית: ירושלים. العربية: القاهرة",
    "emoji 😀👍🏽 🤖🤖 and rare symbols \u2153 \u2e3b \U0001d54f \u0f3a",
    "  leading and trailing  \tTab\r\nnew\n\nlines   ",
    "30\u00a0% non-breaking, e\u0301 combining, \u200bzero width, Ａｂｃ full width",
    "literal <bos> and <eos>, <pad><unk>, <start_of_turn>user<end_of_turn> <mask> [multimodal]",
    "def f(x):\n    return {'a': [1, 2, 3]}  # code\n",
    "Call +1 (555) 010-2030 or mail jane.doe@example.com; IBAN DE89 3704 0044 0532 0130 00.",
)


def compare_tokenizers(
    sp_file: Path, tokenizer_json: Path, texts: Sequence[str], max_tokens: int = 2048
) -> list[str]:
    """The texts whose ids, offsets, special-token mask or truncation differ between the two files."""
    sp = SentencePieceTokenizer(sp_file, max_tokens)
    hf = HFTokenizer(tokenizer_json, max_tokens)
    items = list(texts)
    bad: list[str] = []
    for text, a, b, c in zip(
        items,
        hf.encode_batch(items),
        sp.encode_batch(items),
        sp.encode_batch(items, offsets=True),
        strict=True,
    ):
        same = (
            a.ids == b.ids == c.ids
            and list(a.offsets) == c.offsets
            and list(a.special_tokens_mask) == c.special_tokens_mask
            and bool(a.overflowing) == bool(b.overflowing) == bool(c.overflowing)
        )
        if not same:
            bad.append(text)
    return bad


def copy_if_identical(checkpoint: Path, out_dir: Path, max_tokens: int = 2048) -> bool:
    """Copy ``checkpoint/tokenizer.model`` into ``out_dir`` when it tokenizes :data:`CHECK_SAMPLE` exactly
    like ``out_dir/tokenizer.json``; False (and nothing copied) when it is absent, differs, or
    ``sentencepiece`` is not installed."""
    src = checkpoint / SENTENCEPIECE_FILE
    if not src.is_file():
        return False
    try:
        import sentencepiece  # noqa: F401
    except ImportError:
        logger.warning("sentencepiece is not installed: %s not copied (the larger tokenizer is used)", src)
        return False
    bad = compare_tokenizers(src, out_dir / TOKENIZER_FILE, CHECK_SAMPLE, max_tokens)
    if bad:
        logger.warning(
            "%s tokenizes %d sample text(s) differently from %s (first: %r); not copied",
            src,
            len(bad),
            TOKENIZER_FILE,
            bad[0][:60],
        )
        return False
    shutil.copy2(src, out_dir / SENTENCEPIECE_FILE)
    return True


def add_sentencepiece(model_dir: str | os.PathLike[str], checkpoint: str | os.PathLike[str]) -> Manifest:
    """Upgrade an exported directory in place: add ``tokenizer.model`` and re-hash the manifest.

    Refuses when the checkpoint's ``tokenizer.json`` is not the directory's (another model) or the two
    tokenizers disagree on :data:`CHECK_SAMPLE`.
    """
    directory = ModelDirectory.open(model_dir, verify=True)
    ckpt = Path(checkpoint).expanduser()
    ckpt_json = ckpt / TOKENIZER_FILE
    if not ckpt_json.is_file() or sha256_file(ckpt_json) != directory.manifest.files.get(TOKENIZER_FILE):
        raise InputError(
            f"{ckpt} is not the checkpoint {directory.path} was exported from (its {TOKENIZER_FILE} differs "
            "or is missing); pass the checkpoint the model came from."
        )
    if not copy_if_identical(ckpt, directory.path, directory.manifest.max_tokens):
        raise ModelIntegrityError(
            f"{ckpt / SENTENCEPIECE_FILE} is missing, sentencepiece is not installed, or it tokenizes "
            f"differently from {TOKENIZER_FILE}; the directory is left as it was (it keeps working)."
        )
    return write_manifest(directory.path, directory.manifest)


def main(argv: list[str] | None = None) -> None:
    """``python -m edgeroute.framework.edge.export.sentencepiece_file MODEL_DIR CHECKPOINT_DIR``."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        raise SystemExit(
            "usage: python -m edgeroute.framework.edge.export.sentencepiece_file MODEL_DIR CHECKPOINT"
        )
    add_sentencepiece(args[0], args[1])
    print(f"{args[0]}: {SENTENCEPIECE_FILE} added")


if __name__ == "__main__":
    main()


__all__ = ["CHECK_SAMPLE", "add_sentencepiece", "compare_tokenizers", "copy_if_identical"]
