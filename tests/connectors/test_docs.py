"""The copy-paste snippets of the connector pages run as written (in order, one namespace per page)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
FENCE = re.compile(r"```python\n(.*?)```", re.DOTALL)


@pytest.mark.parametrize("page", ["langchain.md", "llamaindex.md", "tool-routing.md"])
def test_snippets_run(page: str) -> None:
    blocks = FENCE.findall((DOCS / page).read_text(encoding="utf-8"))
    assert len(blocks) >= 3, f"{page} should carry runnable snippets"
    namespace: dict[str, object] = {"__name__": f"docs_{page.replace('-', '_').removesuffix('.md')}"}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"{page}[{i}]", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the message names the failing snippet
            raise AssertionError(f"snippet {i} of docs/{page} failed: {exc!r}\n{block}") from exc
