"""``build_engine`` owns what it opens: the audit log, the cache and the outbox are closed on exit,
also when the body raises."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeroute.framework.settings import build_engine, resolve_settings


def _settings(tmp_path: Path) -> object:
    return resolve_settings(
        store=tmp_path / "store",
        collection="notes",
        edge="hashing",
        audit=tmp_path / "audit.jsonl",
        cache=tmp_path / "cache.sqlite",
        env={},
    )


def test_build_engine_closes_the_audit_log_cache_and_outbox(tmp_path: Path) -> None:
    with build_engine(_settings(tmp_path)) as engine:  # type: ignore[arg-type]
        audit, cache, outbox = engine.audit, engine.cache, engine.outbox
        assert audit._fh is not None and cache is not None and cache._db is not None
    assert audit._fh is None and cache._db is None
    with pytest.raises(Exception):  # noqa: B017  (any use of a closed outbox fails)
        outbox.depth("notes")


def test_build_engine_closes_them_when_the_body_raises(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), build_engine(_settings(tmp_path)) as engine:  # type: ignore[arg-type]
        audit = engine.audit
        raise RuntimeError("boom")
    assert audit._fh is None


def test_reindexing_unchanged_documents_loads_no_onnx_session(tmp_path: Path) -> None:
    """The engine's edge model is lazy: a run with nothing to embed never creates the ONNX session."""
    from edgeroute.framework.documents import Document
    from edgeroute.framework.testing.tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    settings = resolve_settings(
        store=tmp_path / "store",
        collection="notes",
        model_dir=model,
        offline=True,
        audit=tmp_path / "audit.jsonl",
        cache=tmp_path / "cache.sqlite",
        env={},
    )
    docs = [Document(f"d{i}", f"the cat sat on the mat {i}", sensitivity="public") for i in range(3)]
    with build_engine(settings) as engine:
        assert engine.edge.loaded == {"tokenizer": False, "session": False}  # type: ignore[attr-defined]
        assert engine.ingest(docs).edge_written == 3
        assert engine.edge.loaded["session"]  # type: ignore[attr-defined]
    with build_engine(settings) as engine:
        report = engine.ingest(docs)
        assert report.edge_written == 0 and report.edge_unchanged == 3
        assert engine.edge.loaded["session"] is False  # type: ignore[attr-defined]
