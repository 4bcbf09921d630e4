"""``POST /v1/retrieve``, ``POST /v1/documents`` and ``DELETE /v1/documents`` on a tenant's collections."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from ..documents import Document, Hit
from ..errors import StoreError
from ..parts import Part
from ..store.collection import check_metadata
from .auth import ServiceDep, TenantDep
from .errors import ApiError
from .limits import MAX_DOCUMENT_METADATA_KEYS, StrictJSONRoute, check_query_length
from .schemas import DeleteRequest, IngestRequest, PartIn, RetrieveRequest, RetrieveResponse

router = APIRouter(tags=["retrieval"], route_class=StrictJSONRoute)


def _part(i: int, p: PartIn, where: str = "query") -> Part:
    """A request part as a :class:`Part`; ``where`` names it in errors (``query``, ``documents[3].parts``)."""
    if p.text is not None:
        if p.data is not None or p.uri is not None:
            raise ApiError(
                400, "invalid_request", f"{where} part {i} has text and media; give one", param=where
            )
        return Part.text(p.text)
    if not p.mime_type:
        raise ApiError(
            400, "invalid_request", f"{where} part {i} needs a mime_type for its data or uri", param=where
        )
    if p.data is not None:
        try:
            data = base64.b64decode(p.data, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(
                400, "invalid_request", f"{where} part {i}: data is not valid base64", param=where
            ) from None
        return Part(data=data, mime_type=p.mime_type)
    if p.uri is not None:
        return Part.reference(p.uri, p.mime_type)
    raise ApiError(400, "invalid_request", f"{where} part {i} is empty: give text, data or uri", param=where)


def _hit(h: Hit) -> dict[str, Any]:
    """``dataclasses.asdict(hit)``, without its deep copies (the hit is not kept)."""
    return {
        "id": h.id,
        "text": h.text,
        "score": h.score,
        "rank": h.rank,
        "index": h.index,
        "space": h.space,
        "metadata": h.metadata,
        "title": h.title,
    }


def _public_audit(audit: dict[str, Any], collection: str) -> dict[str, Any]:
    """The audit record as the tenant sees it: its own collection name, not the store's."""
    return {**audit, "collection": collection}


@router.post("/v1/retrieve", response_model=RetrieveResponse)
async def retrieve(
    req: RetrieveRequest, request: Request, service: ServiceDep, tenant: TenantDep
) -> Response:
    """Route a query and answer from the edge index, the cloud index, or both fused.

    The body is what ``edgeroute query --json`` prints: the decision actually served, the hits
    (each says which index served it) and the audit record (hashes, not text).
    """
    check_query_length(
        [req.query] if isinstance(req.query, str) else [p.text for p in req.query if p.text is not None],
        service.config.max_query_chars,
    )
    engine = await service.engine(tenant, req.collection, create=False)
    query: str | list[Part] = (
        req.query if isinstance(req.query, str) else [_part(i, p) for i, p in enumerate(req.query)]
    )
    result = await engine.aretrieve(
        query,
        req.k,
        sensitivity=req.sensitivity,
        stakes=req.stakes,
        deadline_ms=req.deadline_ms,
        where=req.where,
    )
    request.state.route = result.decision.route.value
    # Built by hand and sent as is: the hot path skips asdict's deep copies and re-validation.
    return JSONResponse(
        {
            "decision": result.decision.to_dict(),
            "hits": [_hit(h) for h in result.hits],
            "audit": _public_audit(result.audit, req.collection),
        }
    )


@router.post("/v1/documents")
async def ingest(req: IngestRequest, service: ServiceDep, tenant: TenantDep) -> dict[str, Any]:
    """Index documents into the tenant's collection (created on first use): every text into the edge
    index, the cloud-eligible ones (with their media ``parts``) into the cloud index through the
    durable outbox.

    Idempotent by id and content: sending the same documents again writes nothing new, so a client
    whose replica died mid-request retries the whole request on another one.
    """
    # Checked before any store call or model work: metadata Chroma cannot store would break the
    # collection for good (store.collection's caps), and the engine adds keys of its own.
    metas = [
        check_metadata(d.metadata, f"documents[{n}].metadata", max_keys=MAX_DOCUMENT_METADATA_KEYS)
        for n, d in enumerate(req.documents)
    ]
    docs = [
        Document(
            d.id,
            d.text,
            title=d.title,
            metadata=metas[n],
            sensitivity=d.sensitivity or req.sensitivity,
            parts=tuple(_part(j, p, f"documents[{n}].parts") for j, p in enumerate(d.parts)),
        )
        for n, d in enumerate(req.documents)
    ]
    engine = await service.engine(tenant, req.collection, create=True)
    try:
        report = await engine.aingest(docs)
    except StoreError as exc:
        service.note_write_failure(engine.name, exc)
        raise
    return {"collection": req.collection, **report.to_dict()}


@router.delete("/v1/documents")
async def delete(req: DeleteRequest, service: ServiceDep, tenant: TenantDep) -> dict[str, Any]:
    """Delete documents by id from both indexes and the outbox."""
    engine = await service.engine(tenant, req.collection, create=False)
    adelete = getattr(engine, "adelete", None)
    if adelete is None:
        raise ApiError(
            501,
            "not_implemented",
            "deleting documents needs HybridEngine.delete (the index lifecycle work, issue 12), "
            "which this build does not have yet",
        )
    try:
        report = await adelete(req.ids)
    except StoreError as exc:
        service.note_write_failure(engine.name, exc)
        raise
    to_dict = getattr(report, "to_dict", None)
    return {"collection": req.collection, **(to_dict() if callable(to_dict) else {"result": report})}


__all__ = ["router"]
