"""One JSON error shape for every endpoint, with stable machine-readable codes.

The body is OpenAI's error envelope, so OpenAI clients surface the message as they do for
OpenAI's own errors: ``{"error": {"code": "privacy.pii", "message": "...", "type": "...",
"param": null}}``. ``code`` is stable (clients branch on it); ``message`` is for people and
never contains the raw query or document text.
"""

from __future__ import annotations

from typing import Any

from ..errors import (
    CloudError,
    CloudRejectedError,
    CloudUnavailableError,
    CollectionNotFoundError,
    ConfigurationError,
    EdgeRouteError,
    InputError,
    PrivacyViolationError,
    RoutingError,
    SpaceMismatchError,
    StoreError,
)

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    499: "client_closed_request",
    501: "not_implemented_error",
    502: "upstream_error",
    503: "unavailable_error",
}

# Every code a response can carry (docs/serve.md lists them).
CODES = {
    "invalid_request": "the body or a parameter is malformed (see message)",
    "unauthorized": "no API key, or a key that is unknown or revoked",
    "not_found": "unknown collection (another tenant's collection looks exactly like this)",
    "model_not_found": "the model is not served here, or this key may not use it",
    "privacy.sensitivity": "the input's sensitivity is above the tenant's cloud ceiling",
    "privacy.pii": "PII was found in the input, so it may not go to the cloud",
    "privacy.guard": "the privacy guard refused a cloud call",
    "budget.exhausted": "the tenant's cloud budget is spent",
    "too_large": "the request body is over the server's size limit (--max-body-mb)",
    "rate_limited": "the tenant's rate limit is exceeded; retry after Retry-After seconds",
    "routing.refused": "the policy cannot serve this query (e.g. media the cloud may not see)",
    "space.mismatch": "the collection was built with another embedding model or dims",
    "cloud.unavailable": "the cloud is offline, its circuit is open, or it timed out",
    "cloud.failed": "the cloud refused or failed the call",
    "store.unavailable": "the vector store cannot be reached or failed",
    "not_implemented": "the operation needs a feature this build does not have",
    "not_ready": "the service is starting or its store is unreachable",
    "internal": "an unexpected error; the server log has the details",
}


class ApiError(Exception):
    """An error with an HTTP status, a stable code, and optional response headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        assert code in CODES, code
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.code, self.message, self.param)


def error_body(status: int, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "type": _TYPES.get(status, "server_error"),
            "param": param,
        }
    }


def from_edgeroute(exc: EdgeRouteError) -> ApiError:
    """Map the library's error tree onto statuses and codes (messages pass through: they name no text)."""
    msg = str(exc)
    if isinstance(exc, CollectionNotFoundError):
        return ApiError(404, "not_found", "collection not found")
    if isinstance(exc, InputError):
        return ApiError(400, "invalid_request", msg)
    if isinstance(exc, PrivacyViolationError):
        return ApiError(403, "privacy.guard", msg)
    if isinstance(exc, RoutingError):
        return ApiError(422, "routing.refused", msg)
    if isinstance(exc, SpaceMismatchError):
        return ApiError(409, "space.mismatch", msg)
    if isinstance(exc, CloudUnavailableError):
        return ApiError(503, "cloud.unavailable", msg)
    if isinstance(exc, CloudRejectedError | CloudError):
        return ApiError(502, "cloud.failed", msg)
    if isinstance(exc, StoreError):
        return ApiError(503, "store.unavailable", msg)
    if isinstance(exc, ConfigurationError):
        return ApiError(500, "internal", msg)
    return ApiError(500, "internal", msg)


__all__ = ["CODES", "ApiError", "error_body", "from_edgeroute"]
