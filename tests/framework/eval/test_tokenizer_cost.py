"""The tokenizer cost probe runs on a small data folder (Gemma's tokenizer.model, no model weights)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edgeroute.framework.edge.export.compact_file import build
from edgeroute.framework.edge.tokenizer import COMPACT_FILE, SENTENCEPIECE_FILE
from edgeroute.framework.eval.tokenizer_cost import memory, timing

pytest.importorskip("sentencepiece")


def _sp_file() -> Path | None:
    for c in (
        os.environ.get("EDGEROUTE_EDGE_MODEL"),
        str(Path.home() / ".cache" / "edgeroute" / "models" / "embeddinggemma-300m"),
        str(Path.home() / ".cache" / "edgeroute-dev" / "embeddinggemma-300m"),
    ):
        if c and (Path(c) / SENTENCEPIECE_FILE).is_file():
            return Path(c) / SENTENCEPIECE_FILE
    return None


SP = _sp_file()


@pytest.mark.skipif(SP is None, reason="no Gemma tokenizer.model here")
def test_memory_and_timing_report_both_tokenizers(tmp_path: Path) -> None:
    assert SP is not None
    model = tmp_path / "model"
    model.mkdir()
    (model / SENTENCEPIECE_FILE).symlink_to(SP)
    build(SP, model / COMPACT_FILE)
    sci = tmp_path / "data" / "scifact"
    sci.mkdir(parents=True)
    for part, text in (
        ("queries.jsonl", "what causes dehydration?"),
        ("corpus.jsonl", "Glaciers store fresh water. " * 20),
    ):
        (sci / part).write_text(
            "".join(json.dumps({"text": f"{text} {i}"}) + "\n" for i in range(5)), encoding="utf-8"
        )
    mem = memory(model, sci / "corpus.jsonl")
    assert set(mem) == {"compact", "sentencepiece"}
    assert [r["step"] for r in mem["compact"]] == [
        "load + one text",
        "30 short queries",
        "5 abstracts, offsets",
    ]
    assert mem["compact"][-1]["peak_mb"] < mem["sentencepiece"][-1]["peak_mb"]
    cpu = timing(model, tmp_path / "data", 5, rounds=1)
    assert set(cpu) == {"query", "query, offsets", "abstract", "abstract, offsets"}
    assert all(v > 0 for row in cpu.values() for v in row.values())
