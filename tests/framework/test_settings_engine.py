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
