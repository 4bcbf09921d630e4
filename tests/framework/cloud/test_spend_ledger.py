"""The store's spend ledger: shared by processes, exact under concurrency, and the budget cap reads it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from router_helpers import API_KEY
from typer.testing import CliRunner

from edgeroute.framework.cli import app
from edgeroute.framework.cloud.ledger import SpendLedger
from edgeroute.framework.testing.emulator import GeminiEmulator

runner = CliRunner()


def test_two_ledgers_on_one_file_see_one_total_and_reset_starts_a_new_period(tmp_path: Path) -> None:
    a, b = SpendLedger(tmp_path / "spend.sqlite"), SpendLedger(tmp_path / "spend.sqlite")
    a.add({"text": 100}, {"text": 2e-5}, 3)
    b.add({"text": 50, "image": 258}, {"text": 1e-5, "image": 1.161e-4}, 2)
    total = a.total()
    assert total.cost_usd == pytest.approx(2e-5 + 1e-5 + 1.161e-4)
    assert total.tokens == {"text": 150, "image": 258} and total.calls == 2 and total.requests == 5
    assert b.reset().calls == 2
    assert a.total().cost_usd == 0.0 and a.total().calls == 0


def test_reading_a_ledger_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    ledger = SpendLedger(tmp_path / "missing" / "spend.sqlite")
    assert ledger.total().cost_usd == 0.0
    assert not (tmp_path / "missing").exists()


def test_concurrent_processes_add_exactly(tmp_path: Path) -> None:
    path = tmp_path / "spend.sqlite"
    code = (
        "from edgeroute.framework.cloud.ledger import SpendLedger\n"
        f"led = SpendLedger({str(path)!r})\n"
        "for _ in range(200):\n"
        "    led.add({'text': 7}, {'text': 1e-6}, 1)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(3)]
    assert [p.wait(120) for p in procs] == [0, 0, 0]
    total = SpendLedger(path).total()
    assert total.calls == 600 and total.tokens == {"text": 4200}
    assert total.cost_usd == pytest.approx(600e-6)


def _json(*args: str, codes: tuple[int, ...] = (0,)) -> dict[str, object]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code in codes, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_the_budget_cap_holds_across_cli_calls_and_status_shows_the_store_total(
    tmp_path: Path, emu: GeminiEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("EDGEROUTE_POLICY", "GOOGLE_API_KEY", "EDGEROUTE_OFFLINE", "EDGEROUTE_BUDGET_USD"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("EDGEROUTE_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("EDGEROUTE_COLLECTION", "notes")
    monkeypatch.setenv("EDGEROUTE_EDGE", "hashing")
    monkeypatch.setenv("GEMINI_API_KEY", API_KEY)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emu.base_url)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.txt").write_text("Cushioned running shoes for long distances and trail races.\n")
    (notes / "b.txt").write_text("Espresso machines need descaling every two months.\n")
    _json("index", str(notes), "--sensitivity", "public", "--json")
    after_index = _json("status", "--json")["cloud"]["store_spend"]["cost_usd"]  # type: ignore[index]
    assert after_index > 0
    # A cap just above what is spent: the first query may still use the cloud, later ones may not.
    monkeypatch.setenv("EDGEROUTE_BUDGET_USD", repr(after_index * 1.0000001))
    routes = []
    for _ in range(3):  # three separate CLI calls, each with a fresh cloud client
        out = _json("query", "running shoes for trail races", "--stakes", "high", "--json", codes=(0, 3))
        routes.append((out["decision"]["route"], out["decision"]["degraded"]))  # type: ignore[index]
    assert routes[0] == ("hybrid", False)
    assert routes[1:] == [
        ("edge", True),
        ("edge", True),
    ]  # the cap held: process 2 and 3 saw process 1's spend
    status = _json("status", "--json")
    spent = status["cloud"]["store_spend"]["cost_usd"]  # type: ignore[index]
    assert spent > after_index and status["budget_left_usd"] == 0.0
