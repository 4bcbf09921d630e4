"""One BLAS thread for the small matrix products that run beside the edge model.

ONNX Runtime's intra-op pool already takes every core, and its threads spin for a while after each
run. numpy's OpenBLAS starts a pool of its own, one thread per core, for any product above a
minimal size; when a core is busy those threads wait on each other, and a product that takes
0.26 ms alone took 48 ms (the PII head's 27 x 1536 by 1536 x 128 projection, OpenBLAS 0.3.31, 2
cores, one core busy). With one BLAS thread the same product takes about 1 ms whatever the load.

:func:`one_blas_thread` limits BLAS to one thread while any caller is inside it. The limit is
process-wide (OpenBLAS has one setting), so it is reference-counted: the first caller in sets it,
the last one out restores the previous value.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_inside = 0
_controller: Any = None
_limiter: Any = None
_unavailable = False


def _get_controller() -> Any:
    global _controller, _unavailable
    if _controller is None and not _unavailable:
        try:
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
        except Exception as exc:  # no threadpoolctl, or a BLAS it cannot drive: run unlimited
            logger.debug("BLAS thread limit unavailable: %s", exc)
            _unavailable = True
    return _controller


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block with numpy's BLAS limited to one thread (a no-op where that cannot be set)."""
    global _inside, _limiter
    with _lock:
        controller = _get_controller()
        if controller is not None and _inside == 0:
            _limiter = controller.limit(limits=1, user_api="blas")
        _inside += 1
    try:
        yield
    finally:
        with _lock:
            _inside -= 1
            if _inside == 0 and _limiter is not None:
                _limiter.restore_original_limits()
                _limiter = None


__all__ = ["one_blas_thread"]
