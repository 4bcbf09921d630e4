"""Documents on their way in: checked before anything is written, and placed by the policy.

Shared by ingest (which places every document) and drain (which places each queued document again
before sending it, because the policy or the guard may have learned since that it is private).
"""

from __future__ import annotations

from collections.abc import Sequence

from ...policies.config import PolicyConfig
from ...policies.pii import detect_pii
from ...policies.rules import RoutingRefused, place_document
from ...policies.signals import DocumentSignals, SignalError
from ..aio import to_thread
from ..cloud.media import validate_content
from ..documents import Document, MetadataValue
from ..embedder import Vectors
from ..errors import InputError, RoutingError
from ..parts import Part
from ..spaces import EmbeddingSpace
from ..store.chroma import Collection

EDGE_MODALITIES = frozenset({"text"})
"""What the on-device model embeds."""


def cloud_parts(doc: Document) -> list[Part]:
    """A document's one cloud input: its text, then its parts (a text part equal to it is not repeated)."""
    head = [Part.text(doc.text)] if doc.text.strip() else []
    return head + [p for p in doc.parts if not (p.is_text and p.text_value == doc.text)]


def index_metadata(doc: Document) -> dict[str, MetadataValue]:
    """What the vector store keeps next to the vector: the document's metadata, sensitivity and title."""
    meta: dict[str, MetadataValue] = {**doc.metadata, "sensitivity": doc.sensitivity}
    if doc.title:
        meta["title"] = doc.title
    return meta


async def write_index(
    col: Collection, docs: Sequence[Document], vectors: Vectors, space: EmbeddingSpace
) -> None:
    """Upsert ``docs`` and their vectors into an index (in a worker thread), each with its text,
    metadata and content hash (by which ``stale_ids`` later skips unchanged documents)."""
    await to_thread(
        col.upsert,
        [d.id for d in docs],
        vectors,
        space=space,
        texts=[d.text for d in docs],
        metadatas=[index_metadata(d) for d in docs],
        content_hashes=[d.content_hash() for d in docs],
    )


def check_documents(documents: Sequence[Document]) -> list[Document]:
    """The documents as a list, or :class:`InputError` for the first bad one (before any I/O)."""
    if isinstance(documents, Document):
        raise InputError("ingest takes a list of Documents; wrap the one document in a list")
    docs = list(documents)
    seen: set[str] = set()
    for i, d in enumerate(docs):
        if not isinstance(d, Document):
            raise InputError(f"item {i} is a {type(d).__name__}, expected edgeroute Document")
        if not isinstance(d.id, str) or not d.id:
            raise InputError(f"document {i} has no id; give every document a unique, non-empty id")
        if d.id in seen:
            raise InputError(f"document id {d.id!r} appears twice in one ingest; ids must be unique")
        seen.add(d.id)
        if not d.text.strip() and not d.parts:
            raise InputError(f"document {d.id!r} is empty: give it text or media parts")
        if d.parts:
            validate_content(cloud_parts(d), i)
    return docs


def cloud_allowed(docs: Sequence[Document], policy: PolicyConfig) -> list[bool]:
    """For each document: may it go to the cloud index? Raises before anything is written."""
    out = []
    for doc in docs:
        pii = detect_pii("\n".join(filter(None, [doc.title, doc.text])), policy)
        modalities = frozenset(p.modality for p in cloud_parts(doc)) or frozenset({"text"})
        try:
            signals = DocumentSignals(doc.sensitivity, pii, modalities, EDGE_MODALITIES)
            placement = place_document(signals, policy)
        except SignalError as exc:
            raise InputError(f"document {doc.id!r}: {exc}") from None
        except RoutingRefused as exc:
            raise RoutingError(f"document {doc.id!r}: {exc.message}") from None
        out.append(placement.cloud)
    return out


__all__ = [
    "EDGE_MODALITIES",
    "check_documents",
    "cloud_allowed",
    "cloud_parts",
    "index_metadata",
    "write_index",
]
