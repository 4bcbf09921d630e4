"""The SentencePiece tokenizer gives the ids, offsets and masks of tokenizer.json (no model weights needed:
the checkpoint's two tokenizer files only)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from edgeroute.framework.edge.export.sentencepiece_file import (
    CHECK_SAMPLE,
    add_sentencepiece,
    compare_tokenizers,
    copy_if_identical,
)
from edgeroute.framework.edge.model_dir import TOKENIZER_FILE
from edgeroute.framework.edge.tokenizer import (
    SENTENCEPIECE_FILE,
    HFTokenizer,
    SentencePieceTokenizer,
    load_tokenizer,
)
from edgeroute.framework.errors import InputError, ModelIntegrityError, ModelNotFoundError
from edgeroute.framework.testing.tiny_model import build_tiny_model

pytest.importorskip("sentencepiece")


def _tokenizer_pair() -> Path | None:
    """A folder holding Gemma's tokenizer.json and tokenizer.model: the checkpoint or an upgraded model dir."""
    candidates = [
        os.environ.get("EDGEROUTE_EDGE_MODEL"),
        str(Path.home() / ".cache" / "edgeroute" / "models" / "embeddinggemma-300m"),
        str(Path.home() / ".cache" / "edgeroute-dev" / "embeddinggemma-300m"),
    ]
    for c in candidates:
        if c and (Path(c) / TOKENIZER_FILE).is_file() and (Path(c) / SENTENCEPIECE_FILE).is_file():
            return Path(c).expanduser()
    return None


PAIR = _tokenizer_pair()
needs_pair = pytest.mark.skipif(PAIR is None, reason="no folder with Gemma's tokenizer.json + tokenizer.model")


def _data_sample() -> list[str]:
    """Questions and passages of XQuAD (en, de, es, zh) and SciFact abstracts, when the data is here."""
    root = Path(os.environ.get("EDGEROUTE_DATA") or Path(__file__).parents[3].parent / "shared" / "data")
    texts: list[str] = []
    for name in ("xquad/en", "xquad/de", "xquad/es", "xquad/zh", "scifact"):
        for part, n in (("queries.jsonl", 40), ("corpus.jsonl", 10)):
            f = root / name / part
            if f.is_file():
                with f.open(encoding="utf-8") as fh:
                    for _, line in zip(range(n), fh, strict=False):
                        texts.append(str(json.loads(line)["text"]))
    return texts


@needs_pair
def test_ids_offsets_and_masks_match_tokenizer_json_on_a_multilingual_sample() -> None:
    assert PAIR is not None
    prompts = ["task: search result | query: ", "title: none | text: "]
    texts = [*CHECK_SAMPLE, *_data_sample()]
    texts += [p + t for p in prompts for t in texts[:60]]
    texts.append("glaciers retreat " * 1500)  # cut at 2,048 tokens by both
    assert compare_tokenizers(PAIR / SENTENCEPIECE_FILE, PAIR / TOKENIZER_FILE, texts) == []


@needs_pair
def test_literal_control_tokens_byte_fallback_and_truncation() -> None:
    assert PAIR is not None
    sp = SentencePieceTokenizer(PAIR / SENTENCEPIECE_FILE, 16)
    hf = HFTokenizer(PAIR / TOKENIZER_FILE, 16)
    text = "a <bos> b \u2153\u2e3b c"
    ours, theirs = sp.encode_batch([text], offsets=True)[0], hf.encode_batch([text])[0]
    assert ours.ids == theirs.ids and 2 in ours.ids[1:-1]  # the literal <bos>: the control token, as in tokenizer.json
    assert ours.offsets == list(theirs.offsets)
    long = sp.encode_batch(["word " * 100])[0]
    assert len(long.ids) == 16 and long.ids[0] == 2 and long.ids[-1] == 1 and long.overflowing
    assert not sp.encode_batch(["short"])[0].overflowing


@needs_pair
def test_loader_picks_sentencepiece_only_where_the_file_is(tmp_path: Path) -> None:
    assert PAIR is not None
    shutil.copy(PAIR / TOKENIZER_FILE, tmp_path / TOKENIZER_FILE)
    assert load_tokenizer(tmp_path, tmp_path / TOKENIZER_FILE, 2048).kind == "tokenizers"
    assert copy_if_identical(PAIR, tmp_path)
    assert load_tokenizer(tmp_path, tmp_path / TOKENIZER_FILE, 2048).kind == "sentencepiece"


