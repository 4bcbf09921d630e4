"""Request dependencies: the service, the caller's tenant (401 without a valid key), its rate limit.

They are coroutines on purpose: FastAPI runs plain ``def`` dependencies in a thread pool, two thread
hops per request for work that takes microseconds (a sha256 and a dictionary look-up).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from .errors import ApiError
from .keys import Tenant
from .ratelimit import retry_after_header
from .service import Service


async def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or None


async def get_tenant(request: Request, service: Annotated[Service, Depends(get_service)]) -> Tenant:
    """The key's tenant; 401 for a missing or unknown key, 429 (with Retry-After) over the rate limit."""
    tenant = service.keys.authenticate(_bearer(request))
    if tenant is None:
        raise ApiError(
            401,
            "unauthorized",
            "missing or invalid API key: send 'Authorization: Bearer <key>' with a key from "
            "`edgeroute keys create --tenant NAME`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    request.state.tenant = tenant.name
    wait = service.limiter.acquire(tenant.name, tenant.rate_per_s, tenant.burst)
    if wait > 0:
        raise ApiError(
            429,
            "rate_limited",
            f"tenant {tenant.name!r} is over its rate limit of {tenant.rate_per_s:g} requests/s; "
            f"retry in {wait:.2f} s",
            headers={"Retry-After": retry_after_header(wait)},
        )
    return tenant


ServiceDep = Annotated[Service, Depends(get_service)]
TenantDep = Annotated[Tenant, Depends(get_tenant)]

__all__ = ["ServiceDep", "TenantDep", "get_service", "get_tenant"]
