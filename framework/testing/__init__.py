"""Test doubles shipped for users' own suites: the loopback Gemini emulator, a tiny generated ONNX
model, a hashing embedder and pytest fixtures.

In a ``conftest.py``::

    pytest_plugins = ["edgeroute.framework.testing"]

gives the ``gemini_emulator`` and ``cloud_embedder`` fixtures (defined in ``fixtures``). Only that
needs pytest; the emulator and the doubles do not.
"""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("pytest") is not None:  # the fixtures are for pytest users only
    from .fixtures import cloud_embedder, emulated_gemini, gemini_emulator  # noqa: F401
