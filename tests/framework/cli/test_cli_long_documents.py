"""`edgeroute index` on a BEIR corpus with a record over the edge model's token limit: exit 2 (an
InputError), the record named, nothing written. The loader does not chunk BEIR records (qrels name them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeroute.framework.cli import app
from edgeroute.framework.errors import InputError
from edgeroute.framework.store.chroma import VectorStore
from edgeroute.framework.testing.tiny_model import build_tiny_model

WORDS = "the river and the sea in the rain with snow and ice on the glacier "


def test_index_refuses_an_over_long_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = build_tiny_model(tmp_path / "tiny", max_tokens=64)
    data = tmp_path / "data"
    data.mkdir()
    records = [
        {"_id": "short", "title": "t", "text": WORDS},
        {"_id": "long-one", "title": "t", "text": WORDS * 8},
    ]
    (data / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    store = tmp_path / "store"
    for var in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "EDGEROUTE_STORE", "EDGEROUTE_EDGE_MODEL"):
        monkeypatch.delenv(var, raising=False)
    args = [
        "index",
        str(data),
        "--collection",
        "notes",
        "--store",
        str(store),
        "--model",
        str(model),
        "--offline",
    ]
    with pytest.raises(InputError, match=r"'long-one' has 128 tokens, over the edge model's 64") as err:
        CliRunner().invoke(app, args, catch_exceptions=False)
    assert "nothing was written" in str(err.value)
    assert not any(n.startswith("notes") for n in VectorStore.persistent(store).list_collections())
