"""Store queries batched across threads give exactly the hits of single queries."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgeroute.framework.documents import Document
from edgeroute.framework.errors import InputError
from edgeroute.framework.serve.querybatch import BatchedCollection, BatchingStore
from edgeroute.framework.store.chroma import VectorStore
from edgeroute.framework.testing.hashing import HashingEmbedder

emb = HashingEmbedder(64)
DOCS = [
    Document(f"d{i}", f"note {i} about {w}", title=f"T{i}")
    for i, w in enumerate(["shoes", "coffee", "bikes", "tea", "maps"] * 8)
]


@pytest.fixture
def stores(tmp_path: Path) -> tuple[VectorStore, BatchingStore]:
    plain = VectorStore.persistent(tmp_path / "s")
    col = plain.create_collection("notes.edge", emb.space)
    col.upsert(
        [d.id for d in DOCS],
        emb.embed_documents([d.text for d in DOCS]),
        space=emb.space,
        texts=[d.text for d in DOCS],
        metadatas=[{"title": d.title or "", "n": i} for i, d in enumerate(DOCS)],
        content_hashes=[d.content_hash() for d in DOCS],
    )
    return plain, BatchingStore(plain, max_batch=8, max_wait_ms=20)


def test_threaded_queries_share_calls_and_match_single_queries(
    stores: tuple[VectorStore, BatchingStore],
) -> None:
    plain, batching = stores
    col = batching.get_collection("notes.edge")
    assert isinstance(col, BatchedCollection)
    queries = [f"which {w} note" for w in ["shoes", "coffee", "bikes", "tea", "maps"] * 4]
    vecs = emb.embed_queries(queries)
    out: dict[int, list] = {}

    def one(i: int) -> None:
        out[i] = col.query(vecs[i], 3 + i % 3, space=emb.space)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(queries))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ref = plain.get_collection("notes.edge")
    doc_vecs = emb.embed_documents([d.text for d in DOCS])
    for i, v in enumerate(vecs):
        want = ref.query(v, 3 + i % 3, space=emb.space)
        # The same scores in the same order (equal scores may come in either order) ...
        np.testing.assert_allclose([h.score for h in out[i]], [h.score for h in want], atol=1e-5)
        assert [h.rank for h in out[i]] == [h.rank for h in want]
        # ... and each hit is what it claims: its own record, with its true cosine.
        for h in out[i]:
            j = int(h.id[1:])
            assert h.title == f"T{j}" and h.metadata == {"title": f"T{j}", "n": j} and h.text == DOCS[j].text
            assert abs(h.score - float(doc_vecs[j] @ v)) < 1e-4
    stats = batching.stats()
    assert stats["queries"] == len(queries) and stats["batches"] < len(queries)


def test_filters_and_bad_input_go_the_plain_way(stores: tuple[VectorStore, BatchingStore]) -> None:
    _, batching = stores
    col = batching.get_collection("notes.edge")
    hits = col.query(emb.embed_queries(["shoes"])[0], 5, space=emb.space, where={"n": 0})
    assert [h.id for h in hits] == ["d0"]
    with pytest.raises(InputError, match="shape"):
        col.query(np.zeros(3, dtype=np.float32), 2, space=emb.space)
    with pytest.raises(InputError, match="positive"):
        col.query(emb.embed_queries(["x"])[0], 0, space=emb.space)
    assert batching.stats()["queries"] == 0


def test_a_lone_query_in_flight_does_not_wait_and_a_coming_one_is_waited_for(tmp_path: Path) -> None:
    plain = VectorStore.persistent(tmp_path / "s")
    col = plain.create_collection("notes.edge", emb.space)
    col.upsert(
        [d.id for d in DOCS[:3]],
        emb.embed_documents([d.text for d in DOCS[:3]]),
        space=emb.space,
        texts=[d.text for d in DOCS[:3]],
        content_hashes=[d.content_hash() for d in DOCS[:3]],
    )
    in_flight = [1]
    batching = BatchingStore(plain, max_batch=8, max_wait_ms=1000, in_flight=lambda: in_flight[0])
    bcol = batching.get_collection("notes.edge")
    v = emb.embed_queries(["shoes"])[0]
    t0 = time.perf_counter()
    hits = bcol.query(v, 10, space=emb.space)  # k over the record count: what there is
    assert time.perf_counter() - t0 < 1.0  # not the 1 s window: the slack a loaded machine needs
    assert sorted(h.id for h in hits) == ["d0", "d1", "d2"]
    # Two requests in flight: the first waits for the second, and both share one Chroma call that
    # runs as soon as the second arrives.
    in_flight[0] = 2
    out: list[list[str]] = []
    first = threading.Thread(target=lambda: out.append([h.id for h in bcol.query(v, 2, space=emb.space)]))
    t0 = time.perf_counter()
    first.start()
    time.sleep(0.1)
    out.append([h.id for h in bcol.query(v, 2, space=emb.space)])
    first.join()
    assert time.perf_counter() - t0 < 1.0  # under the window: it was not waited out
    assert out[0] == out[1] and len(out[0]) == 2
    assert batching.stats() == {"batches": 2, "queries": 3}
    empty = batching.create_collection("empty.edge", emb.space)
    assert empty.query(v, 5, space=emb.space) == []
