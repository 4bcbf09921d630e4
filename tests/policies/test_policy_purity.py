"""``edgeroute.policies`` stays pure: no I/O, no imports from framework or connectors."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

POLICIES = Path(__file__).parents[2] / "policies"
MODULES = sorted(p for p in POLICIES.glob("*.py") if p.name != "__init__.py")
ALLOWED_TOP = set(
    [
        "__future__",
        "base64",  # decoding only (secret_context checks a JWT's parts)
        "binascii",
        "bisect",
        "collections",
        "dataclasses",
        "enum",
        "functools",
        "ipaddress",
        "json",  # parsing only
        "math",
        "re",
        "tomllib",
        "typing",
        "yaml",
        "pydantic",
        "numpy",
    ]
)
IO_CALLS = {"open", "print", "input", "exec", "eval"}


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_module_is_pure(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: only siblings inside policies
                assert node.module is None or "." not in node.module, (path.name, node.module)
                continue
            assert node.module is not None and node.module.split(".")[0] in ALLOWED_TOP, (
                path.name,
                node.module,
            )
        elif isinstance(node, ast.Import):
            for alias in node.names:
                assert alias.name.split(".")[0] in ALLOWED_TOP, (path.name, alias.name)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in IO_CALLS, (path.name, node.func.id)
