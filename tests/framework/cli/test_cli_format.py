"""Snippets end at a word with an ellipsis; numbers are rounded for people."""

from __future__ import annotations

from edgeroute.framework.cli.format import rounded, snippet


def test_short_text_is_kept_on_one_line() -> None:
    assert snippet("two\nlines  here", 80) == "two lines here"


def test_long_text_is_cut_at_a_word_boundary_with_an_ellipsis() -> None:
    text = "Cushioned running shoes for long distances and trail races, tested on rocky descents."
    out = snippet(text, 40)
    assert out.endswith("…") and len(out) <= 40
    assert text.startswith(out[:-1])
    assert out[:-1].split()[-1] in text.split() or out[:-1].split()[-1] + "," in text.split()  # whole word


def test_one_huge_word_is_cut_inside_but_still_marked() -> None:
    out = snippet("x" * 200, 20)
    assert out == "x" * 19 + "…"


def test_rounded_keeps_small_prices_readable() -> None:
    assert rounded({"p50": 12.34567, "cost": 1.6123456e-06, "n": 3, "ok": True, "l": [0.00012345]}) == {
        "p50": 12.346,
        "cost": 1.61e-06,
        "n": 3,
        "ok": True,
        "l": [0.000123],
    }
