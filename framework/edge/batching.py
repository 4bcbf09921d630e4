"""What goes into a model call: the texts checked, and cut into length-sorted batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InputError


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
        if not t.isascii():
            try:  # a lone surrogate (e.g. from JSON "\\ud800") is no Unicode text: no tokenizer takes it
                t.encode("utf-8")
            except UnicodeEncodeError as e:
                raise InputError(
                    f"texts[{i}] holds an unpaired surrogate (U+{ord(t[e.start]):04X}) at character "
                    f"{e.start}, which is not valid Unicode text; decode its source with errors='replace' "
                    "or remove the character."
                ) from None
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
