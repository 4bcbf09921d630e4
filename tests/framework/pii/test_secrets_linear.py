"""Secret and pattern scanning stays linear in the text's length (issue 18: 2 s per 100 KB before).

Two checks. Structural: every rule regex has no backtracking repeat without an upper bound, and none
starts with a backtracking repeat (gitleaks' generic rule began with a lazy ``[\\w.-]{0,50}?``, so every
position of the text tried 50 prefix lengths). With that, the work per start position is bounded by a
constant of the pattern, whatever the text's length. Behavioural: whitespace-free and adversarial texts
sixteen times longer cost under 64x the CPU time (linear is 16x, quadratic 256x). CPU time of this thread
(``time.thread_time``), not wall time: other processes on a busy machine, and threads other tests left
running in this process, do not count; the best of several runs per size, measured in turns, drops what
cache misses and preemption still add.
"""

from __future__ import annotations

import random
import re
import string
import time
from collections.abc import Callable
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

import pytest

from edgeroute.framework.pii import ds_rules, secrets
from edgeroute.framework.pii.patterns import pattern_spans
from edgeroute.framework.pii.ported_rules import ported_rules
from edgeroute.policies import pii
from edgeroute.policies.config import PiiConfig

_REPEATS = (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT)
_ZERO_WIDTH = (sre_constants.AT, sre_constants.ASSERT, sre_constants.ASSERT_NOT)


def _rules() -> list[tuple[str, re.Pattern[str]]]:
    out = [(kind, rx) for kind, rx in secrets._COMPILED]
    out.append(("generic_secret", secrets._GENERIC))
    out += [(f"detect-secrets:{kind}", rx) for kind, _, rx, _ in ds_rules._COMPILED]
    out.append(("password_assignment", ds_rules._PASSWORD))
    out.extend(pii._API_KEYS)
    out += [("pem", pii._PEM), ("entropy", pii._ENTROPY_CANDIDATE), ("lower_run", pii._LOWER_RUN)]
    out.append(("secret_words", pii._SECRET_WORDS))
    out += [("html_key", pii._HTML_KEY), ("in_url", pii._IN_URL), ("key_body", pii._KEY_BODY_CHARS)]
    # Allowlist regexes read one match (or 800 characters of its line), never the whole text.
    out += [(f"gitleaks:{r.id}", r.rx) for r in ported_rules()[0]]
    return out


def _unbounded_backtracking(parsed: Any) -> list[str]:
    bad: list[str] = []
    for op, av in parsed:
        if op in _REPEATS:
            lo, hi, sub = av
            if hi == sre_constants.MAXREPEAT:
                bad.append(f"{op} {{{lo},}}")
            bad += _unbounded_backtracking(sub)
        elif op == sre_constants.POSSESSIVE_REPEAT:
            bad += _unbounded_backtracking(av[2])
        elif op == sre_constants.SUBPATTERN:
            bad += _unbounded_backtracking(av[3])
        elif op == sre_constants.BRANCH:
            for branch in av[1]:
                bad += _unbounded_backtracking(branch)
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            bad += _unbounded_backtracking(av[1])
    return bad


def _leading_repeat(parsed: Any) -> bool:
    """True when the first consuming element is a repeat that may backtrack over more than one item."""
    for op, av in parsed:
        if op in _ZERO_WIDTH:
            continue
        if op == sre_constants.SUBPATTERN:
            return _leading_repeat(av[3])
        if op == sre_constants.BRANCH:
            return any(_leading_repeat(b) for b in av[1])
        # A fixed count ({3}) never backtracks; a narrow range ({15,16}) tries a few lengths at most.
        return op in _REPEATS and av[1] > max(1, av[0] + 4)
    return False


@pytest.mark.parametrize(("kind", "rx"), _rules(), ids=lambda x: x if isinstance(x, str) else "")
def test_every_rule_has_bounded_work_per_start(kind: str, rx: re.Pattern[str]) -> None:
    parsed = sre_parse.parse(rx.pattern, rx.flags)
    assert _unbounded_backtracking(parsed) == [], f"{kind}: unbounded backtracking repeat in {rx.pattern}"
    assert not _leading_repeat(parsed), f"{kind}: starts with a backtracking repeat: {rx.pattern}"


def _texts(n: int) -> dict[str, str]:
    rnd = random.Random(7)
    return {
        "alnum": "".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(n)),
        "keywords": ("apikey_token=" * (n // 13 + 1))[:n],
        "jwt_pem": (("eyJ" + "a" * 20 + ".-----BEGIN PRIVATE KEY-----") * (n // 50 + 1))[:n],
        # Token shapes made of dotted parts (JWT, Discord), URLs with credentials, npmrc lines, headers.
        "dotted": "".join(rnd.choice(string.ascii_letters + string.digits + "._-:/=@~") for _ in range(n)),
        "eyj_runs": ("eyJ" * (n // 3 + 1))[:n],
        "headers": (("Authorization: Bearer " + "a1B2" * 5 + " //h/:_authToken=") * (n // 60 + 1))[:n],
        "passwords": (('password="' + "a1!" * 40) * (n // 130 + 1))[:n],
    }


def _ratio(fn: Callable[[str], object], small: str, large: str, runs: int = 5) -> float:
    """Best CPU time on ``large`` over best CPU time on ``small``, measured in turns so that whatever
    slows this thread down (cache, frequency) falls on both alike."""
    best = [float("inf"), float("inf")]
    for _ in range(runs):
        for i, text in enumerate((small, large)):
            t0 = time.thread_time()
            fn(text)
            best[i] = min(best[i], time.thread_time() - t0)
    return best[1] / max(best[0], 1e-6)


def test_scanning_time_grows_linearly() -> None:
    cfg = PiiConfig()
    # The large text is the small one sixteen times over, so the same rule keywords occur in both (a rule
    # runs only where its keyword occurs; fresh random text would hold more of them as it grows).
    small = _texts(6_000)
    large = {name: text * 16 for name, text in small.items()}
    checks: list[tuple[str, str, Callable[[str], object]]] = [
        (name, "find_secrets", lambda t: list(secrets.find_secrets(t))) for name in small
    ]
    checks.append(("alnum", "pattern_spans", lambda t: pattern_spans(t, cfg, ("US",))))
    for name, label, fn in checks:
        ratio = _ratio(fn, small[name], large[name], runs=5)
        print(f"{label} on {name}: 16x the text, {ratio:.1f}x the CPU time")
        # Linear is 16x, quadratic 256x: 64x is 4x above linear and 4x below quadratic.
        assert ratio < 64, f"{label} on {name}: 16x the text cost {ratio:.1f}x the CPU time"
