"""What one request may send: body size, query length, document metadata, and JSON without NaN.

Defaults, and why (docs/serve.md has the table):

* **Body: 32 MiB** (``--max-body-mb``, ``EDGEROUTE_MAX_BODY_MB``). The largest legitimate body is a
  document with one inline media part at Gemini's 20 MB inline limit: 26.7 MB as base64, plus its
  JSON. ``/v1/embeddings`` bodies are far smaller in practice: OpenAI's own limit is 300,000 tokens
  per request (about 1.2 MB of text). The product of the schema's caps (2,048 inputs of 100,000
  characters, or 10,000 documents of 100 KB) is 0.2 to 1 GB, which nothing legitimate sends: the
  models read at most 2,048 (edge) and 8,192 (cloud) tokens of an input. The cap is checked before
  the body is read: on ``Content-Length``, and while a chunked body streams in.
* **Query: 32,768 characters** (``--max-query-chars``, ``EDGEROUTE_MAX_QUERY_CHARS``): the cloud
  model reads 8,192 tokens, about 32,000 characters of text; the edge model only 2,048 tokens.
* **Metadata of a document: 1,000 keys**, keys of 256 characters, string values of 65,536 (the
  store's own caps, :mod:`edgeroute.framework.store.collection`, allow 1,024 keys to leave room for
  the engine's keys). Chroma 1.5 broke a collection for good at about 5,460 keys in one record.
* **No NaN or Infinity**: Python's ``json`` reads them, JSON does not have them. They are refused
  with 400 when the body is parsed (:class:`StrictJSONRoute`), wherever they appear.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute

from .errors import ApiError

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_QUERY_CHARS = 32_768
MAX_DOCUMENT_METADATA_KEYS = 1000


def body_too_large(limit: int, got: int | None = None) -> ApiError:
    size = f" of {got:,} bytes" if got is not None else ""
    return ApiError(
        413,
        "too_large",
        f"the request body{size} is over this server's limit of {limit:,} bytes ({limit / 2**20:g} MiB); "
        "send fewer or smaller documents per request, or start the server with a higher --max-body-mb",
    )


def check_query_length(texts: Sequence[str], limit: int, param: str = "query") -> None:
    """400 when the query's text (all its text parts together) is over ``limit`` characters."""
    total = sum(len(t) for t in texts)
    if total > limit:
        raise ApiError(
            400,
            "invalid_request",
            f"{param} has {total:,} characters; the limit is {limit:,} (the models read at most "
            "8,192 tokens of a query): send a shorter query",
            param=param,
        )


def _refuse_constant(name: str) -> Any:
    # An HTTPException, because FastAPI turns any other error raised while parsing the body into a
    # bare "There was an error parsing the body"; the app's handler gives it the one error shape.
    raise HTTPException(
        400,
        f"the JSON body holds {name}, which is not JSON: send a finite number, or null where a field "
        "may be unset",
    )


class StrictJSONRequest(Request):
    """A request whose JSON body may not hold ``NaN``, ``Infinity`` or ``-Infinity``."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = json.loads(await self.body(), parse_constant=_refuse_constant)
        return self._json


class StrictJSONRoute(APIRoute):
    """The route class of every router: bodies are parsed by :class:`StrictJSONRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict


__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_QUERY_CHARS",
    "MAX_DOCUMENT_METADATA_KEYS",
    "StrictJSONRequest",
    "StrictJSONRoute",
    "body_too_large",
    "check_query_length",
]
