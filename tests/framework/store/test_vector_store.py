"""The Chroma vector store, against an embedded PersistentClient and a real `chroma run` server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from server_helpers import chroma_run

from edgeroute.framework.documents import Document
from edgeroute.framework.errors import (
    CollectionNotFoundError,
    InputError,
    SpaceMismatchError,
    StoreError,
)
from edgeroute.framework.serve.server import free_port
from edgeroute.framework.store.chroma import (
    CONTENT_HASH_KEY,
    Collection,
    VectorStore,
    index_collection_name,
    validate_collection_name,
    validate_logical_name,
)
from edgeroute.framework.testing.hashing import HashingEmbedder

DOCS = [
    Document(
        "d1",
        "Dehydration is caused by losing more fluid than you take in.",
        metadata={"lang": "en", "year": 2020},
    ),
    Document("d2", "Die Katze schläft auf dem warmen Sofa.", metadata={"lang": "de", "year": 2018}),
    Document(
        "d3",
        "Photosynthesis converts light into chemical energy in plants.",
        metadata={"lang": "en", "year": 2022},
    ),
    Document("d4", "Der Zug nach Berlin hat heute Verspätung.", metadata={"lang": "de", "year": 2023}),
]


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A real `chroma run` on loopback for the whole session."""
    data = tmp_path_factory.mktemp("chroma-server")
    with chroma_run(data / "db", data / "server.log") as port:
        yield "127.0.0.1", port


