"""Bench data is an explicit option (``--data DIR``) or ``$EDGEROUTE_DATA``; no development path."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeroute.framework.errors import ConfigurationError
from edgeroute.framework.eval.bench_edge import DATA_ENV, resolve_data_dir


def test_no_data_folder_says_what_to_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_ENV, raising=False)
    with pytest.raises(ConfigurationError, match=r"pass --data DIR .*EDGEROUTE_DATA"):
        resolve_data_dir(None)


def test_the_option_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "opt") == tmp_path / "opt"
    assert resolve_data_dir(None) == tmp_path / "env"


def test_shipped_code_names_no_development_path() -> None:
    root = Path(__file__).resolve().parents[3]
    offenders = [
        str(p.relative_to(root))
        for d in ("framework", "policies", "connectors")
        for p in (root / d).rglob("*.py")
        if "../shared" in p.read_text(encoding="utf-8") or "EDGEROUTE_SHARED" in p.read_text(encoding="utf-8")
    ]
    assert offenders == []
