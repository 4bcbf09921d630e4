"""Exit codes of the ``edgeroute`` command, one meaning each, so scripts can trust them.

====  ==========================  =====================================================================
code  name                        meaning
====  ==========================  =====================================================================
0     ``OK``                      everything asked for is done (indexed on both sides, drained, answered
                                  on the planned route)
1     ``FAILED``                  the command failed and did not do what was asked: the cloud rejected
                                  the API key or a request, the store failed, a privacy guard fired,
                                  a media query could not be answered; nothing half-written is left
2     ``USAGE``                   usage or input error, found before any work: a bad option, a missing
                                  or bad file, an unknown collection, a broken policy file or setting
3     ``EDGE_ONLY``               done at the edge, cloud work queued or failed: documents are in the
                                  edge index but wait in the outbox (cloud offline, failing or absent),
                                  ``sync`` left rows queued, or a query was answered at the edge because
                                  the cloud it wanted did not answer (degraded). Run ``edgeroute sync``
                                  or retry later; nothing is lost
130   (interrupted)               Ctrl-C
====  ==========================  =====================================================================
"""

from __future__ import annotations

from enum import IntEnum

from ..errors import (
    CollectionNotFoundError,
    ConfigurationError,
    EdgeRouteError,
    InputError,
    RoutingError,
    SpaceMismatchError,
)


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    EDGE_ONLY = 3


_USAGE_ERRORS = (InputError, ConfigurationError, CollectionNotFoundError, SpaceMismatchError, RoutingError)


def exit_code_for(exc: EdgeRouteError) -> ExitCode:
    """``USAGE`` for what the caller can fix in the command line or its inputs, else ``FAILED``."""
    return ExitCode.USAGE if isinstance(exc, _USAGE_ERRORS) else ExitCode.FAILED


__all__ = ["ExitCode", "exit_code_for"]