@needs_pair
def test_a_different_tokenizer_json_is_not_paired_with_tokenizer_model(tmp_path: Path) -> None:
    assert PAIR is not None
    tiny = build_tiny_model(tmp_path / "tiny")  # a word-level tokenizer.json: not Gemma's
    assert not copy_if_identical(PAIR, Path(tiny))
    assert not (Path(tiny) / SENTENCEPIECE_FILE).exists()
    with pytest.raises(InputError, match="is not the checkpoint"):
        add_sentencepiece(tiny, PAIR)


@pytest.mark.slow
@needs_pair
def test_an_upgraded_model_dir_gives_bit_identical_vectors_and_token_states(tmp_path: Path) -> None:
    """The real model: the same directory with and without tokenizer.model (files linked, not copied)."""
    import numpy as np

    from edgeroute.framework.edge.embedder import EdgeEmbedder
    from edgeroute.framework.edge.model_dir import MANIFEST, ModelDirectory, resolve_model_dir

    assert PAIR is not None
    try:
        source = ModelDirectory.open(resolve_model_dir(None), verify=False)
    except (ModelNotFoundError, ModelIntegrityError) as exc:  # no exported model here: nothing to compare
        pytest.skip(f"no exported model ({exc})")
    if (source.path / SENTENCEPIECE_FILE).is_file():
        plain = tmp_path / "plain"
        plain.mkdir()
        for name in source.manifest.files:
            if name != SENTENCEPIECE_FILE:
                (plain / name).symlink_to(source.path / name)
        manifest = json.loads((source.path / MANIFEST).read_text(encoding="utf-8"))
        manifest["files"].pop(SENTENCEPIECE_FILE)
        (plain / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
        upgraded = source.path
    else:
        plain = source.path
        upgraded = tmp_path / "upgraded"
        upgraded.mkdir()
        for name in source.manifest.files:
            (upgraded / name).symlink_to(source.path / name)
        shutil.copy(source.path / MANIFEST, upgraded / MANIFEST)
        add_sentencepiece(upgraded, PAIR)
    a = EdgeEmbedder.load(plain, threads=2, verify=False)
    b = EdgeEmbedder.load(upgraded, threads=2, verify=False)
    assert (a.tokenizer_kind, b.tokenizer_kind) == ("tokenizers", "sentencepiece")
    texts = [*CHECK_SAMPLE, *_data_sample()[:40]]
    np.testing.assert_array_equal(a.embed_documents(texts), b.embed_documents(texts))
    if a.has_token_states:
        va, sa = a.embed_with_token_states(texts[:24])
        vb, sb = b.embed_with_token_states(texts[:24])
        np.testing.assert_array_equal(va, vb)
        for x, y in zip(sa, sb, strict=True):
            np.testing.assert_array_equal(x.states, y.states)
            np.testing.assert_array_equal(x.offsets, y.offsets)


@needs_pair
def test_a_tokenizer_model_the_manifest_does_not_pin_is_ignored(tmp_path: Path) -> None:
    """Only a verified file is used: one dropped into a directory by hand leaves tokenizer.json in charge."""
    from edgeroute.framework.edge.embedder import EdgeEmbedder

    assert PAIR is not None
    tiny = Path(build_tiny_model(tmp_path / "tiny"))
    shutil.copy(PAIR / SENTENCEPIECE_FILE, tiny / SENTENCEPIECE_FILE)
    edge = EdgeEmbedder.load(tiny, threads=1)
    assert edge.tokenizer_kind == "tokenizers"
    assert edge.embed_queries(["what causes dehydration?"]).shape == (1, 768)


@needs_pair
def test_full_counts_agree_past_the_limit() -> None:
    """Long-document refusal counts the whole text: both tokenizers must give the same untruncated count."""
    assert PAIR is not None
    sp = SentencePieceTokenizer(PAIR / SENTENCEPIECE_FILE, 64)
    hf = HFTokenizer(PAIR / TOKENIZER_FILE, 64)
    texts = ["word " * 300, "a <bos> b " * 50, "短い文です。" * 40, "short"]
    assert sp.full_counts(texts) == hf.full_counts(texts)
    assert sp.full_counts(["word " * 300])[0] > 300
