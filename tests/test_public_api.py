"""The public surface is exactly what __all__ says, and every name resolves."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["edgeroute.framework", "edgeroute.policies", "edgeroute.connectors"])
def test_every_exported_name_resolves(module: str) -> None:
    mod = importlib.import_module(module)
    for name in mod.__all__:
        assert getattr(mod, name) is not None, name


def test_unknown_name_is_an_attribute_error() -> None:
    import edgeroute.framework as fw

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = fw.Nope


def test_importing_the_package_pulls_in_no_heavy_dependency() -> None:
    code = (
        "import sys, edgeroute.framework, edgeroute.policies; "
        "heavy = [m for m in ('chromadb', 'google.genai', 'onnxruntime', 'torch') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""
