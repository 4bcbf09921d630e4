"""What :attr:`PiiDetector.version` pins of the edge model: the files its token states depend on, not
the compact tokenizer (``tokenizer.bin``), a derived form of the pinned ``tokenizer.model``.

Adding ``tokenizer.bin`` to a model directory in place re-hashes its manifest; with the file in the
version, every stored finding went stale and the next re-index of an unchanged folder ran the model over
every document again (docs/edge-model.md, "the one slow re-index")."""

from __future__ import annotations

import dataclasses
from typing import Any

from edgeroute.framework.edge.model_dir import Manifest
from edgeroute.framework.pii import PiiDetector
from edgeroute.framework.pii.head import PiiHead

FILES = {
    "model.onnx": "a" * 64,
    "model.onnx.data": "b" * 64,
    "tokenizer.json": "c" * 64,
    "tokenizer.model": "d" * 64,
}


class _Embedder:
    """Enough of an EdgeEmbedder for the detector's identity: token states and a manifest."""

    has_token_states = True

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest


def _version(files: dict[str, str], **changes: Any) -> str:
    manifest = dataclasses.replace(Manifest("google/embeddinggemma-300m", "rev", files=files), **changes)
    head = PiiHead.load()  # the shipped head: its sha256 is part of the version too
    det = PiiDetector(embedder=_Embedder(manifest), head=head)  # type: ignore[arg-type]
    assert det.head is not None  # the head's dims match the stand-in manifest's (768 * 2)
    return det.version


def test_adding_the_compact_tokenizer_keeps_the_stored_findings() -> None:
    before = _version(FILES)
    assert _version({**FILES, "tokenizer.bin": "e" * 64}) == before
    assert _version({**FILES, "tokenizer.bin": "f" * 64}) == before  # rewritten from the same tokenizer.model


def test_the_files_the_outputs_depend_on_still_change_the_version() -> None:
    before = _version(FILES)
    assert _version({**FILES, "model.onnx.data": "9" * 64}) != before  # other weights
    assert _version({**FILES, "tokenizer.model": "9" * 64}) != before  # another tokenizer
    assert _version(FILES, quantization="a8w7-e8") != before
    # Without tokenizer.model pinned, tokenizer.bin is not known to be derived from a pinned file.
    bare = {k: v for k, v in FILES.items() if k != "tokenizer.model"}
    assert _version({**bare, "tokenizer.bin": "e" * 64}) != _version(bare)
