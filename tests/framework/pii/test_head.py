"""The numpy PII head: shipped weights verified by sha256, decoding, and parity with the torch module."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import edgeroute.framework.pii as pii_package
from edgeroute.framework.errors import ModelIntegrityError
from edgeroute.framework.pii.head import HEAD_KINDS, TAGS, PiiHead

DIMS, HIDDEN, KERNEL = 12, 6, 3


def _weights(seed: int = 0) -> dict[str, np.ndarray]:
    r = np.random.default_rng(seed)
    return {
        "norm_scale": np.ones(DIMS, np.float32),
        "proj_w": r.normal(size=(DIMS, HIDDEN)).astype(np.float32),
        "proj_b": np.zeros(HIDDEN, np.float32),
        "conv_w": r.normal(size=(KERNEL, HIDDEN, HIDDEN)).astype(np.float32) * 0.3,
        "conv_b": np.zeros(HIDDEN, np.float32),
        "out_w": r.normal(size=(2 * HIDDEN, len(TAGS))).astype(np.float32),
        "out_b": np.zeros(len(TAGS), np.float32),
    }


def test_shipped_head_loads_and_matches_its_manifest() -> None:
    head = PiiHead.load()
    assert head.manifest["sha256"] and head.manifest["command"].startswith("scripts/train-pii-head")
    assert set(head.manifest["thresholds"]) == set(HEAD_KINDS)
    assert head.dims == 1536


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    src = Path(pii_package.__file__).parent
    for name in ("head.npz", "head.json"):
        shutil.copy(src / "data" / name, tmp_path / name)
    PiiHead.load(tmp_path)
    with (tmp_path / "head.npz").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelIntegrityError, match="sha256"):
        PiiHead.load(tmp_path)


def test_spans_decode_typed_entities_with_thresholds() -> None:
    head = PiiHead(_weights(), {"tags": list(TAGS)})
    states = np.random.default_rng(1).normal(size=(9, DIMS)).astype(np.float32)
    offsets = np.array([[i * 4, i * 4 + 3] for i in range(9)])
    probs = head.probabilities(states)
    assert probs.shape == (9, len(TAGS)) and np.allclose(probs.sum(-1), 1, atol=1e-5)
    every = head.spans(states, offsets, dict.fromkeys(HEAD_KINDS, 1e-6))
    assert head.spans(states, offsets, {}) == []
    for sp in every:
        assert sp.kind in HEAD_KINDS and 0 <= sp.start < sp.end <= 35 and 0 < sp.score <= 1
    assert all(a.end <= b.start for a, b in itertools.pairwise(every))


def test_numpy_forward_matches_the_torch_module_it_was_trained_as() -> None:
    torch = pytest.importorskip("torch")
    w = _weights(3)
    x = np.random.default_rng(4).normal(size=(7, DIMS)).astype(np.float32)
    t = torch.from_numpy(x)[None]
    t = t * torch.rsqrt((t * t).mean(-1, keepdim=True) + 1e-6) * torch.from_numpy(w["norm_scale"])
    h = torch.nn.functional.gelu(
        t @ torch.from_numpy(w["proj_w"]) + torch.from_numpy(w["proj_b"]), approximate="tanh"
    )
    conv = torch.nn.Conv1d(HIDDEN, HIDDEN, KERNEL, padding=KERNEL // 2)
    conv.weight.data = torch.from_numpy(np.transpose(w["conv_w"], (2, 1, 0)).copy())
    conv.bias.data = torch.from_numpy(w["conv_b"])
    c = torch.nn.functional.gelu(conv(h.transpose(1, 2)).transpose(1, 2), approximate="tanh")
    logits = torch.cat([h, c], -1) @ torch.from_numpy(w["out_w"]) + torch.from_numpy(w["out_b"])
    want = torch.softmax(logits, -1)[0].detach().numpy()
    got = PiiHead(w, {"tags": list(TAGS)}).probabilities(x)
    assert np.allclose(got, want, atol=1e-5)


def test_manifest_records_how_to_reproduce() -> None:
    m = PiiHead.load().manifest
    assert {"command", "data_recipe", "sha256", "epochs", "thresholds"} <= set(m)
    assert m["data_recipe"]["seed"] == json.loads(json.dumps(m["data_recipe"]))["seed"]


class FixedHead(PiiHead):
    """A head whose tag probabilities are given, to test decoding alone."""

    def __init__(self, probs: np.ndarray) -> None:
        super().__init__(_weights(), {"tags": list(TAGS)})
        self.fixed = probs

    def probabilities(self, states: np.ndarray) -> np.ndarray:
        return self.fixed


def _probs(tags: list[str]) -> np.ndarray:
    p = np.full((len(tags), len(TAGS)), 0.01, np.float32)
    for i, t in enumerate(tags):
        p[i, TAGS.index(t)] = 0.9
    return p / p.sum(-1, keepdims=True)


def test_words_are_decoded_whole_from_their_first_token() -> None:
    text = "Ask Ярополк now"
    # " Яро" "пол" "к": the model is sure of the first piece only.
    offsets = np.array([[0, 3], [3, 7], [7, 10], [10, 11], [11, 15]])
    head = FixedHead(_probs(["O", "B-person", "O", "O", "O"]))
    states = np.zeros((5, DIMS), np.float32)
    assert [(s.start, s.end) for s in head.spans(states, offsets, {"person": 0.5})] == [(3, 7)]
    words = head.spans(states, offsets, {"person": 0.5}, text)
    assert [(text[s.start : s.end].strip(), s.kind) for s in words] == [("Ярополк", "person")]


def test_unspaced_scripts_keep_one_reading_per_token() -> None:
    text = "王小明说"
    offsets = np.array([[0, 1], [1, 2], [2, 3], [3, 4]])
    head = FixedHead(_probs(["B-person", "I-person", "I-person", "O"]))
    found = head.spans(np.zeros((4, DIMS), np.float32), offsets, {"person": 0.5}, text)
    assert [(text[s.start : s.end], s.kind) for s in found] == [("王小明", "person")]
