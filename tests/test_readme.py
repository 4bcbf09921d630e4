"""The README's Python snippet runs as written (real model, emulated Gemini)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgeroute.framework.testing.emulator import GeminiEmulator

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_readme_snippet_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    match = re.search(r"## Using it\n\n```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert match is not None, "README lost its 'Using it' snippet"
    monkeypatch.chdir(tmp_path)
    with GeminiEmulator() as emu:
        monkeypatch.setenv("GEMINI_API_KEY", "readme-key")
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emu.base_url)
        exec(compile(match.group(1), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert out.startswith("edge") and " a" in out
