"""Small text helpers for what the CLI prints: snippets cut at a word boundary, rounded numbers."""

from __future__ import annotations

from typing import Any

ELLIPSIS = "…"


def snippet(text: str, width: int = 80) -> str:
    """``text`` on one line, at most ``width`` characters; a cut ends at a word boundary with ``…``.

    Only a single word longer than the whole width is cut inside itself (still marked with ``…``).
    """
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    room = max(1, width - len(ELLIPSIS))
    cut = flat[: room + 1]
    space = cut.rfind(" ")
    head = cut[:space] if space > room // 2 else flat[:room]
    return head.rstrip(" ,;:.-") + ELLIPSIS


def rounded(value: Any, digits: int = 3) -> Any:
    """``value`` with every float rounded to ``digits`` significant decimals (prices keep their magnitude)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        if value == 0 or abs(value) >= 1:
            return round(value, digits)
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v, digits) for v in value]
    return value


__all__ = ["ELLIPSIS", "rounded", "snippet"]
