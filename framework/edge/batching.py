"""What goes into a model call: the texts checked, and cut into length-sorted batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InputError


def unpaired_surrogate(text: str) -> int | None:
    """Where ``text`` holds a lone surrogate (JSON's ``"\\ud800"`` decodes to one), else None: such a
    string is no Unicode text, and no tokenizer takes it."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return e.start
    return None


def check_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list, or an InputError that says which item is wrong and what to do."""
    if isinstance(texts, str | bytes) or not isinstance(texts, Sequence):
        raise InputError(
            f"texts must be a list of strings, got {type(texts).__name__}; wrap a single text as [text]."
        )
    items = list(texts)
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise InputError(
                f"texts[{i}] is {type(t).__name__}, not str; embed text only (convert it first)."
            )
        if not t.strip():
            raise InputError(f"texts[{i}] is empty or whitespace; remove empty texts before embedding.")
        at = unpaired_surrogate(t)
        if at is not None:
            raise InputError(
                f"texts[{i}] holds an unpaired surrogate (U+{ord(t[at]):04X}) at character {at}, which "
                "is not valid Unicode text; decode its source with errors='replace' or remove the character."
            )
    return items


def length_batches(
    order: np.ndarray[Any, Any], lengths: np.ndarray[Any, Any], batch_size: int, max_tokens: int
) -> list[np.ndarray[Any, Any]]:
    """Cut ``order`` (indices, longest first) into batches of <= batch_size rows and <= max_tokens padded
    tokens; the first row of a batch is its longest, so rows x that length is the padded size."""
    out: list[np.ndarray[Any, Any]] = []
    start = 0
    while start < len(order):
        width = max(int(lengths[order[start]]), 1)
        rows = max(1, min(batch_size, max_tokens // width))
        out.append(order[start : start + rows])
        start += rows
    return out
