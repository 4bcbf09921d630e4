"""``POST /v1/embeddings`` (OpenAI-compatible) and ``GET /v1/models``."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from ...policies.decision import Reason
from ..aio import to_thread
from ..cloud.media import estimate_tokens
from ..embedder import Vectors
from .auth import ServiceDep, TenantDep
from .errors import ApiError
from .keys import Tenant
from .limits import StrictJSONRoute
from .privacy import privacy_reasons
from .schemas import (
    MAX_INPUTS,
    MAX_TEXT_CHARS,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelCard,
    ModelList,
)
from .service import Service

router = APIRouter(tags=["embeddings"], route_class=StrictJSONRoute)

_CLOUD_DIMS = [128, 256, 512, 768, 1536, 3072]


def _texts(raw: Any) -> list[str]:
    items = [raw] if isinstance(raw, str) else list(raw)
    if not items:
        raise ApiError(
            400, "invalid_request", "input is empty; send a string or a list of strings", param="input"
        )
    if not all(isinstance(t, str) for t in items):
        raise ApiError(
            400,
            "invalid_request",
            "input holds token ids; this server embeds text only. Send strings (LangChain: "
            "OpenAIEmbeddings(..., check_embedding_ctx_length=False))",
            param="input",
        )
    if len(items) > MAX_INPUTS:
        raise ApiError(
            400,
            "invalid_request",
            f"{len(items)} inputs; send at most {MAX_INPUTS} per request",
            param="input",
        )
    for i, t in enumerate(items):
        if not t.strip():
            raise ApiError(
                400,
                "invalid_request",
                f"input[{i}] is empty; every input must be non-empty text",
                param="input",
            )
        if len(t) > MAX_TEXT_CHARS:
            raise ApiError(
                400,
                "invalid_request",
                f"input[{i}] has {len(t)} characters; the limit is {MAX_TEXT_CHARS}",
                param="input",
            )
    return items


def _encode(vec: np.ndarray[Any, Any], fmt: str) -> list[float] | str:
    if fmt == "base64":
        return base64.b64encode(np.ascontiguousarray(vec, dtype="<f4").tobytes()).decode("ascii")
    out: list[float] = vec.astype(np.float32).tolist()
    return out


def _edge_tokens(service: Service, texts: list[str]) -> int:
    count = getattr(service.raw_edge, "count_tokens", None)
    if callable(count):
        return int(sum(count(texts)))
    return sum(estimate_tokens(t) for t in texts)


async def _embed_edge(service: Service, req: EmbeddingRequest, texts: list[str]) -> Vectors:
    kind = req.input_type
    if kind == "document":
        return await service.edge.aembed_documents(texts, dims=req.dimensions)
    if kind == "query":
        return await service.edge.aembed_queries(texts, dims=req.dimensions)
    return await service.edge.aembed(texts, kind, dims=req.dimensions)


async def _embed_cloud(service: Service, tenant: Tenant, req: EmbeddingRequest, texts: list[str]) -> Vectors:
    cloud = service.cloud_for(tenant)
    assert cloud is not None
    if req.input_type == "document":
        return await cloud.aembed_documents(texts, dims=req.dimensions)
    if req.input_type != "query":
        raise ApiError(
            400,
            "invalid_request",
            "the cloud model takes input_type 'query' or 'document'",
            param="input_type",
        )
    return await cloud.aembed_queries(texts, dims=req.dimensions)


@router.post("/v1/embeddings", response_model=EmbeddingResponse, response_model_exclude_none=True)
async def create_embeddings(
    req: EmbeddingRequest, request: Request, service: ServiceDep, tenant: TenantDep
) -> Response:
    """Embed text with the edge model (on this host) or the cloud model (privacy rules apply).

    For the cloud model, input above the tenant's sensitivity ceiling or with PII is refused with
    403 and the reason code, unless ``on_private`` is ``"edge"``: then the edge model embeds it and
    the response names the edge model and says why (``routing``). Nothing is forwarded silently.
    """
    texts = _texts(req.input)
    side = service.resolve_model(req.model, tenant)
    if side is None:
        raise ApiError(
            404,
            "model_not_found",
            f"model {req.model!r} is not served to this key; GET /v1/models lists the ones it may use",
            param="model",
        )
    routing: dict[str, Any] | None = None
    if side == "cloud":
        findings = await service.pii_for(tenant).adetect_many(texts)
        reasons = privacy_reasons(findings, req.sensitivity, service.tenant_policy(tenant))
        left = service.budget_left(tenant)
        if not reasons and left is not None and left <= 0:
            # Not a privacy rule, but the same choice: refuse, or embed at the edge when asked to.
            reasons = [Reason("budget.exhausted", f"tenant {tenant.name!r} has spent its cloud budget")]
        if reasons:
            if req.on_private != "edge":
                first = reasons[0]
                raise ApiError(
                    403,
                    first.code,
                    "; ".join(r.message for r in reasons)
                    + "; send on_private='edge' to embed it with the edge model instead",
                )
            side = "edge"
            routing = {
                "requested_model": req.model,
                "served_by": "edge",
                "reasons": [{"code": r.code, "message": r.message} for r in reasons],
            }
    request.state.route = side
    if side == "edge":
        vecs = await _embed_edge(service, req, texts)
        model = service.edge_model
        tokens = await to_thread(_edge_tokens, service, texts)
    else:
        vecs = await _embed_cloud(service, tenant, req, texts)
        model = service.cloud_model or req.model
        tokens = sum(estimate_tokens(t) for t in texts)
    body: dict[str, Any] = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": _encode(v, req.encoding_format)}
            for i, v in enumerate(vecs)
        ],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    if routing is not None:
        body["routing"] = routing
    # Sent as built (the schema is in response_model for /docs): no pydantic pass over every float.
    return JSONResponse(body)


@router.get("/v1/models", response_model=ModelList)
async def list_models(service: ServiceDep, tenant: TenantDep) -> ModelList:
    """The edge and cloud models this key may use."""
    edge_dims = sorted(
        {
            service.edge.space_for(None).dims,
            *getattr(getattr(service.raw_edge, "manifest", None), "matryoshka_dims", ()),
        }
    )
    cards = [
        ModelCard(
            id=service.edge_model, owned_by="edgeroute (on this host)", side="edge", dimensions=edge_dims
        )
    ]
    if service.may_use_cloud(tenant) and service.cloud_model:
        cards.append(
            ModelCard(id=service.cloud_model, owned_by="google", side="cloud", dimensions=_CLOUD_DIMS)
        )
    return ModelList(data=cards)


__all__ = ["router"]
