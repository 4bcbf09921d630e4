"""Documents longer than a model reads are refused whole, never stored as the vector of their start.

The edge limit is counted with the edge model's tokenizer (the tiny test model cuts at 64 tokens, so
counts matter and are cheap); the cloud limit with the cloud estimate, for cloud-bound documents only.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from router_helpers import EngineFactory

from edgeroute.framework.cloud.media import MAX_INPUT_TOKENS
from edgeroute.framework.documents import Document
from edgeroute.framework.edge.embedder import EdgeEmbedder
from edgeroute.framework.errors import CollectionNotFoundError, InputError
from edgeroute.framework.pii.detector import WINDOW_CHARS, _windows
from edgeroute.framework.router.engine import HybridEngine
from edgeroute.framework.store.chroma import VectorStore
from edgeroute.framework.store.chunking import chunk_text
from edgeroute.framework.testing.emulator import GeminiEmulator
from edgeroute.framework.testing.hashing import HashingEmbedder
from edgeroute.framework.testing.tiny_model import build_tiny_model

WORDS = "the river and the sea in the rain with snow and ice on the glacier"  # 15 tiny-model words


@pytest.fixture
def tiny(tmp_path: Path) -> EdgeEmbedder:
    return EdgeEmbedder.load(build_tiny_model(tmp_path / "tiny", max_tokens=64))


def test_tokenizer_counts_the_whole_document(tiny: EdgeEmbedder) -> None:
    short, long = WORDS, " ".join([WORDS] * 8)  # 15 and 120 words
    over = tiny.documents_over_limit([short, long], ["a title", None])
    assert list(over) == [1]
    # The whole count (prompt, text and special tokens), not the 64 the tokenizer keeps.
    assert over[1] > 120
    from tokenizers import Tokenizer

    untruncated = Tokenizer.from_file(str(tiny.model_dir / "tokenizer.json"))
    untruncated.no_truncation()
    assert over[1] == len(untruncated.encode(tiny.format_prompt(long, "document")).ids)


def test_an_over_long_document_is_refused_before_anything_is_written(
    tiny: EdgeEmbedder, store: VectorStore, emu: GeminiEmulator, make_engine: EngineFactory
) -> None:
    engine = HybridEngine(store, "tiny", edge=tiny)
    long = Document("manual.md", " ".join([WORDS] * 8), sensitivity="public")
    with pytest.raises(InputError) as err:
        engine.ingest([Document("ok", WORDS, sensitivity="public"), long])
    msg = str(err.value)
    assert "'manual.md'" in msg and "tokens, over the edge model's 64" in msg and "chunk" in msg
    assert WORDS not in msg  # the message names the document, never its text
    with pytest.raises(CollectionNotFoundError):
        engine.open_index("edge")  # not even the short document was written
    assert engine.outbox.depth("tiny") == 0
    # Split as the error says, the same text goes in, chunk by chunk.
    chunks = chunk_text(long.text, max_tokens=40, overlap_tokens=0)
    report = engine.ingest([Document(f"manual.md#{c.index}", c.text) for c in chunks])
    assert report.edge_written == len(chunks) > 1
    assert tiny.truncated_count == 0
    engine.close()


def test_cloud_bound_documents_over_the_cloud_limit_are_refused(make_engine: EngineFactory) -> None:
    engine = make_engine()
    huge = "lorem ipsum dolor sit amet " * (MAX_INPUT_TOKENS // 4)  # about 7 characters a word
    with pytest.raises(InputError, match=r"'big' has about \d+ tokens, over the cloud model's 8192"):
        engine.ingest([Document("big", huge, sensitivity="public")])
    # Kept at the edge (confidential), the cloud limit plays no part: the edge has no limit here.
    report = engine.ingest([Document("big", huge, sensitivity="confidential")])
    assert report.edge_written == 1 and report.private == 1


def test_every_character_of_a_long_document_is_scanned(
    make_engine: EngineFactory, emu: GeminiEmulator
) -> None:
    engine = make_engine()
    text = "Quarterly notes on shipping routes and warehouse stock. " * 500  # 28,000 characters
    doc = Document("notes", text + "Escalations go to maria.lopez@example.org", sensitivity="public")
    report = engine.ingest([doc])
    assert report.private == 1  # the address at the very end kept it from the cloud
    assert not any("maria.lopez" in str(r) for r in emu.requests)


@pytest.mark.parametrize("n", [WINDOW_CHARS + 1, 5 * WINDOW_CHARS + 17, 12_345])
def test_detection_windows_cover_every_character(n: int) -> None:
    text = ("word " * n)[:n]
    covered = [False] * n
    for off, piece in _windows(text):
        assert text[off : off + len(piece)] == piece
        covered[off : off + len(piece)] = [True] * len(piece)
    # Only whitespace may lie outside every window (a blank window is skipped).
    assert all(c or text[i].isspace() for i, c in enumerate(covered))


def test_hashing_embedder_has_no_edge_limit(store: VectorStore) -> None:
    engine = HybridEngine(store, "hash", edge=HashingEmbedder(64))
    assert engine.ingest([Document("long", "x " * 50_000)]).edge_written == 1
    engine.close()


@pytest.mark.slow
def test_real_model_refuses_past_2048_tokens_and_keeps_a_1900_token_document(store: VectorStore) -> None:
    from model_helpers import token_state_edge

    edge = token_state_edge()
    sentence = "The committee reviewed the quarterly report on regional water supplies. "  # ~13 tokens
    fits, long = sentence * 140, sentence * 200
    over = edge.documents_over_limit([fits, long])
    assert list(over) == [1] and over[1] > edge.manifest.max_tokens == 2048
    engine = HybridEngine(store, "real", edge=edge)
    with pytest.raises(InputError, match=rf"'long' has {over[1]} tokens, over the edge model's 2048"):
        engine.ingest([Document("long", long)])
    assert engine.ingest([Document("fits", fits)]).edge_written == 1
    assert edge.truncated_count == 0
    engine.close()
