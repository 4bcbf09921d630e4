"""The emulator's wire format: request paths, validation of embedding requests, error bodies,
token accounting, and what the request log keeps of each part."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from ..cloud.media import (
    MAX_DIMS,
    MAX_IMAGES,
    MAX_INPUT_TOKENS,
    MEDIA_TOKENS,
    MIN_DIMS,
    image_kind,
    mp4_duration_s,
    pdf_page_count,
)
from ..digest import sha256_bytes

TextVectors = Callable[[list[str], int], npt.NDArray[np.float32]]
MediaVector = Callable[[str, bytes], npt.NDArray[np.float32]]

PATH = re.compile(r"^/(v1|v1beta)/models/([^/:]+):(batchEmbedContents|embedContent)$")
_MIME_MODALITY = {
    "image/png": "IMAGE",
    "image/jpeg": "IMAGE",
    "audio/mpeg": "AUDIO",
    "audio/mp3": "AUDIO",
    "audio/wav": "AUDIO",
    "audio/x-wav": "AUDIO",
    "video/mp4": "VIDEO",
    "video/quicktime": "VIDEO",
    "application/pdf": "DOCUMENT",
}
# Token accounting per the public docs' rules of thumb (the real figures differ; only the shape matters).
_VIDEO_TOKENS_PER_S = 263
_AUDIO_TOKENS_PER_S = 32
MESSAGES = {
    429: (
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details. "
        "For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
    ),
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    ),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
}


class BadRequest(Exception):
    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code, self.status, self.message = code, status, message


def get_field(d: dict[str, Any], camel: str, snake: str) -> Any:
    return d[camel] if camel in d else d.get(snake)


def b64decode(data: str) -> bytes:
    s = data.strip().replace("-", "+").replace("_", "/")
    s += "=" * (-len(s) % 4)
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(
            400, "INVALID_ARGUMENT", f"Invalid value at 'inline_data.data' (TYPE_BYTES), {exc}"
        ) from exc


def embed_requests(
    reqs: list[Any], model: str, text_vectors: TextVectors, media_vector: MediaVector
) -> tuple[list[list[float]], dict[str, int]]:
    """Validate each request of a batch and embed it; returns the vectors and tokens by modality.

    Raises :class:`BadRequest` with the status and message Gemini gives for the first bad request.
    """
    tokens = {"TEXT": 0, "IMAGE": 0, "AUDIO": 0, "VIDEO": 0, "DOCUMENT": 0}
    # Per request: list of (weight-vector-source) entries; texts are embedded in one batch.
    texts: list[str] = []
    plans: list[tuple[int, list[tuple[str, int | npt.NDArray[np.float32]]]]] = []
    for i, req in enumerate(reqs):
        if not isinstance(req, dict):
            raise BadRequest(
                400,
                "INVALID_ARGUMENT",
                f"* BatchEmbedContentsRequest.requests[{i}]: expected an object\n",
            )
        req_model = req.get("model")
        if req_model is not None and str(req_model).removeprefix("models/") != model:
            raise BadRequest(
                400,
                "INVALID_ARGUMENT",
                f"* BatchEmbedContentsRequest.requests[{i}].model: model {req_model} does not match the "
                f"batch model models/{model}\n",
            )
        dims = get_field(req, "outputDimensionality", "output_dimensionality")
        if dims is None:
            dims = MAX_DIMS
        if not isinstance(dims, int) or not MIN_DIMS <= dims <= MAX_DIMS:
            raise BadRequest(
                400,
                "INVALID_ARGUMENT",
                f"* BatchEmbedContentsRequest.requests[{i}].output_dimensionality: must be between "
                f"{MIN_DIMS} and {MAX_DIMS}, got {dims}\n",
            )
        content = req.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list) or not parts:
            raise BadRequest(
                400,
                "INVALID_ARGUMENT",
                f"* BatchEmbedContentsRequest.requests[{i}].content.parts: must not be empty\n",
            )
        entries: list[tuple[str, int | npt.NDArray[np.float32]]] = []
        images = 0
        text_tokens = 0
        for j, part in enumerate(parts):
            where = f"requests[{i}].content.parts[{j}]"
            if not isinstance(part, dict):
                raise BadRequest(400, "INVALID_ARGUMENT", f"* {where}: expected an object\n")
            inline = get_field(part, "inlineData", "inline_data")
            file_data = get_field(part, "fileData", "file_data")
            if "text" in part:
                text = str(part["text"])
                tokens["TEXT"] += max(1, len(text) // 4)
                text_tokens += max(1, len(text) // 4)
                entries.append(("text", len(texts)))
                texts.append(text)
            elif isinstance(inline, dict):
                mime = str(get_field(inline, "mimeType", "mime_type") or "")
                modality = _MIME_MODALITY.get(mime)
                if modality is None:
                    raise BadRequest(400, "INVALID_ARGUMENT", f"* {where}: Unsupported MIME type: {mime}\n")
                data = b64decode(str(inline.get("data") or ""))
                if not data:
                    raise BadRequest(
                        400, "INVALID_ARGUMENT", f"* {where}.inline_data.data: must not be empty\n"
                    )
                if modality == "IMAGE":
                    images += 1
                    if image_kind(data) is None:
                        raise BadRequest(
                            400, "INVALID_ARGUMENT", f"* {where}: Provided image is not valid.\n"
                        )
                tokens[modality] += media_tokens(modality, data)
                entries.append(("media", media_vector(mime, data)))
            elif isinstance(file_data, dict):
                mime = str(get_field(file_data, "mimeType", "mime_type") or "")
                uri = str(get_field(file_data, "fileUri", "file_uri") or "")
                modality = _MIME_MODALITY.get(mime)
                if modality is None or not uri:
                    raise BadRequest(
                        400,
                        "INVALID_ARGUMENT",
                        f"* {where}: file_data needs file_uri and a supported mime_type\n",
                    )
                images += modality == "IMAGE"
                tokens[modality] += MEDIA_TOKENS
                entries.append(("media", media_vector(mime, uri.encode())))
            else:
                raise BadRequest(
                    400, "INVALID_ARGUMENT", f"* {where}: a part needs text, inline_data or file_data\n"
                )
        if text_tokens > MAX_INPUT_TOKENS:
            # One input over the model's limit is refused, not truncated (the Gemini API's answer for
            # over-long input; its exact wording for embeddings is unconfirmed).
            raise BadRequest(
                400,
                "INVALID_ARGUMENT",
                f"* BatchEmbedContentsRequest.requests[{i}].content: The input token count "
                f"({text_tokens}) exceeds the maximum number of tokens allowed ({MAX_INPUT_TOKENS}).\n",
            )
        if images > MAX_IMAGES:
            raise BadRequest(
                400,
                "INVALID_ARGUMENT",
                f"* BatchEmbedContentsRequest.requests[{i}]: at most {MAX_IMAGES} images are allowed "
                f"per request, got {images}\n",
            )
        plans.append((dims, entries))
    top = max(d for d, _ in plans)
    text_vecs = text_vectors(texts, top)
    vectors: list[list[float]] = []
    for dims, entries in plans:
        acc = np.zeros(top, dtype=np.float32)
        for _kind, ref in entries:
            acc += text_vecs[ref] if isinstance(ref, int) else ref[:top]
        v = acc[:dims]
        norm = float(np.linalg.norm(v)) or 1.0
        vectors.append((v / norm).round(7).tolist())
    return vectors, tokens


def media_tokens(modality: str, data: bytes) -> int:
    if modality == "IMAGE":
        return MEDIA_TOKENS
    if modality == "DOCUMENT":
        return MEDIA_TOKENS * max(1, pdf_page_count(data))
    if modality == "VIDEO":
        return int(_VIDEO_TOKENS_PER_S * max(1.0, mp4_duration_s(data) or 1.0))
    # WAV: 16-bit mono 16 kHz is 32 kB/s; good enough for a token estimate.
    return int(_AUDIO_TOKENS_PER_S * max(1.0, len(data) / 32_000))


def status_body(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


def peek_parts(raw: bytes) -> list[list[dict[str, Any]]]:
    """What each request in the body carried (text, MIME types, byte counts, sha256), for the record."""
    try:
        body = json.loads(raw or b"{}")
    except json.JSONDecodeError:
        return []
    reqs = body.get("requests") if isinstance(body, dict) and "requests" in body else [body]
    out: list[list[dict[str, Any]]] = []
    for req in reqs if isinstance(reqs, list) else []:
        content = req.get("content") if isinstance(req, dict) else None
        parts = content.get("parts") if isinstance(content, dict) else None
        log: list[dict[str, Any]] = []
        for part in parts if isinstance(parts, list) else []:
            if not isinstance(part, dict):
                continue
            inline = get_field(part, "inlineData", "inline_data")
            file_data = get_field(part, "fileData", "file_data")
            if "text" in part:
                log.append({"kind": "text", "text": str(part["text"])})
            elif isinstance(inline, dict):
                try:
                    data = b64decode(str(inline.get("data") or ""))
                except BadRequest:
                    data = b""
                log.append(
                    {
                        "kind": "inline_data",
                        "mime_type": get_field(inline, "mimeType", "mime_type"),
                        "bytes": len(data),
                        "sha256": sha256_bytes(data),
                    }
                )
            elif isinstance(file_data, dict):
                log.append(
                    {
                        "kind": "file_data",
                        "mime_type": get_field(file_data, "mimeType", "mime_type"),
                        "uri": get_field(file_data, "fileUri", "file_uri"),
                    }
                )
        out.append(log)
    return out
