"""Word-level BIO (CoNLL) files as labelled texts: words joined the way a writer spaces them, spans as offsets.

Reads ``index<TAB>word<TAB>tag`` (CoNLL-U-like, as WikiNEuRal and WikiANN ship) or ``word<TAB>tag`` /
``word tag`` lines, sentences separated by blank lines. Tags map PER -> person, LOC -> location,
ORG -> organization (also ``PERSON``, ``GPE``); every other label is left out of the gold spans, so a
finding on it is counted as a false positive only in texts with no gold span at all.
"""

from __future__ import annotations

LABELS = {"PER": "person", "PERSON": "person", "LOC": "location", "GPE": "location", "ORG": "organization"}
NO_SPACE_BEFORE = frozenset(
    {".", ",", ";", ":", "!", "?", ")", "]", "}", "%", "'s", "n't", "'", "»", "”", "、", "。", "，"}
)
NO_SPACE_AFTER = frozenset({"(", "[", "{", "«", "“", "¿", "¡"})
CONLL_SUFFIXES = (".conll", ".conllu", ".bio", ".iob", ".tsv")


def parse_conll(raw: str) -> list[list[tuple[str, str]]]:
    """Sentences as ``[(word, tag), ...]``; ``-DOCSTART-`` lines and comments are skipped."""
    out: list[list[tuple[str, str]]] = []
    cur: list[tuple[str, str]] = []
    for line in raw.splitlines():
        if not line.strip():
            if cur:
                out.append(cur)
            cur = []
            continue
        if line.startswith(("#", "-DOCSTART-")):
            continue
        cols = line.split("\t") if "\t" in line else line.split()
        if len(cols) >= 3:
            cur.append((cols[1], cols[-1].strip()))
        elif len(cols) == 2:
            cur.append((cols[0], cols[1].strip()))
    if cur:
        out.append(cur)
    return out


def _cjk(ch: str) -> bool:
    return 0x2E80 <= ord(ch) <= 0x9FFF or 0xF900 <= ord(ch) <= 0xFAFF or 0xFF00 <= ord(ch) <= 0xFFEF


def join_words(
    words: list[tuple[str, str]], *, glue_cjk: bool = True
) -> tuple[str, list[tuple[int, int, str]]]:
    """``(text, spans)`` from tagged words: natural spacing (none between CJK words unless ``glue_cjk``
    is False), BIO spans of the mapped kinds as ``(start, end, kind)``."""
    text = ""
    offsets: list[tuple[int, int]] = []
    prev = ""
    for w, _ in words:
        glued = glue_cjk and bool(prev) and _cjk(prev[-1]) and bool(w) and _cjk(w[0])
        if text and not glued and w not in NO_SPACE_BEFORE and prev not in NO_SPACE_AFTER:
            text += " "
        offsets.append((len(text), len(text) + len(w)))
        text += w
        prev = w
    spans: list[tuple[int, int, str]] = []
    cur: list[object] | None = None
    for (_, tag), (s, e) in zip(words, offsets, strict=True):
        prefix, _, label = tag.partition("-")
        kind = LABELS.get(label.upper())
        if kind is not None and prefix.upper() == "I" and cur is not None and cur[2] == kind:
            cur[1] = e
            continue
        if cur is not None:
            spans.append((int(cur[0]), int(cur[1]), str(cur[2])))  # type: ignore[call-overload]
            cur = None
        if kind is not None and prefix.upper() in ("B", "I"):
            cur = [s, e, kind]
    if cur is not None:
        spans.append((int(cur[0]), int(cur[1]), str(cur[2])))  # type: ignore[call-overload]
    return text, spans


__all__ = ["CONLL_SUFFIXES", "LABELS", "join_words", "parse_conll"]