@pytest.fixture(params=["persistent", pytest.param("server", marks=pytest.mark.server)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> VectorStore:
    if request.param == "server":
        host, port = request.getfixturevalue("chroma_server")
        return VectorStore.http(host, port)
    return VectorStore.persistent(tmp_path / "store")


@pytest.fixture
def name() -> str:
    # The server is shared by the session: every test gets collection names of its own.
    return f"t{uuid.uuid4().hex[:12]}.edge"


def index(col: Collection, emb: HashingEmbedder, docs: list[Document]) -> int:
    """What `edgeroute index` does: embed and write only what changed. Returns how many were embedded."""
    hashes = [d.content_hash() for d in docs]
    stale = set(col.stale_ids([d.id for d in docs], hashes))
    todo = [(d, h) for d, h in zip(docs, hashes, strict=True) if d.id in stale]
    if not todo:
        return 0
    vecs = emb.embed_documents([d.text for d, _ in todo])
    col.upsert(
        [d.id for d, _ in todo],
        vecs,
        space=emb.space,
        texts=[d.text for d, _ in todo],
        metadatas=[d.metadata for d, _ in todo],
        content_hashes=[h for _, h in todo],
    )
    return len(todo)


class TestStore:
    def test_collection_is_bound_to_its_space(self, store: VectorStore, name: str) -> None:
        emb = HashingEmbedder(64)
        col = store.create_collection(name, emb.space)
        assert col.space == emb.space
        again = store.get_collection(name)
        assert again.space == emb.space and again.name == name
        assert name in store.list_collections()
        assert store.create_collection(name, emb.space).space == emb.space  # exist_ok by default

    def test_other_space_is_refused_naming_both(self, store: VectorStore, name: str) -> None:
        edge, other = HashingEmbedder(64), HashingEmbedder(64, name="other/model")
        store.create_collection(name, edge.space)
        with pytest.raises(SpaceMismatchError) as exc:
            store.create_collection(name, other.space)
        assert edge.space.fingerprint in str(exc.value) and other.space.fingerprint in str(exc.value)

    def test_exist_ok_false(self, store: VectorStore, name: str) -> None:
        store.create_collection(name, HashingEmbedder(64).space)
        with pytest.raises(StoreError, match="already exists"):
            store.create_collection(name, HashingEmbedder(64).space, exist_ok=False)

    def test_upsert_and_query(self, store: VectorStore, name: str) -> None:
        emb = HashingEmbedder(128)
        col = store.create_collection(name, emb.space)
        assert index(col, emb, DOCS) == 4
        assert col.count() == 4
        hits = col.query(emb.embed_queries([DOCS[2].text])[0], k=3, space=emb.space)
        assert [h.rank for h in hits] == [1, 2, 3]
        assert hits[0].id == "d3" and hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert hits[0].text == DOCS[2].text
        assert hits[0].index == "edge" and hits[0].space == emb.space.fingerprint
        assert hits[0].metadata == {"lang": "en", "year": 2022}  # the content hash stays internal
        assert hits[0].score >= hits[1].score >= hits[2].score
        assert len(col.query(emb.embed_queries(["cat"])[0], k=50, space=emb.space)) == 4

    def test_an_empty_or_emptied_collection_answers_no_hits(self, store: VectorStore, name: str) -> None:
        emb = HashingEmbedder(128)
        col = store.create_collection(name, emb.space)
        q = emb.embed_queries(["cat"])[0]
        assert col.query(q, k=5, space=emb.space) == []
        assert col.query(q, k=5, space=emb.space, where={"lang": "en"}) == []
        index(col, emb, DOCS)
        col.delete([d.id for d in DOCS])
        assert col.query(q, k=5, space=emb.space) == []

    def test_cloud_side_reports_cloud(self, store: VectorStore, name: str) -> None:
        emb = HashingEmbedder(64, provider="cloud")
        col = store.create_collection(name, emb.space)
        index(col, emb, DOCS[:2])
        assert {h.index for h in col.query(emb.embed_queries(["cat"])[0], space=emb.space)} == {"cloud"}

    def test_writing_or_querying_with_another_space_fails_and_writes_nothing(
        self, store: VectorStore, name: str
    ) -> None:
        emb = HashingEmbedder(64)
        col = store.create_collection(name, emb.space)
        index(col, emb, DOCS[:2])
        other = HashingEmbedder(64, name="other/model")
        with pytest.raises(SpaceMismatchError):
            index(col, other, DOCS[2:])
        assert col.count() == 2
        small = HashingEmbedder(32)
        with pytest.raises(SpaceMismatchError, match="dimensions differ"):
            col.query(small.embed_queries(["cat"])[0], space=small.space)

    def test_vectors_of_the_wrong_shape_are_refused(self, store: VectorStore, name: str) -> None:
        emb = HashingEmbedder(64)
        col = store.create_collection(name, emb.space)
        good = emb.embed_documents(["a text"])
        with pytest.raises(InputError, match="64"):
            col.upsert(
                ["x"], np.zeros((1, 32), np.float32), space=emb.space, texts=["t"], content_hashes=["h"]
            )
        with pytest.raises(InputError, match="NaN"):
            col.upsert(["x"], good * np.nan, space=emb.space, texts=["t"], content_hashes=["h"])
        with pytest.raises(InputError, match="content_hashes"):
            col.upsert(["x"], good, space=emb.space, texts=["t"], content_hashes=[])
        with pytest.raises(InputError, match="more than once"):
            col.upsert(
                ["x", "x"],
                np.vstack([good, good]),
                space=emb.space,
                texts=["t", "t"],
                content_hashes=["h", "h"],
            )
        with pytest.raises(InputError, match="shape"):
            col.query(np.zeros(63, np.float32), space=emb.space)
        with pytest.raises(InputError, match="positive"):
            col.query(good[0], k=0, space=emb.space)
        assert col.count() == 0

    def test_bad_metadata_is_refused(self, store: VectorStore, name: str) -> None:
        emb = HashingEmbedder(64)
        col = store.create_collection(name, emb.space)
        v = emb.embed_documents(["a text"])
        with pytest.raises(InputError, match=r"json\.dumps"):
            col.upsert(
                ["x"], v, space=emb.space, texts=["t"], metadatas=[{"tags": ["a"]}], content_hashes=["h"]
            )
        with pytest.raises(InputError, match="reserved"):
            col.upsert(
                ["x"],
                v,
                space=emb.space,
                texts=["t"],
                metadatas=[{CONTENT_HASH_KEY: "h"}],
                content_hashes=["h"],
            )

    def test_reindexing_unchanged_documents_embeds_nothing(self, store: VectorStore, name: str) -> None:
        emb = HashingEmbedder(64)
        col = store.create_collection(name, emb.space)
        index(col, emb, DOCS)
        calls = emb.calls
        assert index(col, emb, DOCS) == 0
        assert emb.calls == calls
        assert col.count() == 4

    def test_changed_documents_are_replaced(self, store: VectorStore, name: str) -> None:
        emb = HashingEmbedder(64)
        col = store.create_collection(name, emb.space)
        index(col, emb, DOCS)
        changed = [
            *DOCS[:3],
            Document("d4", "Quantum computers use qubits.", metadata={"lang": "en", "year": 2024}),
        ]
        calls = emb.calls
        assert col.stale_ids([d.id for d in changed], [d.content_hash() for d in changed]) == ["d4"]
        assert index(col, emb, changed) == 1 and emb.calls == calls + 1
        assert col.count() == 4
        top = col.query(emb.embed_queries(["qubits quantum computers"])[0], k=1, space=emb.space)[0]
        assert (top.id, top.text, top.metadata["year"]) == ("d4", "Quantum computers use qubits.", 2024)
        (rec,) = col.get(["d4"])
        assert rec.content_hash == changed[3].content_hash()

    def test_delete(self, store: VectorStore, name: str) -> None:
        emb = HashingEmbedder(64)
        col = store.create_collection(name, emb.space)
        index(col, emb, DOCS)
        col.delete(["d1", "d3", "no-such-id"])
        assert col.count() == 2
        assert [r.id for r in col.get(["d1", "d2", "d3", "d4"])] == ["d2", "d4"]
        assert col.stale_ids(["d1", "d2"], [DOCS[0].content_hash(), DOCS[1].content_hash()]) == ["d1"]

    def test_metadata_filters_pass_through(self, store: VectorStore, name: str) -> None:
        emb = HashingEmbedder(64)
        col = store.create_collection(name, emb.space)
        index(col, emb, DOCS)
        q = emb.embed_queries(["plants and light"])[0]
        assert {h.id for h in col.query(q, k=10, space=emb.space, where={"lang": "de"})} == {"d2", "d4"}
        assert {h.id for h in col.query(q, k=10, space=emb.space, where={"year": {"$gte": 2022}})} == {
            "d3",
            "d4",
        }
        both = col.query(q, k=10, space=emb.space, where={"lang": "en", "year": 2020})
        assert [h.id for h in both] == ["d1"]
        assert {h.id for h in col.query(q, space=emb.space, where={"lang": {"$in": ["de"]}})} == {"d2", "d4"}
        with pytest.raises(InputError, match="filter"):
            col.query(q, space=emb.space, where={"year": {"$bogus": 1}})

    def test_get_returns_records_in_order(self, store: VectorStore, name: str) -> None:
        emb = HashingEmbedder(64)
        col = store.create_collection(name, emb.space)
        index(col, emb, DOCS)
        recs = col.get(["d3", "missing", "d1"], include_vectors=True)
        assert [r.id for r in recs] == ["d3", "d1"]
        assert recs[0].text == DOCS[2].text and recs[0].metadata == {"lang": "en", "year": 2022}
        assert recs[0].vector is not None
        np.testing.assert_allclose(recs[0].vector, emb.embed_documents([DOCS[2].text])[0], atol=1e-6)
        assert col.get(["d1"])[0].vector is None

    def test_large_upserts_go_in_batches(self, store: VectorStore, name: str) -> None:
        store._max_batch = 7  # as if Chroma allowed only 7 records per call
        emb = HashingEmbedder(32)
        col = store.create_collection(name, emb.space)
        docs = [Document(f"n{i}", f"note number {i} about topic {i % 5}") for i in range(30)]
        assert index(col, emb, docs) == 30
        assert col.count() == 30
        assert len(col.get([d.id for d in docs])) == 30
        col.delete([d.id for d in docs[:20]])
        assert col.count() == 10

    def test_unknown_collection_lists_existing_ones(self, store: VectorStore, name: str) -> None:
        store.create_collection(name, HashingEmbedder(64).space)
        with pytest.raises(CollectionNotFoundError) as exc:
            store.get_collection("no-such-collection")
        assert name in str(exc.value) and "no-such-collection" in str(exc.value)
        assert isinstance(exc.value, StoreError) and isinstance(exc.value, KeyError)
        with pytest.raises(CollectionNotFoundError):
            store.delete_collection("no-such-collection")

    def test_delete_collection(self, store: VectorStore, name: str) -> None:
        store.create_collection(name, HashingEmbedder(64).space)
        store.delete_collection(name)
        assert name not in store.list_collections()

    def test_empty_collection_query(self, store: VectorStore, name: str) -> None:
        emb = HashingEmbedder(64)
        col = store.create_collection(name, emb.space)
        assert col.query(emb.embed_queries(["x"])[0], space=emb.space) == []

    def test_describe(self, store: VectorStore, name: str) -> None:
        emb = HashingEmbedder(64)
        index(store.create_collection(name, emb.space), emb, DOCS)
        info = {i.name: i for i in store.describe()}[name]
        assert info.space == emb.space and info.count == 4


class TestNames:
    @pytest.mark.parametrize(
        "bad", ["ab", "has space", "-lead", "trail-", "a..b", "192.168.0.1", "x" * 513, 5]
    )
    def test_bad_collection_names(self, bad: object) -> None:
        with pytest.raises(InputError, match="collection name"):
            validate_collection_name(bad)  # type: ignore[arg-type,unused-ignore]

    def test_logical_names_leave_room_for_the_index_suffix(self) -> None:
        assert validate_logical_name("x" * 506) == "x" * 506
        with pytest.raises(InputError, match="3 to 506"):
            validate_logical_name("x" * 507)
        assert index_collection_name("docs", "edge") == "docs.edge"
        assert index_collection_name("docs", "cloud") == "docs.cloud"
        with pytest.raises(InputError):
            index_collection_name("docs", "middle")

    def test_store_rejects_bad_names(self, tmp_path: Path) -> None:
        with pytest.raises(InputError, match="letters, digits"):
            VectorStore.persistent(tmp_path).create_collection("my docs", HashingEmbedder(64).space)


class TestPersistentPaths:
    def test_data_survives_reopening(self, tmp_path: Path) -> None:
        emb = HashingEmbedder(64)
        index(VectorStore.persistent(tmp_path / "s").create_collection("docs.edge", emb.space), emb, DOCS)
        col = VectorStore.persistent(tmp_path / "s").get_collection("docs.edge")
        assert col.count() == 4 and col.space == emb.space

    def test_unwritable_paths_are_refused_and_nothing_is_lost(self, tmp_path: Path) -> None:
        emb = HashingEmbedder(64)
        good = tmp_path / "good"
        index(VectorStore.persistent(good).create_collection("docs.edge", emb.space), emb, DOCS)
        a_file = good / "chroma.sqlite3"
        assert a_file.is_file()
        with pytest.raises(StoreError, match="is a file") as exc:
            VectorStore.persistent(a_file)
        assert "--store" in str(exc.value)
        with pytest.raises(StoreError, match="not writable"):
            VectorStore.persistent(a_file / "below")
        assert VectorStore.persistent(good).get_collection("docs.edge").count() == 4

    def test_unreachable_server(self) -> None:
        with pytest.raises(StoreError, match="chroma run"):
            VectorStore.http("127.0.0.1", free_port())

    def test_ephemeral_stores_are_private(self) -> None:
        a, b = VectorStore.ephemeral(), VectorStore.ephemeral()
        a.create_collection("only-in-a", HashingEmbedder(64).space)
        assert b.list_collections() == [] and a.list_collections() == ["only-in-a"]

    def test_foreign_collection_is_explained(self, tmp_path: Path) -> None:
        import chromadb

        chromadb.PersistentClient(path=str(tmp_path / "f")).create_collection(
            "foreign", embedding_function=None
        )
        store = VectorStore.persistent(tmp_path / "f")
        with pytest.raises(StoreError, match="not bound to an embedding space"):
            store.get_collection("foreign")
        assert [(i.name, i.space) for i in store.describe()] == [("foreign", None)]
