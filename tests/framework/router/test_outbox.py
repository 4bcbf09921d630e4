"""The SQLite outbox: idempotent by content hash, hash-conditional removal, durable across reopen."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edgeroute.framework.documents import Document
from edgeroute.framework.parts import Part
from edgeroute.framework.router.outbox import Outbox, document_from_json, document_to_json

DOC = Document("d1", "hello world", title="t", metadata={"lang": "en", "n": 3}, sensitivity="public")


def test_enqueue_is_idempotent_by_content_hash_and_replaces_changed_documents(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite") as box:
        assert box.enqueue("c", [DOC]) == 1
        assert box.enqueue("c", [DOC]) == 0
        assert box.depth("c") == 1
        changed = Document("d1", "hello again", sensitivity="public")
        assert box.enqueue("c", [changed]) == 1
        assert box.depth() == 1
        assert box.pending("c")[0].document == changed


def test_mark_done_keeps_a_row_whose_document_changed_meanwhile(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite") as box:
        box.enqueue("c", [DOC])
        old_hash = DOC.content_hash()
        box.enqueue("c", [Document("d1", "edited", sensitivity="public")])
        assert box.mark_done("c", [("d1", old_hash)]) == 0
        assert box.depth("c") == 1


def test_rows_survive_reopening_and_the_file_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    with Outbox(path) as box:
        box.enqueue("c", [DOC, Document("d2", "second", sensitivity="public")])
        box.mark_failed("c", ["d2"], "CloudUnavailableError: 503")
    with Outbox(path) as box:
        items = box.pending("c")
        assert [i.document.id for i in items] == ["d1", "d2"]
        assert items[1].attempts == 1 and "503" in (items[1].last_error or "")
        assert box.stats()["by_collection"] == {"c": 2}
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_collections_are_separate_and_discard_ignores_the_hash() -> None:
    with Outbox(None) as box:
        box.enqueue("a", [DOC])
        box.enqueue("b", [DOC])
        assert box.discard("a", ["d1"]) == 1
        assert box.depth("a") == 0 and box.depth("b") == 1


def test_documents_with_media_round_trip_losslessly() -> None:
    doc = Document(
        "m",
        "caption",
        parts=(Part.image(b"\x89PNG\r\n\x1a\nxx"), Part.reference("gs://b/f.pdf", "application/pdf")),
    )
    back = document_from_json(document_to_json(doc))
    assert back == doc and back.content_hash() == doc.content_hash()
