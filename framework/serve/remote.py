"""``RemoteEngine``: the engine's retrieve/ingest API over HTTP, against ``edgeroute serve``.

Drop-in where a :class:`~edgeroute.framework.router.engine.HybridEngine` is expected by the
LangChain and LlamaIndex retrievers: the same ``retrieve``/``aretrieve``/``ingest``/``aingest``
signatures, the same result types, the same exceptions (an HTTP error's code maps back to the
library's error tree). One async body per operation; the sync methods are its
:func:`edgeroute.framework.aio.syncify` twins. httpx clients are bound to an event loop, so one is kept
per loop (the caller's, and the portal's for sync calls).

Only httpx is needed on the client side (a core dependency): not FastAPI, not the model.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from ...policies.decision import Reason, Route, RouteDecision
from ..aio import run_sync, syncify
from ..documents import Document, Hit, RetrievalResult
from ..errors import (
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
from ..parts import Part
from ..router.engine import IngestReport, SyncReport
from ..store.chroma import validate_logical_name


class ServiceError(EdgeRouteError):
    """An error answer of the service that has no closer match in the library's tree."""

    def __init__(self, message: str, *, status: int, code: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after_s = retry_after_s


_BY_STATUS: dict[int, type[EdgeRouteError]] = {
    400: InputError,
    413: InputError,  # the body is over the server's --max-body-mb: send less per request
    404: CollectionNotFoundError,
    409: SpaceMismatchError,
    422: RoutingError,
}


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        err = response.json()["error"]
        code, message = str(err["code"]), str(err["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "internal", response.text[:200]
    status = response.status_code
    text = f"{message} (HTTP {status}, {code})"
    if status == 401:
        raise ConfigurationError(f"API key rejected by the service: {text}")
    if status == 403 and code.startswith("privacy."):
        raise PrivacyViolationError(text)
    if status == 503 and code.startswith("cloud."):
        raise CloudUnavailableError(text)
    if status == 503 and code.startswith("store."):
        raise StoreError(text)
    cls = _BY_STATUS.get(status)
    if cls is not None:
        raise cls(text)
    retry = response.headers.get("retry-after")
    raise ServiceError(text, status=status, code=code, retry_after_s=float(retry) if retry else None)


def _part(p: Part) -> dict[str, Any]:
    if p.text_value is not None:
        return {"text": p.text_value}
    if p.data is not None:
        return {"data": base64.b64encode(p.data).decode("ascii"), "mime_type": p.mime_type}
    return {"uri": p.uri, "mime_type": p.mime_type}


def _decision(d: Mapping[str, Any]) -> RouteDecision:
    return RouteDecision(
        Route(d["route"]),
        tuple(Reason(r["code"], r["message"]) for r in d.get("reasons", ())),
        degraded=bool(d.get("degraded", False)),
        redact=bool(d.get("redact", False)),
    )


def _known(cls: type[Any], data: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


class RemoteEngine:
    """A collection served by ``edgeroute serve`` at ``base_url``, used with the API key ``api_key``."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        collection: str,
        *,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigurationError(f"base_url {base_url!r} must start with http:// or https://")
        if not api_key:
            raise ConfigurationError(
                "api_key is empty: create one with `edgeroute keys create --tenant NAME`"
            )
        self.base_url = base_url.rstrip("/")
        self.name = validate_logical_name(collection)
        self.timeout_s = timeout_s
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._transport = transport
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:  # the key stays out of reprs and logs
        return f"RemoteEngine({self.base_url!r}, collection={self.name!r})"

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=self._headers,
                timeout=self.timeout_s,
                transport=self._transport,
            )
            self._clients[loop] = client
        return client

    async def _call(self, method: str, path: str, body: Mapping[str, Any]) -> Any:
        try:
            response = await self._client().request(method, path, json=body)
        except httpx.TimeoutException as exc:
            raise ServiceError(
                f"the service at {self.base_url} did not answer within {self.timeout_s:g} s",
                status=504,
                code="timeout",
            ) from exc
        except httpx.TransportError as exc:
            raise ServiceError(
                f"cannot reach the service at {self.base_url} ({type(exc).__name__}): is `edgeroute serve` running?",
                status=503,
                code="unreachable",
            ) from exc
        _raise_for(response)
        return response.json()

    # -- retrieve -------------------------------------------------------------------------------------

    async def aretrieve(
        self,
        query: str | Sequence[Part],
        k: int = 10,
        *,
        sensitivity: str = "internal",
        stakes: str = "normal",
        deadline_ms: float | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> RetrievalResult:
        """:meth:`HybridEngine.aretrieve`, answered by the service."""
        q: Any = query if isinstance(query, str) else [_part(p) for p in query]
        body: dict[str, Any] = {
            "collection": self.name,
            "query": q,
            "k": k,
            "sensitivity": sensitivity,
            "stakes": stakes,
        }
        if deadline_ms is not None:
            body["deadline_ms"] = deadline_ms
        if where is not None:
            body["where"] = dict(where)
        data = await self._call("POST", "/v1/retrieve", body)
        return RetrievalResult(
            hits=[Hit(**_known(Hit, h)) for h in data["hits"]],
            decision=_decision(data["decision"]),
            audit=dict(data.get("audit") or {}),
        )

    retrieve = syncify(aretrieve)

    # -- ingest and delete -------------------------------------------------------------------------------

    async def aingest(self, documents: Sequence[Document]) -> IngestReport:
        """:meth:`HybridEngine.aingest`: text, title, metadata, sensitivity and media parts (base64 or uri)."""
        if isinstance(documents, Document):
            raise InputError("ingest takes a list of Documents; wrap the one document in a list")
        docs = list(documents)
        bad = next((i for i, d in enumerate(docs) if not isinstance(d, Document)), None)
        if bad is not None:
            raise InputError(f"item {bad} is a {type(docs[bad]).__name__}, expected edgeroute Document")
        body = {
            "collection": self.name,
            "documents": [
                {
                    "id": d.id,
                    "text": d.text,
                    "title": d.title,
                    "metadata": dict(d.metadata),
                    "sensitivity": d.sensitivity,
                    "parts": [_part(p) for p in d.parts],
                }
                for d in docs
            ],
        }
        data = await self._call("POST", "/v1/documents", body)
        cloud = SyncReport(**_known(SyncReport, data.get("cloud") or {}))
        return IngestReport(**{**_known(IngestReport, data), "cloud": cloud})

    ingest = syncify(aingest)

    async def adelete(self, ids: Sequence[str]) -> dict[str, Any]:
        """Delete documents by id (needs a service whose engine can delete)."""
        if isinstance(ids, str):
            raise InputError("delete takes a list of ids; wrap the one id in a list")
        data: dict[str, Any] = await self._call(
            "DELETE", "/v1/documents", {"collection": self.name, "ids": list(ids)}
        )
        return data

    delete = syncify(adelete)

    # -- lifecycle -------------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the client of the running loop (others close with :meth:`close` or at exit)."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    def close(self) -> None:
        async def close_portal_client() -> None:
            await self.aclose()

        run_sync(close_portal_client())

    def __enter__(self) -> RemoteEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["RemoteEngine", "ServiceError"]
