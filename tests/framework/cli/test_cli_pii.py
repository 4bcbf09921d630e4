"""``edgeroute pii scan`` and ``edgeroute bench pii --data``: output contract, bad input, bounded batches."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeroute.framework.cli import app
from edgeroute.framework.cli.pii import BATCH_LINES
from edgeroute.framework.edge.model_dir import default_model_cache
from edgeroute.framework.eval.bench_pii import load_labelled

INDEPENDENT = Path(__file__).resolve().parents[3] / "framework" / "eval" / "data" / "pii_independent.jsonl"


def _scan(*args: str) -> tuple[int, list[dict]]:
    result = CliRunner().invoke(app, ["pii", "scan", *args, "--json"])
    lines = [json.loads(x) for x in result.stdout.splitlines() if x.strip()]
    return result.exit_code, lines


def test_scan_jsonl_echoes_fields_adds_findings_then_a_summary(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    rows = [
        {"id": "a", "text": "write to jane.roe@example.org"},
        {"id": "b", "text": "nothing to see here"},
        {"id": "c", "text": "🙂 IBAN DE89 3704 0044 0532 0130 00"},
    ]
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    code, out = _scan(str(src), "--patterns-only")
    assert code == 0
    assert [o["id"] for o in out[:-1]] == ["a", "b", "c"]
    a, b, c = out[:3]
    assert a["findings"] == [{"kind": "email", "start": 9, "end": 29, "score": 1.0, "detector": "email"}]
    assert b["findings"] == []
    f = c["findings"][0]
    assert rows[2]["text"][f["start"] : f["end"]] == "DE89 3704 0044 0532 0130 00"  # code points, not bytes
    summary = out[-1]["summary"]
    assert summary["texts"] == 3 and summary["texts_with_findings"] == 2 and summary["errors"] == 0


def test_bad_lines_are_reported_by_number_and_the_rest_is_scanned(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(
        b'{"text": "mail a.b@example.org"}\n'
        b'{"text": 42}\n'
        b'{"text": "caf\xe9 latin-1"}\n'
        b"not json\n"
        b'{"body": "no text field"}\n'
        b'{"text": "call +44 20 7946 0958"}\n'
        b'{"text": "lone \\ud800 surrogate"}\n'
    )
    code, out = _scan(str(src), "--patterns-only")
    assert code == 1  # some lines could not be scanned: say so in the exit status too
    errors = {o["line"]: o["error"] for o in out if "error" in o}
    assert set(errors) == {2, 3, 4, 5, 7}
    assert (
        "not a string" in errors[2] and "UTF-8" in errors[3] and "JSON" in errors[4] and '"text"' in errors[5]
    )
    assert "unpaired surrogate (U+D800) at character 5" in errors[7]
    scanned = [o for o in out if "findings" in o]
    assert [o["line"] for o in scanned] == [1, 6] and all(o["findings"] for o in scanned)
    assert out[-1]["summary"]["errors"] == 5 and out[-1]["summary"]["texts"] == 2


def test_scan_a_folder_of_documents(tmp_path: Path) -> None:
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / "a.md").write_text("# Note\nreach me at +33 1 91 38 90 90\n", encoding="utf-8")
    (tmp_path / "docs" / "sub" / "b.txt").write_text("plain text", encoding="utf-8")
    (tmp_path / "docs" / "bad.txt").write_bytes(b"\xff\xfe broken")
    code, out = _scan(str(tmp_path / "docs"), "--patterns-only")
    by_path = {o["path"]: o for o in out if "path" in o}
    assert by_path["a.md"]["findings"][0]["kind"] == "phone"
    assert by_path["sub/b.txt"]["findings"] == []
    assert "UTF-8" in by_path["bad.txt"]["error"] and code == 1


def test_ten_thousand_lines_and_a_one_megabyte_text_stream_through(tmp_path: Path) -> None:
    src = tmp_path / "big.jsonl"
    with src.open("w", encoding="utf-8") as fh:
        for i in range(10_000):
            fh.write(json.dumps({"i": i, "text": f"line {i} mail u{i}@example.org"}) + "\n")
        fh.write(
            json.dumps({"i": "big", "text": ("lorem ipsum dolor sit amet " * 40_000) + "k.l@example.org"})
            + "\n"
        )
    code, out = _scan(str(src), "--patterns-only")
    assert code == 0
    assert out[-1]["summary"]["texts"] == 10_001 and out[-1]["summary"]["texts_with_findings"] == 10_001
    assert out[-2]["i"] == "big" and out[-2]["findings"][0]["start"] > 1_000_000
    assert BATCH_LINES <= 256  # memory is bounded by one batch of lines, not the file


def test_scan_refuses_missing_or_wrong_inputs(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["pii", "scan", str(tmp_path / "nope.jsonl")])
    assert r.exit_code != 0 and "does not exist" in str(r.exception)
    (tmp_path / "x.csv").write_text("a,b")
    r = CliRunner().invoke(app, ["pii", "scan", str(tmp_path / "x.csv")])
    assert r.exit_code != 0 and ".jsonl" in str(r.exception)


def test_bench_pii_on_the_independent_set_reports_recall_fp_and_per_label_figures() -> None:
    r = CliRunner().invoke(
        app,
        ["bench", "pii", "--data", str(INDEPENDENT), "--patterns-only", "--latency-samples", "0", "--json"],
    )
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["texts"] == len(load_labelled(INDEPENDENT))
    assert {"email", "phone", "secret", "person"} <= set(res["span_recall"])
    docs = res["documents"]
    assert docs["genre:secret"]["doc_recall"] >= 0.9 and docs["genre:secret"]["fp_rate"] <= 0.1
    assert docs["all"]["fp_rate"] is not None


def test_bench_against_an_unknown_backend_is_refused() -> None:
    r = CliRunner().invoke(app, ["bench", "pii", "--data", str(INDEPENDENT), "--against", "nope"])
    assert r.exit_code != 0 and "presidio" in str(r.exception)


@pytest.mark.slow
def test_scan_with_the_real_model_finds_a_name_in_prose(tmp_path: Path) -> None:
    """`pii scan` with no options loads the shipped (retrained) head: a name in plain prose is found."""
    model = Path(os.environ.get("EDGEROUTE_EDGE_MODEL") or default_model_cache())
    if not model.is_dir():
        pytest.skip(f"model directory {model} absent (run scripts/prepare-model)")
    prose = "Takuya Takagi scored the winner in the 88th minute."
    src = tmp_path / "news.jsonl"
    src.write_text(json.dumps({"text": prose}) + "\n" + json.dumps({"text": "region = eu-west-1"}) + "\n")
    code, out = _scan(str(src), "--model", str(model))
    assert code == 0 and out[-1]["summary"]["entities"] is True
    people = [prose[f["start"] : f["end"]] for f in out[0]["findings"] if f["kind"] == "person"]
    assert any("Takagi" in p for p in people), out[0]
    assert out[1]["findings"] == []
