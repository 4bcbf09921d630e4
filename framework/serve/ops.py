"""``/healthz`` (the process answers), ``/readyz`` (model loaded, store reachable) and ``/metrics``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from .auth import ServiceDep
from .errors import error_body
from .limits import StrictJSONRoute
from .metrics import CONTENT_TYPE

router = APIRouter(tags=["operations"], route_class=StrictJSONRoute)


@router.get("/healthz")
async def healthz() -> dict[str, Any]:
    """Liveness: 200 while the process serves requests."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(service: ServiceDep) -> Response:
    """Readiness: 200 when the model is loaded, the store answers and every collection in use can be
    counted, else 503 with the reason. Also reports the cloud circuit breaker's state and the outbox
    depth. Liveness is /healthz: a broken collection makes the replica unready, not dead."""
    ok, checks = await service.readiness()
    if ok:
        return JSONResponse({"status": "ready", **checks})
    if service.closing:
        reason = "shutting down"
    elif checks["store"] != "ok":
        reason = f"store {checks['store']}"
    else:
        names = ", ".join(sorted(checks["collections"]["unusable"]))
        reason = f"collections unusable: {names} (the store refuses to count them; see 'collections')"
    body = error_body(503, "not_ready", "not ready: " + reason)
    return JSONResponse({**body, "status": "not_ready", **checks}, status_code=503)


@router.get("/metrics")
async def metrics(service: ServiceDep) -> Response:
    """Prometheus text format."""
    return Response(service.metrics.render(), media_type=CONTENT_TYPE)


__all__ = ["router"]
