"""Which failures of a cloud send are the document's own and permanent (dead-letter material).

A *permanent* failure is one that sending the same document again cannot fix: the input was
refused before any byte left (:class:`InputError`: over the token limit, too many images, a PDF of
too many pages) or Gemini refused the request itself (:class:`CloudRejectedError` with 400, 413 or
422: INVALID_ARGUMENT, payload too large). Everything else is *transient* for the outbox, and never
dead-letters a row, even when it is permanent for the call: a rejected API key (401/403, or 400
"API key not valid") or an unknown model (404) is the configuration's fault, not the document's,
and sending it once the configuration is fixed will work; 429, 5xx, timeouts and an open circuit
pass by themselves.
"""

from __future__ import annotations

from ..errors import CloudAuthError, CloudRejectedError, InputError
from .outbox import ErrorKind

_DOCUMENT_STATUS = frozenset({400, 413, 422})


def error_kind(exc: BaseException) -> ErrorKind:
    """``permanent`` when the document itself can never be accepted, else ``transient``."""
    if isinstance(exc, InputError):
        return "permanent"
    if (
        isinstance(exc, CloudRejectedError)
        and not isinstance(exc, CloudAuthError)
        and (exc.status_code in _DOCUMENT_STATUS or exc.status == "INVALID_ARGUMENT")
    ):
        return "permanent"
    return "transient"


__all__ = ["error_kind"]
