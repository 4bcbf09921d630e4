"""A missing framework says which extra to install, and is both a ConfigurationError and an ImportError."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edgeroute.connectors._compat import MissingExtraError, require
from edgeroute.framework.errors import ConfigurationError


@pytest.mark.parametrize(
    ("module", "extra"), [("langchain", "langchain_core"), ("llamaindex", "llama_index.core")]
)
def test_import_without_the_framework_names_the_extra(module: str, extra: str) -> None:
    code = f"import sys; sys.modules[{extra.split('.')[0]!r}] = None; import edgeroute.connectors.{module}"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode != 0
    assert "MissingExtraError" in proc.stderr
    assert f"pip install 'edgeroute[{module}]'" in proc.stderr


def test_require_error_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "langchain_core", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'edgeroute\[langchain\]'") as info:
        require("langchain_core")
    assert isinstance(info.value, ConfigurationError) and isinstance(info.value, ImportError)
    with pytest.raises(ImportError, match="pip install no_such_pkg_xyz"):
        require("no_such_pkg_xyz")
