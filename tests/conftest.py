"""Suite-wide options: ``--skip-slow`` leaves out tests that load the real EmbeddingGemma model."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--skip-slow", action="store_true", help="skip tests marked slow (real model)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--skip-slow"):
        return
    skip = pytest.mark.skip(reason="--skip-slow given")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
