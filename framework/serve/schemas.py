"""Request and response bodies, validated by pydantic (and shown at ``/docs``).

``/v1/embeddings`` follows OpenAI's embeddings API; edgeroute's own fields (``input_type``,
``sensitivity``, ``on_private``) are optional extras an OpenAI client sends with ``extra_body``.
``/v1/retrieve`` answers in the JSON that ``edgeroute query --json`` prints.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Sensitivity = Literal["public", "internal", "confidential", "restricted"]
Stakes = Literal["normal", "high"]

MAX_INPUTS = 2048  # OpenAI's own limit per request
MAX_TEXT_CHARS = 100_000  # far above the models' token limits; bounds memory per request


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- embeddings (OpenAI-compatible) ----------------------------------------------------------------


class EmbeddingRequest(BaseModel):
    # OpenAI clients send fields this server ignores (``user``); unknown fields are tolerated here only.
    model_config = ConfigDict(extra="ignore")

    input: str | list[str] | list[int] | list[list[int]] = Field(
        description="A text or a list of texts. Token-id arrays are refused: send text "
        "(LangChain: OpenAIEmbeddings(check_embedding_ctx_length=False))."
    )
    model: str = Field(description="The edge or cloud model name from GET /v1/models (or 'edge' / 'cloud').")
    dimensions: int | None = Field(
        default=None, ge=1, description="Matryoshka size; the model's default if unset"
    )
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None
    input_type: str = Field(
        default="document",
        description="edgeroute: 'document' or 'query' (the model's retrieval prompts), or another "
        "prompt name of the edge model",
    )
    sensitivity: Sensitivity = Field(default="internal", description="edgeroute: the input's sensitivity")
    on_private: Literal["refuse", "edge"] = Field(
        default="refuse",
        description="edgeroute, cloud model only: when privacy keeps the input on the device, refuse "
        "with 403 (default) or embed it with the edge model instead (the response names the edge model)",
    )


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: Usage
    routing: dict[str, Any] | None = Field(
        default=None, description="edgeroute: set when the request was served by another model than asked"
    )


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str
    side: Literal["edge", "cloud"]
    dimensions: list[int]


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# -- retrieval and documents ---------------------------------------------------------------------------


class PartIn(_Strict):
    """One query part: ``text``, or base64 ``data`` with its ``mime_type``, or a ``uri`` with its ``mime_type``."""

    text: str | None = None
    data: str | None = Field(default=None, description="base64 bytes")
    mime_type: str | None = None
    uri: str | None = None


class RetrieveRequest(_Strict):
    collection: str
    query: str | list[PartIn] = Field(description="text, or parts for one interleaved multimodal query")
    k: int = Field(default=10, ge=1, le=1000)
    sensitivity: Sensitivity = "internal"
    stakes: Stakes = "normal"
    deadline_ms: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    where: dict[str, Any] | None = None


class HitOut(BaseModel):
    id: str
    text: str
    score: float
    rank: int
    index: str
    space: str
    metadata: dict[str, Any]
    title: str | None = None


class RetrieveResponse(BaseModel):
    decision: dict[str, Any]
    hits: list[HitOut]
    audit: dict[str, Any]


class DocumentIn(_Strict):
    id: str = Field(min_length=1, max_length=512)
    text: str = Field(max_length=MAX_TEXT_CHARS)
    title: str | None = None
    parts: list[PartIn] = Field(
        default_factory=list,
        max_length=16,
        description="media for the cloud index (images, audio, video, PDF): base64 data or a uri, each "
        "with its mime_type; the text is what the edge index embeds",
    )
    metadata: dict[str, str | int | float | bool] = Field(default_factory=dict)
    sensitivity: Sensitivity | None = Field(default=None, description="default: the request's sensitivity")


class IngestRequest(_Strict):
    collection: str
    documents: list[DocumentIn] = Field(min_length=1, max_length=10_000)
    sensitivity: Sensitivity = "internal"


class DeleteRequest(_Strict):
    collection: str
    ids: list[str] = Field(min_length=1, max_length=10_000)


# -- tools -----------------------------------------------------------------------------------------------


class ToolIn(_Strict):
    name: str
    description: str
    examples: list[str] = Field(min_length=1)
    sensitivity: Sensitivity = "internal"


class ToolRouteRequest(_Strict):
    request: str
    tools: list[ToolIn] | None = Field(
        default=None, description="the tools to choose from; default: the server's --tools file"
    )
    k: int = Field(default=3, ge=1, le=50)
    sensitivity: Sensitivity = "internal"
    stakes: Stakes = "normal"


class ToolRouteResponse(BaseModel):
    tools: list[dict[str, Any]]
    unsure: bool
    decision: dict[str, Any]
    served_by: str
    candidates: list[dict[str, Any]]
    latency_ms: float


__all__ = [
    "MAX_INPUTS",
    "DeleteRequest",
    "DocumentIn",
    "EmbeddingItem",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "HitOut",
    "IngestRequest",
    "ModelCard",
    "ModelList",
    "PartIn",
    "RetrieveRequest",
    "RetrieveResponse",
    "ToolIn",
    "ToolRouteRequest",
    "ToolRouteResponse",
    "Usage",
]
