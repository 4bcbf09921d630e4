"""The one exception tree of edgeroute.

Every error a user can meet derives from :class:`EdgeRouteError`. The tree separates
"you called it wrong" from "the world failed", and says which failures are worth a retry::

    EdgeRouteError
    ├── ConfigurationError          bad settings, a broken config file, a missing extra
    │   └── ModelNotFoundError      no model directory could be resolved (lists every place tried)
    ├── ModelIntegrityError         a model file is missing or its sha256 does not match the manifest
    ├── InputError                  rejected before any network call (empty text, 7 images, dims ...)
    ├── SpaceMismatchError          vectors of one embedding space used with a collection of another
    ├── StoreError                  the vector store refused or failed
    │   └── CollectionNotFoundError
    ├── PrivacyViolationError       something tried to send private data to the cloud (a bug guard)
    ├── RoutingError                the policy cannot serve the query (an image query, cloud not allowed)
    └── CloudError                  Gemini answered with an error or could not be reached
        ├── CloudUnavailableError   retryable: 429, 5xx, timeout, dropped connection, circuit open, offline
        └── CloudRejectedError      permanent: 400, 401/403, 404
            └── CloudAuthError      the API key was rejected (401/403, or 400 "API key not valid")

``retryable`` is True exactly on :class:`CloudUnavailableError`.
"""

from __future__ import annotations


class EdgeRouteError(Exception):
    """Base of every edgeroute error."""

    retryable: bool = False


class ConfigurationError(EdgeRouteError):
    """Settings, a config file or an installation are wrong; the message says how to fix them."""


class ModelNotFoundError(ConfigurationError):
    """No model directory could be resolved."""

    def __init__(self, message: str, tried: list[str] | None = None) -> None:
        super().__init__(message)
        self.tried = list(tried or [])


class ModelIntegrityError(EdgeRouteError):
    """A model directory is incomplete or a file does not match its manifest checksum."""


class InputError(EdgeRouteError, ValueError):
    """An input was rejected before anything was computed or sent."""


class SpaceMismatchError(EdgeRouteError):
    """An embedding space does not match the one a collection is bound to."""

    def __init__(self, message: str, expected: str | None = None, got: str | None = None) -> None:
        super().__init__(message)
        self.expected = expected
        self.got = got


class StoreError(EdgeRouteError):
    """The vector store failed or refused an operation."""


class CollectionNotFoundError(StoreError, KeyError):
    """The named collection does not exist in the store."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class PrivacyViolationError(EdgeRouteError):
    """Private data was about to leave the device. Raised by the last guard before the cloud client."""


class RoutingError(EdgeRouteError):
    """The policy cannot serve this request (for example an image query when the cloud is not allowed)."""


class CloudError(EdgeRouteError):
    """The cloud embedder failed."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        status: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.status = status
        self.retry_after = retry_after


class CloudUnavailableError(CloudError):
    """Temporarily unavailable: rate limited, server error, timeout, connection failure, circuit open."""

    retryable = True


class CloudRejectedError(CloudError):
    """The cloud rejected the request permanently (bad request, auth, not found)."""


class CloudAuthError(CloudRejectedError):
    """The API key was rejected: missing, invalid, revoked, or not allowed to use the Gemini API."""


__all__ = [
    "CloudAuthError",
    "CloudError",
    "CloudRejectedError",
    "CloudUnavailableError",
    "CollectionNotFoundError",
    "ConfigurationError",
    "EdgeRouteError",
    "InputError",
    "ModelIntegrityError",
    "ModelNotFoundError",
    "PrivacyViolationError",
    "RoutingError",
    "SpaceMismatchError",
    "StoreError",
]
