"""scripts/pii_real_data.py's reader of Stockmark's Japanese Wikipedia NER file (``ner.json``): kinds mapped,
spans checked, the split by article, and the seeded sample read from a git mirror (tiny fixture, made here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))

import pii_real_data


def _item(curid: str, text: str, ents: list[tuple[str, str]]) -> dict[str, object]:
    out = []
    for name, kind in ents:
        start = text.index(name)
        out.append({"name": name, "span": [start, start + len(name)], "type": kind})
    return {"curid": curid, "text": text, "entities": out}


def _curids(split: str, n: int) -> list[str]:
    ids = [str(i) for i in range(1000) if pii_real_data.stockmark_split(str(i)) == split]
    return ids[:n]


def _fixture() -> list[dict[str, object]]:
    test_ids, train_ids = _curids("test", 3), _curids("train", 3)
    rows = []
    for ids in (test_ids, train_ids):
        rows += [
            _item(ids[0], "高松豊次郎は東京の日活で撮影技師をつとめた。", [("高松豊次郎", "人名"), ("東京", "地名"), ("日活", "法人名")]),
            _item(ids[1], "第2作「アイアンマン2」は神田青年館で公開された。", [("アイアンマン2", "製品名"), ("神田青年館", "施設名")]),
            _item(ids[2], "あれほどまでの接触に耐えてきたのであるから硬い岩石なのは明らかである。", []),
        ]
    return rows


def test_split_is_by_article_and_stable() -> None:
    assert pii_real_data.stockmark_split("2033509") == pii_real_data.stockmark_split("2033509")
    splits = [pii_real_data.stockmark_split(str(i)) for i in range(2000)]
    assert 0.3 < splits.count("test") / len(splits) < 0.5  # 40% of the articles


def test_kinds_map_to_the_heads_and_misc_is_left_out() -> None:
    rows = pii_real_data.parse_stockmark(json.dumps(_fixture(), ensure_ascii=False), "test")
    assert len(rows) == 3
    first = rows[0]
    text = str(first["text"])
    assert [(text[s["start"] : s["end"]], s["label"]) for s in first["spans"]] == [  # type: ignore[attr-defined]
        ("高松豊次郎", "person"),
        ("東京", "location"),
        ("日活", "organization"),
    ]
    second = rows[1]
    assert [str(second["text"])[s["start"] : s["end"]] for s in second["spans"]] == ["神田青年館"]  # type: ignore[attr-defined]
    assert rows[2]["spans"] == []


def test_a_span_that_is_not_its_name_is_an_error() -> None:
    bad = [{"curid": _curids("test", 1)[0], "text": "杉本昌秀は日本の実業家。", "entities": [{"name": "杉本昌秀", "span": [1, 5], "type": "人名"}]}]
    with pytest.raises(ValueError, match="杉本昌秀"):
        pii_real_data.parse_stockmark(json.dumps(bad, ensure_ascii=False), "test")


def test_load_reads_the_mirror_commit_and_records_sha256(tmp_path: Path) -> None:
    repo = tmp_path / "ner"
    repo.mkdir()
    raw = json.dumps(_fixture(), ensure_ascii=False).encode("utf-8")
    (repo / "ner.json").write_bytes(raw)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "ner.json"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "fixture"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    rows, recipe = pii_real_data.load(
        repo / ".git", commit, pii_real_data.STOCKMARK_TRAIN, per_source=4, clean_per_source=1, seed=7
    )
    assert {r["lang"] for r in rows} == {"ja"} and {r["source"] for r in rows} == {"stockmark/train"}
    # one sentence with a person, one with a place only, one without a person, place or organisation
    assert len(rows) == 3
    assert recipe[0]["path"] == "ner.json" and recipe[0]["sentences"] == 3
    import hashlib

    assert recipe[0]["sha256"] == hashlib.sha256(raw).hexdigest()


UNER = (
    "# newdoc id = batch-0000\n# sent_id = batch-0000-0001\n# text = 次日，近卫首相宣言“不以蒋中正为谈判对手”。\n"
    "1\t次日\tO\t-\t-\n2\t，\tO\t-\t-\n3\t近卫\tB-PER\t-\ta\n4\t首相\tO\t-\t-\n5\t宣言\tO\t-\t-\n6\t“\tO\t-\t-\n"
    "7\t不\tO\t-\t-\n8\t以\tO\t-\t-\n9\t蒋\tB-PER\t-\ta\n10\t中正\tI-PER\t-\ta\n11\t为\tO\t-\t-\n12\t谈判\tO\t-\t-\n"
    "13\t对手\tO\t-\t-\n14\t”\tO\t-\t-\n15\t。\tO\t-\t-\n\n"
    "# sent_id = batch-0000-0002\n# text = 他在 Google 台北 工作。\n"
    "1\t他\tO\t-\t-\n2\t在\tO\t-\t-\n3\tGoogle\tB-ORG\t-\ta\n4\t台北\tB-LOC\t-\ta\n5\t工作\tO\t-\t-\n6\t。\tO\t-\t-\n"
)


def test_uner_rows_keep_the_treebank_text_and_word_spans() -> None:
    rows = pii_real_data.parse_uner(UNER)
    assert [r["text"] for r in rows] == ["次日，近卫首相宣言“不以蒋中正为谈判对手”。", "他在 Google 台北 工作。"]
    first, second = (str(r["text"]) for r in rows)
    assert [(first[s["start"] : s["end"]], s["label"]) for s in rows[0]["spans"]] == [  # type: ignore[attr-defined]
        ("近卫", "person"),
        ("蒋中正", "person"),  # B + I joined, the annotator column ignored
    ]
    assert [(second[s["start"] : s["end"]], s["label"]) for s in rows[1]["spans"]] == [  # type: ignore[attr-defined]
        ("Google", "organization"),
        ("台北", "location"),  # a B after another kind starts a new span
    ]


def test_uner_word_missing_from_the_text_is_an_error() -> None:
    with pytest.raises(ValueError, match="北京"):
        pii_real_data.parse_uner("# text = 他在上海。\n1\t他\tO\t-\t-\n2\t在\tO\t-\t-\n3\t北京\tB-LOC\t-\ta\n")
    assert pii_real_data.Source("uner", "zh", "test").path == "zh_gsdsimp-ud-test.iob2"
    assert pii_real_data.Source("uner", "zh-Hant", "dev").path == "zh_gsd-ud-dev.iob2"
