"""The engine's call checks: a non-finite deadline is refused before any work (it once reached the
audit log as Infinity and answered 500 in the service)."""

from __future__ import annotations

import pytest

from edgeroute.framework.errors import InputError
from edgeroute.framework.router.query import check_call


@pytest.mark.parametrize("deadline", [float("inf"), float("-inf"), float("nan")])
def test_a_non_finite_deadline_is_an_input_error(deadline: float) -> None:
    with pytest.raises(InputError, match="deadline_ms must be a finite number"):
        check_call(10, "internal", "normal", deadline)


def test_a_finite_deadline_or_none_passes() -> None:
    check_call(10, "internal", "normal", 250.0)
    check_call(10, "internal", "normal", None)
