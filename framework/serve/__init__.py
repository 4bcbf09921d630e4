"""``edgeroute serve``: the engine as an HTTP service for many apps and languages.

OpenAI-compatible embeddings, routed retrieval, ingest and tool routing behind per-tenant API
keys, with micro-batched on-device inference and Prometheus metrics. Needs the ``serve`` extra
(``pip install 'edgeroute[serve]'``); :func:`require_serve` says so when it is missing.

Modules: :mod:`.app` (the FastAPI factory), :mod:`.service` (what one replica holds: model,
store, engines per tenant collection), :mod:`.keys` (tenants and hashed API keys),
:mod:`.batcher` (micro-batching of edge embedding), :mod:`.ratelimit`, :mod:`.metrics`,
:mod:`.schemas` and :mod:`.errors` (the wire format), :mod:`.remote` (an httpx client with
the engine's API).
"""

from __future__ import annotations

import importlib

from ..errors import ConfigurationError


class MissingServeExtraError(ConfigurationError, ImportError):
    """FastAPI, uvicorn or prometheus_client is not installed."""


_NEEDS = ("fastapi", "uvicorn", "prometheus_client")


def require_serve() -> None:
    """Raise :class:`MissingServeExtraError` naming the extra when a serve dependency is missing."""
    for module in _NEEDS:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            raise MissingServeExtraError(
                f"{module} is not installed, so `edgeroute serve` cannot run ({exc}); "
                "install the service with: pip install 'edgeroute[serve]'"
            ) from exc


__all__ = ["MissingServeExtraError", "require_serve"]
