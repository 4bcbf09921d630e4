"""Admission before the body is read: size, key and rate limit, from the request's headers alone.

The app's middleware (:class:`~.app.ObserveAndCancel`) asks :meth:`Admission.refusal` before it reads a
byte of the body, and counts the bytes of the body as they arrive against the same cap, so:

* a body whose ``Content-Length`` is over the cap is refused with 413 without being read, and a
  chunked body without a length is refused as soon as it passes the cap: the server never holds more
  than the cap (plus one chunk) of a request;
* a request without a valid key (401) or over its tenant's rate limit (429) is refused without its
  body being read, parsed or validated, and without model work: a flood of refused requests costs
  the tenant's neighbours a header parse, a sha256 and a dictionary look-up each.

An admitted request's tenant goes into the ASGI scope's state (``get_tenant`` returns it without a
second rate-limit token) and into :data:`~.batcher.current_tenant`, by which the micro-batcher shares
model work fairly between tenants.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.datastructures import Headers

from .auth import RateLimited, admit
from .batcher import current_tenant
from .errors import ApiError
from .limits import body_too_large
from .service import Service

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]

# Paths that need an API key; /healthz, /readyz, /metrics and the OpenAPI docs do not.
_KEYED_PREFIX = "/v1/"
# A refused request whose body is larger than this is not drained: the connection is closed instead.
_DRAIN_BYTES = 64 * 1024


class Admission:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.max_body = service.config.max_body_bytes

    def refusal(self, scope: MutableMapping[str, Any]) -> tuple[ApiError, bool] | None:
        """``(error, close_connection)`` for a request refused on its headers, else None (admitted)."""
        headers = Headers(scope=scope)
        length_header = headers.get("content-length")
        length: int | None = None
        if length_header is not None:
            try:
                length = int(length_header)
            except ValueError:
                return ApiError(400, "invalid_request", "Content-Length is not a number"), True
            if length > self.max_body:
                return body_too_large(self.max_body, length), True
        # Close rather than drain when an unread body is large or of unknown length (chunked).
        close = length is None and "chunked" in headers.get("transfer-encoding", "").lower()
        close = close or (length is not None and length > _DRAIN_BYTES)
        if not str(scope.get("path", "")).startswith(_KEYED_PREFIX):
            return None
        state: dict[str, Any] = scope.setdefault("state", {})
        try:
            tenant = admit(self.service, headers)
        except RateLimited as exc:
            state["tenant"] = exc.tenant.name
            return exc, close
        except ApiError as exc:
            return exc, close
        state["tenant"] = tenant.name
        state["admitted"] = tenant
        current_tenant.set(tenant.name)
        return None


async def send_error(send: Send, exc: ApiError, *, close: bool) -> None:
    """The JSON error response, written straight to the ASGI ``send`` (no app, no body read)."""
    body = json.dumps(exc.body()).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in exc.headers.items()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


__all__ = ["Admission", "send_error"]
