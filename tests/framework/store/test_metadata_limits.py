"""Metadata that would break a Chroma collection for good is refused before any write, and the
collection stays usable after the refusal: read back, write, delete, and reopened by a new process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from edgeroute.framework.documents import Document
from edgeroute.framework.errors import InputError
from edgeroute.framework.store.chroma import VectorStore
from edgeroute.framework.store.collection import (
    MAX_METADATA_KEY_CHARS,
    MAX_METADATA_KEYS,
    MAX_METADATA_VALUE_CHARS,
    check_metadata,
)
from edgeroute.framework.testing.hashing import HashingEmbedder

EMB = HashingEmbedder(64)


def write(col: Any, doc: Document) -> None:
    col.upsert(
        [doc.id],
        EMB.embed_documents([doc.text]),
        space=EMB.space,
        texts=[doc.text],
        metadatas=[doc.metadata],
        content_hashes=[doc.content_hash()],
    )


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({f"k{i}": i for i in range(10_000)}, "10000 keys; at most 1024"),
        ({"k" * (MAX_METADATA_KEY_CHARS + 1): 1}, "key of 257 characters"),
        ({"note": "x" * (MAX_METADATA_VALUE_CHARS + 1)}, "65537 characters"),
        ({"score": float("nan")}, "must be finite"),
        ({"score": float("inf")}, "must be finite"),
    ],
)
def test_check_metadata_refuses_what_chroma_cannot_store(meta: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        check_metadata(meta, "documents[0].metadata")


def test_a_refused_write_leaves_the_collection_usable(tmp_path: Path) -> None:
    store = VectorStore.persistent(tmp_path / "store")
    col = store.create_collection("docs.edge", EMB.space)
    write(col, Document("kept", "A record written before the refused one.", metadata={"lang": "en"}))
    # 10,000 keys in one record made Chroma 1.5 fail every later write ("Error in compaction").
    huge = Document("huge", "too many keys", metadata={f"k{i}": "v" for i in range(10_000)})
    with pytest.raises(InputError, match="at most 1024"):
        write(col, huge)
    # The cap itself is far below Chroma's limit (about 5,460 keys): a record at the cap is stored.
    full = Document(
        "full", "as many keys as allowed", metadata={f"k{i}": i for i in range(MAX_METADATA_KEYS)}
    )
    write(col, full)
    assert len(col.get(["full"])[0].metadata) == MAX_METADATA_KEYS
    write(col, Document("new", "A record written after the refused one."))
    col.delete(["new"])
    assert [r.id for r in col.get(["kept", "huge", "full", "new"], include_vectors=True)] == ["kept", "full"]
    store.close()  # one writer per embedded store: let the new process take it
    # A new process opens the store and reads every record and vector back.
    script = textwrap.dedent(
        f"""
        from edgeroute.framework.store.chroma import VectorStore
        col = VectorStore.persistent({str(tmp_path / "store")!r}).get_collection("docs.edge")
        got = col.get(["kept", "full"], include_vectors=True)
        assert [r.id for r in got] == ["kept", "full"] and all(r.vector is not None for r in got)
        print(col.count())
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "2"
