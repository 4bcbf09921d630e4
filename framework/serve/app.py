"""The FastAPI application: routes, one error shape, metrics and cancellation middleware, lifespan.

:func:`create_app` takes a loaded :class:`~.service.Service`; ``edgeroute serve`` loads it first
(failing fast on a bad model, store or keys file) and then hands the app to uvicorn.

Logging: one line per request (method, endpoint, status, tenant, milliseconds) on the
``edgeroute.framework.serve.access`` logger; bodies, queries and documents are never logged.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import EdgeRouteError
from . import embeddings, ops, retrieval, tools
from .admission import Admission, send_error
from .errors import ApiError, error_body, from_edgeroute
from .limits import body_too_large
from .metrics import Metrics, endpoint_label
from .service import Service

logger = logging.getLogger(__name__)
access_log = logging.getLogger(__name__.rsplit(".", 1)[0] + ".access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ObserveAndCancel:
    """ASGI middleware: admission, metrics and an access line per request, and cancellation on
    client disconnect.

    The request is admitted on its headers first (:mod:`.admission`: body size, key, rate limit),
    so a refused request is answered without its body being read. Then the body is read, counted
    against the size cap as it arrives (413 past it); then the app runs as a task while the
    connection is watched, and a disconnect before the response is complete cancels the task (its
    queued embedding work is dropped, its cloud call cancelled). Such a request is counted with
    status 499.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, admission: Admission | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        endpoint = endpoint_label(scope.get("path", ""))
        state: dict[str, Any] = scope.setdefault("state", {})
        refused = self.admission.refusal(scope) if self.admission is not None else None
        if refused is not None:
            await send_error(send, refused[0], close=refused[1])
            self._finish(scope, endpoint, state, refused[0].status, t0)
            return
        # Admitted requests in flight, which the batchers read (see Service.in_flight).
        service = self.admission.service if self.admission is not None and "admitted" in state else None
        if service is not None:
            service.in_flight += 1
        try:
            await self._serve(scope, receive, send, endpoint, state, t0)
        finally:
            if service is not None:
                service.in_flight -= 1

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, endpoint: str, state: dict[str, Any], t0: float
    ) -> None:
        """Read the body (counted against the cap), then run the app, cancelled if the client leaves."""
        cap = self.admission.max_body if self.admission is not None else None
        status = {"code": 500, "done": False}
        body: list[Message] = []
        size = 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                self._finish(scope, endpoint, state, 499, t0)
                return
            size += len(msg.get("body", b""))
            if cap is not None and size > cap:  # a chunked body without a length, or a lying one
                body.clear()
                await send_error(send, body_too_large(cap), close=True)
                self._finish(scope, endpoint, state, 413, t0)
                return
            body.append(msg)
            if not msg.get("more_body"):
                break
        gone = asyncio.Event()

        async def replay() -> Message:
            if body:
                return body.pop(0)
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                status["done"] = True
            await send(message)

        task = asyncio.ensure_future(self.app(scope, replay, send_wrapper))

        async def watch() -> None:
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    gone.set()
                    if not status["done"]:
                        task.cancel()
                    return

        watcher = asyncio.ensure_future(watch())
        try:
            await task
        except asyncio.CancelledError:
            if not gone.is_set():
                watcher.cancel()
                raise  # the server itself cancelled us
            status["code"] = 499
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            self._finish(scope, endpoint, state, status["code"], t0)

    def _finish(self, scope: Scope, endpoint: str, state: dict[str, Any], code: int, t0: float) -> None:
        seconds = time.perf_counter() - t0
        route = str(state.get("route", "-"))
        self.metrics.observe(endpoint, route, code, seconds)
        access_log.info(
            "%s %s %d tenant=%s route=%s %.1fms",
            scope.get("method", "-"),
            endpoint,
            code,
            state.get("tenant", "-"),
            route,
            seconds * 1000,
        )


def _json_error(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _json_error(exc)

    @app.exception_handler(EdgeRouteError)
    async def edgeroute_error(request: Request, exc: EdgeRouteError) -> JSONResponse:
        return _json_error(from_edgeroute(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Locations and messages only: pydantic's "input" would echo the caller's text back into logs.
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg', 'invalid')}"
            for e in exc.errors()[:10]
        ]
        return JSONResponse(error_body(400, "invalid_request", "; ".join(problems)), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else "invalid_request"
        return JSONResponse(
            error_body(exc.status_code, code, str(exc.detail)),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The type and the frames, not the message: a library's message may quote the input.
        logger.error(
            "unexpected %s on %s\n%s",
            type(exc).__name__,
            request.url.path,
            "".join(traceback.format_tb(exc.__traceback__)),
        )
        return JSONResponse(
            error_body(500, "internal", f"internal error ({type(exc).__name__})"), status_code=500
        )


def create_app(service: Service, *, tool_defaults: list[Any] | None = None) -> FastAPI:
    """The ASGI app over ``service``; the lifespan runs the background outbox drain and closes the
    service after in-flight requests have finished."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Store, SQLite and audit steps run in the loop's default pool; size it for the requests in
        # flight, not for the core count (they mostly wait on I/O), so they never queue behind each other.
        asyncio.get_running_loop().set_default_executor(
            concurrent.futures.ThreadPoolExecutor(
                max(32, 2 * service.config.max_batch), thread_name_prefix="edgeroute-io"
            )
        )
        service.edge.start()
        drain = asyncio.create_task(service.drain_forever(), name="edgeroute-outbox-drain")
        try:
            yield
        finally:
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain
            await service.aclose()

    app = FastAPI(
        title="edgeroute",
        summary="Private on-device embeddings, routed retrieval and tool routing, OpenAI-compatible.",
        version="1",
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.tool_routers = tools.ToolRouters(service, tool_defaults)
    for module in (embeddings, retrieval, tools, ops):
        app.include_router(module.router)
    _install_handlers(app)
    app.add_middleware(ObserveAndCancel, metrics=service.metrics, admission=Admission(service))
    return app


__all__ = ["ObserveAndCancel", "create_app"]
