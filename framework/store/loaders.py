"""Read .txt, .md, BEIR ``corpus.jsonl``, image and PDF files into :class:`~edgeroute.framework.documents.Document` s.

Ids are stable across runs and machines: ``<path relative to the root>#<chunk number>`` for text
files (the root is the directory given, or a file's own directory when a file is given), and the
record's ``_id`` for BEIR corpora (never chunked, so qrels keep matching). Every text chunk keeps
``source``, ``chunk``, ``start`` and ``end`` (character offsets into the file) in its metadata.

Images (PNG, JPEG) and PDFs become one *multimodal* document each (``<path>#0``, the file as its
one part, no text): the cloud index embeds the file itself; the edge model reads text only, so such
a document is in the cloud index or nowhere (the engine reports it as not indexable at the edge
when the policy keeps it off the cloud). Files are checked against the cloud's limits (real
PNG/JPEG bytes, at most 6 PDF pages) when loaded.

Bad files: by default the first one raises :class:`InputError`. Pass a list as ``problems`` and
every bad file (and every bad corpus line) is appended to it as a :class:`LoadProblem` instead, the
good ones are still loaded, so one run can name them all.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from ...policies.sensitivity import SENSITIVITY_LEVELS, Sensitivity
from ..cloud.media import validate_content
from ..documents import Document, MetadataValue
from ..errors import InputError
from ..parts import Part
from .chunking import DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP_TOKENS, chunk_text

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".md")
MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".pdf": "application/pdf"}
"""File suffixes loaded as multimodal documents (for the cloud index), with their MIME types."""
_SUPPORTED = ".txt, .md, BEIR corpus.jsonl, .png, .jpg/.jpeg and .pdf"


@dataclass(frozen=True, slots=True)
class LoadProblem:
    """A file (or ``file:line`` of a corpus) that was not loaded. ``kind`` is ``"error"`` for a bad
    file, ``"empty"`` for an empty text file found in a directory walk (skipped, not an error)."""

    path: str
    reason: str
    kind: Literal["error", "empty"] = "error"

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason, "kind": self.kind}


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
        raise InputError(f"{p} is not a .txt or .md file; supported: {_SUPPORTED}")
    text = _read_text(p)
    if not text.strip():
        raise InputError(f"{p} is empty: nothing to index (remove it or add text)")
    source = _source(p, root)
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


def load_beir_corpus(
    path: str | Path, *, source: str | None = None, problems: list[LoadProblem] | None = None
) -> Iterator[Document]:
    """Stream a BEIR ``corpus.jsonl`` (``{"_id", "title", "text"}`` per line) as documents.

    An optional ``"sensitivity"`` field (public, internal, confidential, restricted; default internal)
    marks a record's sensitivity, so one corpus can mix private and cloud-eligible documents.

    A bad line raises :class:`InputError` naming the file and line (or, with ``problems``, is
    appended there and skipped). A record with a title and no text (empty, null or missing) is
    indexed from its title; one with neither is skipped with a warning (some BEIR sets have a few).
    """
    p = Path(path)
    src = source or p.name
    try:
        fh = p.open(encoding="utf-8")
    except OSError as exc:
        _problem(problems, InputError(f"cannot read {p}: {exc.strerror or exc}"), str(p))
        return
    seen: set[str] = set()
    with fh:
        try:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    doc = _beir_record(p, lineno, line, seen, src)
                except InputError as exc:
                    _problem(problems, exc, f"{p}:{lineno}")
                    continue
                if doc is not None:
                    yield doc
        except UnicodeDecodeError as exc:
            _problem(problems, InputError(f"{p} is not UTF-8 text ({exc.reason}): convert it first"), str(p))


def _beir_record(p: Path, lineno: int, line: str, seen: set[str], src: str) -> Document | None:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{p}:{lineno} is not valid JSON ({exc.msg}): fix or remove that line") from exc
    if not isinstance(rec, dict) or "_id" not in rec or ("text" not in rec and not rec.get("title")):
        raise InputError(f'{p}:{lineno}: a BEIR corpus record needs "_id" and "text" (or "title") fields')
    doc_id, text, title = str(rec["_id"]), rec.get("text"), rec.get("title") or None
    if text is None:
        text = ""
    if not isinstance(text, str) or (title is not None and not isinstance(title, str)):
        raise InputError(f'{p}:{lineno}: "text" and "title" must be strings')
    if doc_id in seen:
        raise InputError(f"{p}:{lineno}: duplicate _id {doc_id!r}; ids must be unique")
    seen.add(doc_id)
    if not text.strip() and not (title or "").strip():
        logger.warning("%s:%d: record %r has no text and no title; skipped", p, lineno, doc_id)
        return None
    sensitivity = rec.get("sensitivity", "internal")
    if sensitivity not in SENSITIVITY_LEVELS:
        raise InputError(
            f"{p}:{lineno}: sensitivity {sensitivity!r} is unknown; use one of {', '.join(SENSITIVITY_LEVELS)}"
        )
    meta: dict[str, MetadataValue] = {"source": src}
    if title:
        meta["title"] = title
    # A title-only record is still a document: its title is all there is to find it by.
    return Document(
        id=doc_id,
        text=text if text.strip() else title or "",
        title=title,
        metadata=meta,
        sensitivity=cast(Sensitivity, sensitivity),
    )


def _problem(problems: list[LoadProblem] | None, exc: InputError, where: str) -> None:
    """Raise ``exc`` (the default), or note it and carry on when the caller collects problems."""
    if problems is None:
        raise exc
    problems.append(LoadProblem(where, str(exc)))


def _source(p: Path, root: str | Path | None) -> str:
    base = Path(root) if root is not None else p.parent
    try:
        return p.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return p.name


def load_media_file(path: str | Path, *, root: str | Path | None = None) -> Document:
    """One multimodal document for an image (PNG/JPEG) or PDF: the file is its part, it has no text.

    Raises :class:`InputError` for another type, an unreadable file, or one the cloud would refuse
    (not really a PNG/JPEG, more than 6 PDF pages).
    """
    p = Path(path)
    mime = MEDIA_TYPES.get(p.suffix.lower())
    if mime is None:
        raise InputError(f"{p} is not an image or PDF; supported: {_SUPPORTED}")
    try:
        part = Part.file(p, mime)
    except OSError as exc:
        raise InputError(f"cannot read {p}: {exc.strerror or exc}") from exc
    if not part.data:
        raise InputError(f"{p} is empty: nothing to index (remove it)")
    try:
        validate_content([part])
    except InputError as exc:
        raise InputError(f"{p}: {exc}") from None
    source = _source(p, root)
    meta: dict[str, MetadataValue] = {
        "source": source,
        "chunk": 0,
        "media_type": mime,
        "bytes": len(part.data),
        "title": p.name,
    }
    return Document(id=f"{source}#0", text="", title=p.name, metadata=meta, parts=(part,))


def _walk(directory: Path, media: bool) -> Iterator[Path]:
    for f in sorted(directory.rglob("*")):
        hidden = any(part.startswith(".") for part in f.relative_to(directory).parts)
        suffix = f.suffix.lower()
        wanted = suffix in TEXT_SUFFIXES or is_beir_corpus(f) or (media and suffix in MEDIA_TYPES)
        if f.is_file() and not hidden and wanted:
            yield f


def load_paths(
    paths: Iterable[str | Path],
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
    media: bool = True,
    problems: list[LoadProblem] | None = None,
) -> Iterator[Document]:
    """Documents from files and directories (walked recursively, sorted, hidden entries skipped).

    A file named on purpose must be .txt, .md, a ``.jsonl`` BEIR corpus, or (with ``media``) a PNG,
    JPEG or PDF; inside directories other files are ignored and empty text files are skipped with a
    warning. Ids are relative to the path given, so ``load_paths(["notes"])`` gives ``a/b.md#0`` for
    ``notes/a/b.md``. The first bad file raises :class:`InputError`, unless ``problems`` is a list:
    then every bad file is appended to it and the rest still load.
    """
    for raw in paths:
        p = Path(raw).expanduser()
        if not p.exists():
            _problem(problems, InputError(f"{p} does not exist: check the path"), str(p))
            continue
        if p.is_dir():
            for f in _walk(p, media):
                rel = f.relative_to(p).as_posix()
                if is_beir_corpus(f):
                    yield from load_beir_corpus(f, source=rel, problems=problems)
                    continue
                yield from _load_file(f, p, max_tokens, overlap_tokens, problems, in_walk=True)
        elif p.suffix.lower() == ".jsonl":
            yield from load_beir_corpus(p, problems=problems)
        elif media or p.suffix.lower() not in MEDIA_TYPES:
            yield from _load_file(p, None, max_tokens, overlap_tokens, problems, in_walk=False)
        else:
            _problem(problems, InputError(f"{p} is media and media loading is off"), str(p))


def _load_file(
    f: Path,
    root: Path | None,
    max_tokens: int,
    overlap_tokens: int,
    problems: list[LoadProblem] | None,
    *,
    in_walk: bool,
) -> Iterator[Document]:
    try:
        if f.suffix.lower() in MEDIA_TYPES:
            yield load_media_file(f, root=root)
        else:
            yield from load_text_file(f, root=root, max_tokens=max_tokens, overlap_tokens=overlap_tokens)
    except InputError as exc:
        if in_walk and "is empty" in str(exc) and f.suffix.lower() in TEXT_SUFFIXES:
            logger.warning("%s is empty; skipped", f)
            if problems is not None:
                problems.append(LoadProblem(str(f), str(exc), "empty"))
            return
        _problem(problems, exc, str(f))


__all__ = [
    "MEDIA_TYPES",
    "TEXT_SUFFIXES",
    "LoadProblem",
    "is_beir_corpus",
    "load_beir_corpus",
    "load_media_file",
    "load_paths",
    "load_text_file",
]
