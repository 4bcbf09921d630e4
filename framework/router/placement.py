"""Documents on their way in: checked before anything is written, and placed by the policy.

Shared by ingest (which places every document) and drain (which places each queued document again
before sending it, because the policy or the guard may have learned since that it is private).
"""

from __future__ import annotations

from collections.abc import Sequence

from ...policies.config import PolicyConfig
from ...policies.rules import RoutingRefused, place_document
from ...policies.signals import DocumentSignals, PiiFinding, SignalError
from ..aio import to_thread
from ..cloud.media import MAX_INPUT_TOKENS, estimate_part_tokens, validate_content
from ..documents import Document, MetadataValue
from ..embedder import Embedder, Vectors
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


_LISTED = 10


def check_edge_lengths(docs: Sequence[Document], edge: Embedder) -> None:
    """:class:`InputError` naming every document longer than the edge model's token limit (document
    prompt and title included), before anything is written: the model would embed only its start.

    Counts are the edge model's own tokenizer's; an embedder without a token limit (the hashing test
    embedder, say) has nothing to check.
    """
    texts = [d for d in docs if d.text.strip()]
    counter = getattr(edge, "documents_over_limit", None)
    manifest = getattr(edge, "manifest", None)
    if not callable(counter) or manifest is None or not texts:
        return
    limit = int(manifest.max_tokens)
    found: dict[int, int] = counter([d.text for d in texts], [d.title for d in texts])
    _refuse(
        [f"{texts[i].id!r} has {n} tokens, over the edge model's {limit}" for i, n in sorted(found.items())]
    )


def check_cloud_lengths(docs: Sequence[Document]) -> None:
    """:class:`InputError` naming every cloud-bound document over the cloud model's input limit
    (:data:`~edgeroute.framework.cloud.media.MAX_INPUT_TOKENS`, estimated on the high side), which the
    cloud would refuse on every drain."""
    over = []
    for d in docs:
        n = sum(estimate_part_tokens(p) for p in cloud_parts(d))
        if n > MAX_INPUT_TOKENS:
            over.append(f"{d.id!r} has about {n} tokens, over the cloud model's {MAX_INPUT_TOKENS}")
    _refuse(over)


def _refuse(over: list[str]) -> None:
    if not over:
        return
    more = f" (and {len(over) - _LISTED} more)" if len(over) > _LISTED else ""
    raise InputError(
        f"{len(over)} document(s) too long to embed whole, so nothing was written: "
        f"{'; '.join(over[:_LISTED])}{more}. A model would embed only their start. Split each into "
        "chunks with ids of their own first (edgeroute.framework.store.chunking.chunk_text makes the "
        "512-token chunks `edgeroute index` uses)"
    )


def pii_text(doc: Document) -> str:
    """What PII detection reads of a document: its title and its text."""
    return "\n".join(filter(None, [doc.title, doc.text]))


def cloud_allowed(
    docs: Sequence[Document], policy: PolicyConfig, found: Sequence[tuple[PiiFinding, ...]]
) -> list[bool]:
    """For each document and its PII findings (``found[i]`` for ``docs[i]``, from the engine's
    :class:`~edgeroute.framework.pii.PiiDetector` on :func:`pii_text`): may it go to the cloud index?
    Raises before anything is written."""
    out = []
    for doc, pii in zip(docs, found, strict=True):
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
    "check_cloud_lengths",
    "check_documents",
    "check_edge_lengths",
    "cloud_allowed",
    "cloud_parts",
    "index_metadata",
    "pii_text",
    "write_index",
]
