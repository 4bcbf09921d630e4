"""Labelled sets for `bench pii --data`: BIO/CoNLL files, `pii scan` JSONL, per-language scores; the head's
own thresholds as the detector's defaults."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from edgeroute.framework.eval.bench_pii import LabelledText, load_labelled, score_findings
from edgeroute.framework.eval.conll import join_words, parse_conll
from edgeroute.framework.pii import PiiDetector
from edgeroute.framework.pii.head import HEAD_KINDS, TAGS, PiiHead
from edgeroute.policies.config import EntityConfig, PiiConfig
from edgeroute.policies.signals import PiiFinding

CONLL = (
    "0\tTakuya\tB-PER\n1\tTakagi\tI-PER\n2\tscored\tO\n3\tin\tO\n4\tOsaka\tB-LOC\n5\t(\tO\n6\tJapan\tB-LOC\n"
    "7\t)\tO\n8\tfor\tO\n9\tthe\tO\n10\tJ1\tB-MISC\n11\tLeague\tI-MISC\n12\t.\tO\n\n"
    "0\tNothing\tO\n1\there\tO\n2\t,\tO\n3\treally\tO\n4\t.\tO\n"
)


def test_conll_words_join_with_natural_spacing_and_spans_on_the_words() -> None:
    sents = parse_conll(CONLL)
    assert len(sents) == 2
    text, spans = join_words(sents[0])
    assert text == "Takuya Takagi scored in Osaka (Japan) for the J1 League."
    assert [(text[s:e], k) for s, e, k in spans] == [
        ("Takuya Takagi", "person"),
        ("Osaka", "location"),
        ("Japan", "location"),
    ]  # MISC is no kind of the head: left out
    assert join_words(sents[1]) == ("Nothing here, really.", [])
    zh, zspans = join_words([("王", "B-PER"), ("小明", "I-PER"), ("在", "O"), ("北京", "B-LOC")])
    assert zh == "王小明在北京" and [(zh[s:e], k) for s, e, k in zspans] == [
        ("王小明", "person"),
        ("北京", "location"),
    ]


def test_conll_files_load_with_the_language_from_their_path(tmp_path: Path) -> None:
    path = tmp_path / "wikineural" / "ja" / "test.conllu"
    path.parent.mkdir(parents=True)
    path.write_text(CONLL, encoding="utf-8")
    rows = load_labelled(path)
    assert [r.lang for r in rows] == ["ja", "ja"] and rows[1].spans == ()
    assert {r.lang for r in load_labelled(path, lang="xx")} == {"xx"}


def test_pii_scan_output_is_a_labelled_set(tmp_path: Path) -> None:
    path = tmp_path / "scan.jsonl"
    lines = [
        {
            "line": 1,
            "text": "Call Ana Ruiz",
            "findings": [{"kind": "person", "start": 5, "end": 13, "score": 0.9}],
        },
        {"line": 2, "text": "region = eu-west-1", "findings": []},
        {"summary": {"texts": 2}},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines), encoding="utf-8")
    rows = load_labelled(path, lang="es")
    assert [(r.text, r.spans, r.lang) for r in rows] == [
        ("Call Ana Ruiz", ((5, 13, "person"),), "es"),
        ("region = eu-west-1", (), "es"),
    ]


def test_scores_per_language_person_sentences_and_clean_texts() -> None:
    rows = [
        LabelledText("Ana Ruiz vive en Lima.", ((0, 8, "person"), (17, 21, "location")), "es"),
        LabelledText("Jan Kowalski spielt.", ((0, 12, "person"),), "de"),
        LabelledText("Nada que ver.", (), "es"),
    ]
    found = [
        (PiiFinding(kind="person", start=0, end=8, detector="entities", score=0.9),),
        (),
        (PiiFinding(kind="location", start=0, end=4, detector="entities", score=0.9),),
    ]
    res = score_findings(rows, found)
    assert res["span_recall_by_lang"]["es"] == {
        "location": {"spans": 1, "recall": 0.0},
        "person": {"spans": 1, "recall": 1.0},
    }
    assert res["span_recall_by_lang"]["de"]["person"]["recall"] == 0.0
    assert res["documents"]["all"]["person_text_recall"] == 0.5
    assert res["documents"]["lang:es"]["fp_rate"] == 1.0 and res["documents"]["lang:de"]["clean_texts"] == 0


class _Edge:
    has_token_states = True
    manifest = SimpleNamespace(dims=3)


def _head(thresholds: dict[str, float]) -> PiiHead:
    r = np.random.default_rng(0)
    w = {
        "norm_scale": np.ones(6, np.float32),
        "proj_w": r.normal(size=(6, 4)).astype(np.float32),
        "proj_b": np.zeros(4, np.float32),
        "conv_w": r.normal(size=(3, 4, 4)).astype(np.float32),
        "conv_b": np.zeros(4, np.float32),
        "out_w": r.normal(size=(8, len(TAGS))).astype(np.float32),
        "out_b": np.zeros(len(TAGS), np.float32),
    }
    return PiiHead(
        w, {"tags": list(TAGS), "thresholds": thresholds, "features": {"prompt": ["query", "document"]}}
    )


def test_the_heads_own_thresholds_apply_where_the_policy_sets_none() -> None:
    head = _head({"person": 0.35, "location": 0.7})
    assert head.prompts == ("query", "document") and head.thresholds == {"person": 0.35, "location": 0.7}
    det = PiiDetector(PiiConfig(), embedder=_Edge(), head=head)  # type: ignore[arg-type]
    assert det._thresholds["person"] == 0.35 and det._thresholds["location"] == 0.7
    assert set(det._thresholds) == set(PiiConfig().entities.kinds) <= set(HEAD_KINDS)
    policy = PiiConfig(entities=EntityConfig(thresholds={"person": 0.9}))
    det = PiiDetector(policy, embedder=_Edge(), head=head)  # type: ignore[arg-type]
    assert det._thresholds["person"] == 0.9 and det._thresholds["location"] == 0.7
