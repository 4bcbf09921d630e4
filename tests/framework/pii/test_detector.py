"""PiiDetector: windows over long texts map offsets back, batches stay bounded, bad input is refused.

The edge model is replaced by a word-level stand-in here (its token states mark capitalised words), so
these tests are about the detector's bookkeeping; tests/framework/pii/test_pii_real.py runs the real model.
"""

from __future__ import annotations

import itertools
import re
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from edgeroute.framework.edge.embedder import TokenStates
from edgeroute.framework.errors import InputError
from edgeroute.framework.pii import PiiDetector
from edgeroute.framework.pii.detector import WINDOW_CHARS, _windows
from edgeroute.framework.pii.head import HeadSpan
from edgeroute.policies.config import PiiConfig


class WordStates:
    """Stands in for EdgeEmbedder: one 'token' per word; the state is 1.0 for a word in NAMES."""

    has_token_states = True
    manifest = SimpleNamespace(dims=1)
    NAMES = frozenset({"Whitaker", "Lopez"})

    def __init__(self) -> None:
        self.calls: list[int] = []

    def embed_with_token_states(self, texts: list[str], prompt: str | None, dims: int | None = None) -> Any:
        self.calls.append(len(texts))
        out = []
        for t in texts:
            words = list(re.finditer(r"\S+", t))
            states = np.array(
                [[1.0 if w.group().strip(",.?") in self.NAMES else 0.0] * 2 for w in words], np.float32
            )
            offsets = np.array([[w.start(), w.end()] for w in words]).reshape(-1, 2)
            out.append(TokenStates(states.reshape(-1, 2), offsets))
        return np.zeros((len(texts), 4), np.float32), out

    async def arun(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    def embed_queries(self, texts: list[str], dims: int | None = None) -> Any:
        return np.zeros((len(texts), 4), np.float32)


class MarkHead:
    dims = 2

    def spans(
        self, states: Any, offsets: Any, thresholds: dict[str, float], text: str | None = None
    ) -> list[HeadSpan]:
        found = []
        for s, o in zip(states, offsets, strict=True):
            word = text[int(o[0]) : int(o[1])].strip(",.?") if text is not None else ""
            if s[0] > 0.5:
                found.append(HeadSpan("person", int(o[0]), int(o[1]), 0.9))
            elif word in PLACES:
                found.append(HeadSpan(PLACES[word], int(o[0]), int(o[1]), 0.9))
        return found


PLACES = {"Kazan": "location", "Gazprom": "organization"}


def make() -> tuple[PiiDetector, WordStates]:
    emb = WordStates()
    return PiiDetector(PiiConfig(), embedder=emb, head=MarkHead()), emb  # type: ignore[arg-type]


def test_entities_and_patterns_merge_with_scores_and_detectors() -> None:
    det, _ = make()
    text = "Patient John Whitaker, mail j.w@example.org"
    found = det.detect(text)
    assert [(text[f.start : f.end], f.kind, f.detector) for f in found] == [
        ("Whitaker", "person", "entities"),
        ("j.w@example.org", "email", "email"),
    ]
    assert found[0].score == 0.9 and found[1].score == 1.0


def test_long_text_windows_map_offsets_back_and_dedupe_overlaps() -> None:
    det, emb = make()
    filler = "lorem ipsum dolor sit amet " * 40
    text = (filler + "Whitaker ") * 60 + "Lopez"
    assert len(text) > 30 * WINDOW_CHARS
    found = det.detect(text)
    names = [text[f.start : f.end] for f in found]
    assert names.count("Whitaker") == 60 and names[-1] == "Lopez"
    assert all(a.end <= b.start for a, b in itertools.pairwise(found))
    assert max(emb.calls) <= 32  # windows go through the model in bounded groups


def test_windows_cover_the_text_with_overlap() -> None:
    text = "word " * 2000
    wins = _windows(text)
    assert wins[0][0] == 0
    covered = set()
    for off, piece in wins:
        assert text[off : off + len(piece)] == piece
        covered.update(range(off, off + len(piece)))
    assert covered == set(range(len(text)))


def test_one_forward_pass_gives_vector_and_findings() -> None:
    det, emb = make()
    vec, found = det.embed_query("what is the prognosis for Maria Lopez?")
    assert vec.shape == (1, 4) and [f.kind for f in found] == ["person"]
    assert emb.calls == [1]


def test_kinds_not_acted_on_are_not_reported() -> None:
    emb = WordStates()
    det = PiiDetector(PiiConfig(entities={"kinds": ["date"]}), embedder=emb, head=MarkHead())  # type: ignore[arg-type]
    assert det._thresholds == {"date": 0.5} or set(det._thresholds) == {"date"}


def test_without_token_states_only_patterns_run() -> None:
    det = PiiDetector(PiiConfig(), embedder=None)
    assert not det.entities_available
    assert [f.kind for f in det.detect("Patient John Whitaker, mail j.w@example.org")] == ["email"]


def test_bad_input_is_refused_clearly() -> None:
    det, _ = make()
    with pytest.raises(InputError, match="not str"):
        det.detect_many(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(InputError, match="wrap one text"):
        det.detect_many("a string")


def test_presidio_backend_without_the_extra_says_what_to_install() -> None:
    pytest.importorskip("edgeroute.framework.pii.presidio_backend")
    try:
        import presidio_analyzer  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("presidio-analyzer is installed here")
    from edgeroute.framework.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"edgeroute\[presidio\]"):
        PiiDetector(PiiConfig(entities={"backend": "presidio"}))


def test_a_batch_goes_to_the_model_longest_first_and_findings_stay_with_their_texts() -> None:
    det, emb = make()
    seen: list[list[str]] = []
    inner = emb.embed_with_token_states

    def recording(texts: list[str], prompt: str | None, dims: int | None = None) -> Any:
        seen.append(list(texts))
        return inner(texts, prompt, dims)

    emb.embed_with_token_states = recording  # type: ignore[method-assign]
    texts = [f"note {'x ' * (i * 7 % 50)}for Lopez, mail u{i}@example.org" for i in range(70)]
    found = det.detect_batch(texts)
    # Whole groups of similar length: longest first across the call, not per group of the input.
    flat = [t for group in seen for t in group]
    assert [len(t) for t in flat] == sorted((len(t) for t in texts), reverse=True)
    assert max(len(g) for g in seen) <= 32
    for t, f in zip(texts, found, strict=True):
        assert [(t[x.start : x.end], x.kind) for x in f] == [(x, k) for x, k in det_one(det, t)]


def det_one(det: PiiDetector, text: str) -> list[tuple[str, str]]:
    return [(text[f.start : f.end], f.kind) for f in det.detect_batch([text])[0]]


def test_places_and_organisations_count_only_beside_another_finding() -> None:
    det, _ = make()
    alone = "The plant near Kazan belongs to Gazprom."
    assert det.detect(alone) == ()
    beside = "Lopez moved to Kazan to work for Gazprom."
    assert [(beside[f.start : f.end], f.kind) for f in det.detect(beside)] == [
        ("Lopez", "person"),
        ("Kazan", "location"),
        ("Gazprom", "organization"),
    ]
    mailed = "Write to ops@example.org about the Kazan plant."
    assert [f.kind for f in det.detect(mailed)] == ["email", "location"]
    always = PiiDetector(
        PiiConfig(entities={"linked_only": []}), embedder=WordStates(), head=MarkHead()  # type: ignore[arg-type]
    )
    assert [f.kind for f in always.detect(alone)] == ["location", "organization"]


def test_linked_only_kinds_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown entity kind"):
        PiiConfig(entities={"linked_only": ["planet"]})
