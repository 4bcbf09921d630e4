"""Read .txt, .md and BEIR ``corpus.jsonl`` files into :class:`~edgeroute.framework.documents.Document` s.

Ids are stable across runs and machines: ``<path relative to the root>#<chunk number>`` for text
files (the root is the directory given, or a file's own directory when a file is given), and the
record's ``_id`` for BEIR corpora (never chunked, so qrels keep matching). Every text chunk keeps
``source``, ``chunk``, ``start`` and ``end`` (character offsets into the file) in its metadata.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..documents import Document, MetadataValue
from ..errors import InputError
from .chunking import DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP_TOKENS, chunk_text

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".md")
_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)


def is_beir_corpus(path: Path) -> bool:
    """A BEIR corpus file: ``corpus.jsonl`` (or any ``*.jsonl`` named on purpose, see :func:`load_paths`)."""
    return path.name == "corpus.jsonl"


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}): convert it first"
        ) from exc
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc


def load_text_file(
    path: str | Path,
    *,
    root: str | Path | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
) -> list[Document]:
    """One document per chunk of a .txt or .md file. A Markdown file's first ``# heading`` is the title.

    Raises :class:`InputError` for a file that is empty, not UTF-8, or of another type.
    """
    p = Path(path)
    if p.suffix.lower() not in TEXT_SUFFIXES:
        raise InputError(f"{p} is not a .txt or .md file; supported: .txt, .md and BEIR corpus.jsonl")
    text = _read_text(p)
    if not text.strip():
        raise InputError(f"{p} is empty: nothing to index (remove it or add text)")
    base = Path(root) if root is not None else p.parent
    try:
        source = p.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        source = p.name
    title: str | None = None
    if p.suffix.lower() == ".md":
        m = _HEADING.search(text)
        title = m.group(1) if m else None
    docs = []
    for c in chunk_text(text, max_tokens=max_tokens, overlap_tokens=overlap_tokens):
        meta: dict[str, MetadataValue] = {"source": source, "chunk": c.index, "start": c.start, "end": c.end}
        if title:
            meta["title"] = title
        docs.append(Document(id=f"{source}#{c.index}", text=c.text, title=title, metadata=meta))
    return docs


def load_beir_corpus(path: str | Path, *, source: str | None = None) -> Iterator[Document]:
    """Stream a BEIR ``corpus.jsonl`` (``{"_id", "title", "text"}`` per line) as documents.

    A bad line raises :class:`InputError` naming the file and line. Records with empty text are
    skipped with a warning (some BEIR sets have a few).
    """
    p = Path(path)
    src = source or p.name
    try:
        fh = p.open(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {p}: {exc.strerror or exc}") from exc
    seen: set[str] = set()
    with fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"{p}:{lineno} is not valid JSON ({exc.msg}): fix or remove that line"
                ) from exc
            if not isinstance(rec, dict) or "_id" not in rec or "text" not in rec:
                raise InputError(f'{p}:{lineno}: a BEIR corpus record needs "_id" and "text" fields')
            doc_id, text, title = str(rec["_id"]), rec["text"], rec.get("title") or None
            if not isinstance(text, str) or (title is not None and not isinstance(title, str)):
                raise InputError(f'{p}:{lineno}: "text" and "title" must be strings')
            if doc_id in seen:
                raise InputError(f"{p}:{lineno}: duplicate _id {doc_id!r}; ids must be unique")
            seen.add(doc_id)
            if not text.strip() and not title:
                logger.warning("%s:%d: record %r has no text; skipped", p, lineno, doc_id)
                continue
            meta: dict[str, MetadataValue] = {"source": src}
            if title:
                meta["title"] = title
            yield Document(id=doc_id, text=text if text.strip() else title or "", title=title, metadata=meta)


def _walk(directory: Path) -> Iterator[Path]:
    for f in sorted(directory.rglob("*")):
        hidden = any(part.startswith(".") for part in f.relative_to(directory).parts)
        if f.is_file() and not hidden and (f.suffix.lower() in TEXT_SUFFIXES or is_beir_corpus(f)):
            yield f


def load_paths(
    paths: Iterable[str | Path],
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
) -> Iterator[Document]:
    """Documents from files and directories (walked recursively, sorted, hidden entries skipped).

    A file named on purpose must be .txt, .md or a ``.jsonl`` BEIR corpus; inside directories other
    files are ignored and empty text files are skipped with a warning. Ids are relative to the path
    given, so ``load_paths(["notes"])`` gives ``a/b.md#0`` for ``notes/a/b.md``.
    """
    for raw in paths:
        p = Path(raw).expanduser()
        if not p.exists():
            raise InputError(f"{p} does not exist: check the path")
        if p.is_dir():
            for f in _walk(p):
                rel = f.relative_to(p).as_posix()
                if is_beir_corpus(f):
                    yield from load_beir_corpus(f, source=rel)
                    continue
                try:
                    yield from load_text_file(f, root=p, max_tokens=max_tokens, overlap_tokens=overlap_tokens)
                except InputError as exc:
                    if "is empty" not in str(exc):
                        raise
                    logger.warning("%s is empty; skipped", f)
        elif p.suffix.lower() == ".jsonl":
            yield from load_beir_corpus(p)
        else:
            yield from load_text_file(p, max_tokens=max_tokens, overlap_tokens=overlap_tokens)


__all__ = ["TEXT_SUFFIXES", "is_beir_corpus", "load_beir_corpus", "load_paths", "load_text_file"]
