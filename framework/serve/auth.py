"""Who is asking: the caller's tenant (401 without a valid key) and its rate limit (429).

:func:`admit` runs on the request's headers alone. The app's middleware calls it before the body is
read (:mod:`.admission`), so a refused request costs a sha256 and a dictionary look-up, never an
upload, a parse or model work. The dependencies are coroutines on purpose: FastAPI runs plain
``def`` dependencies in a thread pool, two thread hops per request for work that takes microseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Request

from .errors import ApiError
from .keys import Tenant
from .ratelimit import retry_after_header
from .service import Service


async def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def bearer(headers: Mapping[str, str]) -> str | None:
    header = headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key") or None


def admit(service: Service, headers: Mapping[str, str]) -> Tenant:
    """The key's tenant, a rate-limit token taken; 401 for a missing or unknown key, 429 (with
    Retry-After) over the rate limit."""
    tenant = service.keys.authenticate(bearer(headers))
    if tenant is None:
        raise ApiError(
            401,
            "unauthorized",
            "missing or invalid API key: send 'Authorization: Bearer <key>' with a key from "
            "`edgeroute keys create --tenant NAME`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    wait = service.limiter.acquire(tenant.name, tenant.rate_per_s, tenant.burst)
    if wait > 0:
        raise RateLimited(tenant, wait)
    return tenant


class RateLimited(ApiError):
    def __init__(self, tenant: Tenant, wait: float) -> None:
        super().__init__(
            429,
            "rate_limited",
            f"tenant {tenant.name!r} is over its rate limit of {tenant.rate_per_s:g} requests/s; "
            f"retry in {wait:.2f} s",
            headers={"Retry-After": retry_after_header(wait)},
        )
        self.tenant = tenant


async def get_tenant(request: Request, service: Annotated[Service, Depends(get_service)]) -> Tenant:
    """The tenant the middleware admitted; admitted here when the app runs without it."""
    admitted = getattr(request.state, "admitted", None)
    if isinstance(admitted, Tenant):
        return admitted
    tenant = admit(service, request.headers)
    request.state.tenant = tenant.name
    return tenant


ServiceDep = Annotated[Service, Depends(get_service)]
TenantDep = Annotated[Tenant, Depends(get_tenant)]

__all__ = ["RateLimited", "ServiceDep", "TenantDep", "admit", "bearer", "get_service", "get_tenant"]
