"""Agent tool routing: ToolRouter, its fit, escalation rules, audit, concurrency, and the framework adapters."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from langchain_core.tools import tool
from llama_index.core.tools import FunctionTool

from edgeroute.connectors import ToolRouter as ReExported
from edgeroute.connectors.bench_tools import measure_tool_routing
from edgeroute.connectors.langchain import select_tools
from edgeroute.connectors.llamaindex import tool_object_retriever
from edgeroute.connectors.tools import ToolRouter
from edgeroute.connectors.tools.clauses import split_clauses
from edgeroute.connectors.tools.data import load_tool_set
from edgeroute.connectors.tools.fitting import (
    NO_TOOL,
    HeadWithExamples,
    NearestExamples,
    Scores,
    fit_head,
    fit_scorer,
    fit_temperature,
    train_logistic,
)
from edgeroute.connectors.tools.openset import OpenSetRule, choose_threshold
from edgeroute.framework.cloud.embedder import CloudEmbedder
from edgeroute.framework.embedder import Vectors
from edgeroute.framework.errors import ConfigurationError, InputError
from edgeroute.framework.router.audit import AuditLog
from edgeroute.framework.testing.emulator import GeminiEmulator
from edgeroute.framework.testing.hashing import HashingEmbedder

MODEL = Path.home() / ".cache" / "edgeroute" / "models" / "embeddinggemma-300m"


class CountingEmbedder(HashingEmbedder):
    """The hashing embedder, recording every batch it is asked to embed."""

    def __init__(self) -> None:
        super().__init__(256)
        self.batches: list[list[str]] = []

    async def aembed_queries(self, texts: Sequence[str], *, dims: int | None = None) -> Vectors:
        self.batches.append(list(texts))
        await asyncio.sleep(0.01)  # let concurrent requests interleave while "inference" runs
        return self.embed_queries(texts, dims=dims)

    @property
    def texts(self) -> list[str]:
        return [t for b in self.batches for t in b]


def _router(embedder: HashingEmbedder | None = None, **kwargs: object) -> ToolRouter:
    r = ToolRouter(embedder or HashingEmbedder(256), **kwargs)  # type: ignore[arg-type]
    r.register(
        "weather",
        "Weather forecast for a city",
        ["what's the weather in Paris", "will it rain tomorrow", "forecast for the weekend"],
    )
    r.register(
        "refund",
        "Refund or return a purchase",
        ["I want a refund", "return these shoes for money back", "refund my last order"],
    )
    r.register(
        "patient_chart",
        "Look up a patient's medical record",
        ["show the patient's lab results", "patient medication list", "open the chart of bed 4"],
        sensitivity="restricted",
    )
    r.add_no_tool_examples(["tell me a joke", "hello there", "how are you"])
    return r


def test_import_paths() -> None:
    assert ReExported is ToolRouter


def test_clear_requests_route_and_nonsense_is_unsure() -> None:
    r = _router(threshold=0.3)
    d = r.route("will it rain in Paris tomorrow")
    assert d.top == "weather" and not d.unsure and d.served_by == "edge"
    assert d.decision.route.value == "edge" and d.latency_ms > 0
    assert 0.3 <= d.tools[0][1] <= 1.0
    assert r.route("I want a refund for these shoes").top == "refund"
    nonsense = r.route("zxqv blorp")
    assert nonsense.unsure and nonsense.tools == [] and nonsense.top is None
    assert [n for n, _ in nonsense.candidates] and len(nonsense.candidates) == 3  # ranking still reported


def test_fit_chooses_threshold_on_labelled_requests() -> None:
    r = _router()
    labelled = [
        ("is it raining in Rome", "weather"),
        ("weather tomorrow in Oslo", "weather"),
        ("refund my order please", "refund"),
        ("I want to return shoes", "refund"),
        ("patient lab results for bed 3", "patient_chart"),
        ("tell me a funny joke", None),
        ("hello", None),
    ]
    fit = r.fit(labelled)
    assert fit.requests == 7 and 0.0 <= fit.accuracy <= 1.0 and fit.examples == 15
    assert -1.0 <= fit.threshold <= 1.0 and r.threshold == fit.threshold
    assert r.fit().requests == 0  # without labelled requests: chosen on held-out folds of the examples
    with pytest.raises(InputError, match="name no registered tool"):
        r.fit([("x", "nope")])
    with pytest.raises(InputError, match="pairs"):
        r.fit(["just a string"])  # type: ignore[list-item]


def test_fixed_threshold_is_kept_by_fit() -> None:
    r = _router(threshold=0.9)
    assert r.fit().threshold == 0.9


def test_registration_errors_are_clear() -> None:
    r = ToolRouter(HashingEmbedder())
    with pytest.raises(ConfigurationError, match="no tools registered"):
        r.route("hello")
    with pytest.raises(InputError, match="at least one example"):
        r.register("a", "does a", [])
    with pytest.raises(InputError, match="not one string"):
        r.register("a", "does a", "one string")
    with pytest.raises(InputError, match="description"):
        r.register("a", " ", ["x"])
    r.register("a", "does a", ["do a"])
    with pytest.raises(InputError, match="already registered"):
        r.register("a", "does a", ["do a"])
    with pytest.raises(InputError, match="unknown sensitivity"):
        r.register("b", "does b", ["do b"], sensitivity="secret")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="non-empty"):
        r.route("  ")
    with pytest.raises(InputError, match="not one string"):
        r.route_many("one string")
    with pytest.raises(ConfigurationError, match="Embedder protocol"):
        ToolRouter(object())  # type: ignore[arg-type]
    with pytest.raises(InputError, match="between -1 and 1"):
        ToolRouter(HashingEmbedder(), threshold=1.5)


def test_single_tool_router_works() -> None:
    r = ToolRouter(HashingEmbedder(), threshold=0.3)
    r.register("weather", "Weather forecast", ["will it rain", "forecast for Paris"])
    assert r.route("will it rain in Paris").top == "weather"


def test_ambiguous_request_escalates_to_cloud(emulator: GeminiEmulator) -> None:
    cloud = CloudEmbedder(base_url=emulator.base_url, api_key="test-key", dims=256)
    audit = AuditLog(None)
    r = _router(cloud=cloud, audit=audit, threshold=1.0)
    before = emulator.request_count
    d = r.route("will it rain in Paris tomorrow")
    assert d.decision.route.value == "hybrid" and "confidence.low_top1" in d.decision.codes
    assert d.served_by == "cloud" and emulator.request_count > before
    rec = audit.tail(1)[0]
    assert rec["kind"] == "tool_routing" and rec["served_by"] == "cloud"
    assert "query_text" not in rec and len(rec["query_sha256"]) == 64


def test_private_requests_never_reach_the_cloud(emulator: GeminiEmulator) -> None:
    cloud = CloudEmbedder(base_url=emulator.base_url, api_key="test-key", dims=256)
    r = _router(cloud=cloud, threshold=1.0)
    r.route("will it rain tomorrow")  # fits the cloud side once
    assert all("lab results" not in json.dumps(req) for req in emulator.requests)  # a restricted tool
    sent = len(emulator.requests)
    pii = r.route("refund the order for jane.doe@example.com")
    assert "privacy.pii" in pii.decision.codes and pii.served_by == "edge"
    marked = r.route("will it rain tomorrow", sensitivity="restricted")
    assert "privacy.sensitivity" in marked.decision.codes and marked.served_by == "edge"
    chart = r.route("show the patient's lab results and medication", k=1)
    assert chart.candidates[0][0] == "patient_chart" and chart.served_by == "edge"
    assert len(emulator.requests) == sent
    assert all("lab results" not in json.dumps(req) for req in emulator.requests)


class NameBackend:
    """A named-entity backend standing in for the head (the hashing embedder has no token states)."""

    name = "names"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def entities(self, text: str, thresholds: dict[str, float]) -> list[tuple[str, int, int, float]]:
        self.seen.append(text)
        at = text.find("Alice Moreau")
        return [("PERSON", at, at + len("Alice Moreau"), 0.99)] if at >= 0 else []


def test_entities_the_patterns_miss_never_reach_the_cloud(emulator: GeminiEmulator) -> None:
    from edgeroute.framework.pii import PiiDetector

    backend = NameBackend()
    cloud = CloudEmbedder(base_url=emulator.base_url, api_key="test-key", dims=256)
    r = _router(cloud=cloud, threshold=1.0, pii_detector=PiiDetector(backend=backend))
    r.fit(
        [
            ("will it rain in Rome", "weather"),
            ("refund the shoes Alice Moreau bought", "refund"),
            ("hi", None),
        ]
    )
    assert r.route("will it rain tomorrow").served_by == "cloud"  # no name: it may still escalate
    named = r.route("will it rain where Alice Moreau lives")
    assert named.served_by == "edge" and "privacy.pii" in named.decision.codes
    assert "Alice" not in json.dumps(emulator.requests)  # neither the request nor the labelled one
    # The detector ran on the texts that could leave, not on every request answered on the device.
    assert "will it rain where Alice Moreau lives" in backend.seen
    backend.seen.clear()
    sure = _router(cloud=cloud, threshold=-1.0, pii_detector=PiiDetector(backend=backend))  # always sure
    assert sure.route("is it sunny where Alice Moreau lives").served_by == "edge"
    assert backend.seen == []


def test_tool_examples_with_pii_train_the_edge_side_only(emulator: GeminiEmulator) -> None:
    from edgeroute.framework.pii import PiiDetector

    backend = NameBackend()
    cloud = CloudEmbedder(base_url=emulator.base_url, api_key="test-key", dims=256)
    r = _router(cloud=cloud, threshold=1.0, pii_detector=PiiDetector(backend=backend))
    r.register(
        "email_contact",
        "Write an e-mail to a contact",
        ["mail jane.roe@example.org about the invoice", "write to Alice Moreau about lunch", "send an e-mail"],
    )
    r.fit()
    r.route("will it rain tomorrow")  # escalates: the cloud side is fitted and used
    sent = json.dumps(emulator.requests)
    assert "send an e-mail" in sent  # the example without PII trains the cloud side
    assert "jane.roe" not in sent and "Alice Moreau" not in sent  # pattern and entity findings stay home
    assert r.route("write to Alice Moreau about lunch").served_by == "edge"


def test_cloud_failure_degrades_to_edge(emulator: GeminiEmulator) -> None:
    cloud = CloudEmbedder(base_url=emulator.base_url, api_key="test-key", dims=256, offline=True)
    d = _router(cloud=cloud, threshold=1.0).route("will it rain tomorrow")
    assert d.served_by == "edge" and d.decision.degraded and "cloud.unavailable" in d.decision.codes


async def test_aroute_matches_route() -> None:
    r = _router(threshold=0.3)
    a = await r.aroute("will it rain in Paris tomorrow")
    s = r.route("will it rain in Paris tomorrow")
    assert a.top == s.top == "weather" and a.tools[0][1] == pytest.approx(s.tools[0][1])
    many = await r.aroute_many(["I want a refund", "zxqv blorp"])
    assert many[0].top == "refund" and many[1].unsure
    assert [d.top for d in r.route_many(["I want a refund", "zxqv blorp"])] == ["refund", None]
    assert await r.aroute_many([]) == []


async def test_concurrent_first_requests_embed_the_examples_once() -> None:
    emb = CountingEmbedder()
    r = _router(emb, threshold=0.3)
    requests = [f"will it rain in city number {i}" for i in range(8)]
    decisions = await asyncio.gather(*(r.aroute(q) for q in requests))
    assert all(d.top == "weather" for d in decisions)
    examples = [t for spec in r.tools for t in (spec.description, *spec.examples)]
    assert all(emb.texts.count(t) == 1 for t in examples), "each example embedded once"


async def test_route_many_embeds_one_batch_and_repeats_come_from_the_cache() -> None:
    emb = CountingEmbedder()
    r = _router(emb, threshold=0.3)
    await r.afit()
    emb.batches.clear()
    requests = ["will it rain in Oslo", "I want my money back", "hello there friend"]
    await r.aroute_many(requests)
    assert emb.batches == [requests]
    await r.aroute("will it rain in Oslo")
    r.route("I want my money back")
    assert len(emb.batches) == 1  # both were cached


async def test_last_decision_is_per_task() -> None:
    r = _router(threshold=0.3)
    await r.afit()

    async def ask(q: str) -> tuple[str | None, str | None]:
        d = await r.aroute(q)
        await asyncio.sleep(0.01)  # the other task decides meanwhile
        last = r.last_decision
        return d.top, last.top if last else None

    results = await asyncio.gather(ask("will it rain in Oslo"), ask("I want a refund for my shoes"))
    assert results == [("weather", "weather"), ("refund", "refund")]


def test_multi_tool_request_gets_one_tool_per_clause() -> None:
    r = _router(threshold=0.3)
    d = r.route("will it rain in Paris tomorrow and I want a refund for my last order")
    assert [n for n, _ in d.tools] == ["weather", "refund"]
    single = r.route("will it rain in Paris and in Rome")  # both clauses ask for the same tool
    assert [n for n, _ in single.tools] == ["weather"]
    assert [
        n
        for n, _ in _router(threshold=0.3, multi_tool=False)
        .route("will it rain in Paris tomorrow and I want a refund for my last order")
        .tools
    ] != ["weather", "refund"]


def test_split_clauses() -> None:
    assert split_clauses("book a flight to Rome and add it to my calendar") == [
        "book a flight to Rome",
        "add it to my calendar",
    ]
    assert split_clauses("check my balance, then pay my bill") == ["check my balance", "pay my bill"]
    assert split_clauses("want to know the weather. also what time is it") == [
        "want to know the weather",
        "what time is it",
    ]
    assert split_clauses("salt and pepper") == ["salt and pepper"]  # one-word sides are no clauses
    assert split_clauses("I want a refund") == ["I want a refund"]


def test_logistic_head_separates_and_calibrates() -> None:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 32)).astype(np.float32)
    y = np.repeat(np.arange(4), 10)
    x = centers[y] + 0.3 * rng.normal(size=(40, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    w, b = train_logistic(x, y, 4)
    assert ((x @ w + b).argmax(axis=1) == y).mean() == 1.0
    head = fit_head(x[::2], [str(c) for c in y[::2]], calibration=(x[1::2], [str(c) for c in y[1::2]]))
    assert 0.05 <= head.temperature <= 20 and head.tools == ("0", "1", "2", "3")
    got = head.scores(x)
    assert got.no_tool is None and np.allclose(got.rank.sum(axis=1), 1.0, atol=1e-5)
    nearest = NearestExamples.build(x, [str(c) for c in y[:-1]] + [NO_TOOL])
    near = nearest.scores(x[:3])
    assert near.rank.shape == (3, 4) and near.no_tool is not None and (near.rank.argmax(axis=1) == 0).all()
    t = fit_temperature(np.array([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0]], dtype=np.float32), np.array([0, 1, 1]))
    assert t > 1.0  # one confident mistake: soften


def test_centred_logistic_regression_reaches_the_optimum() -> None:
    # Inputs sharing a large common direction (as embeddings do): the centred descent still converges,
    # to the same minimiser a much longer run reaches.
    rng = np.random.default_rng(1)
    common = rng.normal(size=32).astype(np.float32)
    y = np.repeat(np.arange(5), 12)
    x = (
        3 * common
        + rng.normal(size=(5, 32)).astype(np.float32)[y]
        + rng.normal(size=(60, 32)).astype(np.float32)
    )
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    def objective(w: np.ndarray, b: np.ndarray) -> float:
        z = x @ w + b
        z = z - z.max(axis=1, keepdims=True)
        nll = np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]
        return float(nll.mean() + 0.5 * 1e-3 * (w**2).sum())

    short = objective(*train_logistic(x, y, 5, l2=1e-3, iterations=100))
    long = objective(*train_logistic(x, y, 5, l2=1e-3, iterations=2000))
    assert short == pytest.approx(long, rel=1e-3)


def test_head_ranks_and_nearest_examples_say_how_sure() -> None:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 32)).astype(np.float32)
    y = np.repeat(np.arange(3), 8)
    x = centers[y] + 0.3 * rng.normal(size=(24, 32)).astype(np.float32)
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    labels = [str(c) for c in y[:-4]] + [NO_TOOL] * 4
    scorer = fit_scorer("head+nearest", x, labels)
    assert isinstance(scorer, HeadWithExamples) and scorer.tools == ("0", "1", "2")
    got = scorer.scores(x)
    head, near = scorer.head.scores(x), scorer.nearest.scores(x)
    assert np.array_equal(got.rank, head.rank) and np.array_equal(got.confidence, near.confidence)
    assert got.no_tool is not None and head.no_tool is not None and near.no_tool is not None
    # Where the head's no-tool class wins the request is "no tool" whatever the cosines say.
    head_says_none = head.no_tool > head.rank.max(axis=1)
    assert head_says_none.any() and (got.no_tool[head_says_none] > 1.0).all()
    assert np.array_equal(got.no_tool[~head_says_none], near.no_tool[~head_says_none])
    # A request alone (a few rows) gets the confidence of the head's shortlist only: the same cosines.
    short = HeadWithExamples(scorer.head, scorer.nearest, shortlist=2)
    for row in range(6):
        one = short.scores(x[row : row + 1])
        top2 = np.argsort(-head.rank[row])[:2]
        assert np.allclose(one.confidence[0, top2], near.confidence[row, top2], atol=1e-5)
        assert (np.delete(one.confidence[0], top2) == -2.0).all()
        assert one.no_tool is not None and np.isclose(one.no_tool[0], got.no_tool[row], atol=1e-5)


def test_open_set_rule_and_threshold_choice() -> None:
    # The head ranks tool 1 first in row 0; the threshold applies to that tool's confidence.
    scores = Scores(
        rank=np.array([[0.4, 0.6], [0.3, 0.3], [0.6, 0.1]], dtype=np.float32),
        confidence=np.array([[0.9, 0.7], [0.3, 0.3], [0.6, 0.1]], dtype=np.float32),
        no_tool=np.array([0.1, 0.4, 0.65], dtype=np.float32),
    )
    chosen, conf = OpenSetRule(0.5).accept(scores)
    assert chosen.tolist() == [1, -1, -1] and conf[0] == pytest.approx(0.7)
    conf = np.array([0.9, 0.8, 0.3, 0.2], dtype=np.float32)
    right = np.array([True, True, False, False])
    in_scope = np.array([True, True, False, False])
    t = choose_threshold(conf, right, in_scope)
    assert 0.3 < t < 0.8


def _brute_force_threshold(conf: np.ndarray, right: np.ndarray, in_scope: np.ndarray, floor: float) -> float:
    cands = np.unique(conf[conf > -1.5])
    best, best_t = -9.0, 0.0
    for t in cands:
        sure = conf >= t
        acc = (sure & right & in_scope).sum() / in_scope.sum()
        rec = (~sure & ~in_scope).sum() / (~in_scope).sum()
        score = acc if rec >= floor else rec - 2.0
        if score > best + 1e-12:
            best, best_t = score, float(t)
    return best_t


def test_threshold_keeps_the_out_of_scope_floor_and_answers_the_most() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = 200
        in_scope = rng.random(n) < 0.8
        right = in_scope & (rng.random(n) < 0.9)
        conf = np.where(in_scope, rng.normal(0.7, 0.1, n), rng.normal(0.5, 0.1, n)).astype(np.float32)
        conf[rng.random(n) < 0.05] = -2.0  # no-tool score won
        for floor in (0.5, 0.8, 0.9):
            t = choose_threshold(conf, right, in_scope, floor=floor)
            expect = _brute_force_threshold(conf, right, in_scope, floor)
            below = np.unique(conf[(conf > -1.5) & (conf < expect)])
            assert t == pytest.approx((expect + below[-1]) / 2 if len(below) else expect - 1e-3)
            recall = ((conf < t) & ~in_scope).sum() / (~in_scope).sum()
            assert recall >= floor


def test_prompt_and_dims_are_checked(tiny_model_dir: Path) -> None:
    from edgeroute.framework.edge.embedder import EdgeEmbedder

    edge = EdgeEmbedder.load(tiny_model_dir)
    with pytest.raises(InputError, match="unknown prompt"):
        ToolRouter(edge, prompt="nope")
    with pytest.raises(InputError, match="dims"):
        ToolRouter(edge, dims=4)
    r = ToolRouter(edge, dims=128, prompt="query", threshold=0.0)
    r.register("a", "does a", ["do a thing"])
    r.register("b", "does b", ["do b thing"])
    d = r.route("do a thing")
    assert r.encoder.dims == 128 and d.top in ("a", "b")


def test_langchain_select_tools() -> None:
    @tool
    def weather(city: str) -> str:
        """Weather forecast for a city."""
        return f"sunny in {city}"

    @tool
    def refund(order_id: str) -> str:
        """Refund or return a purchase."""
        return f"refunded {order_id}"

    r = _router(threshold=0.3)
    assert [t.name for t in select_tools(r, [weather, refund], "will it rain in Paris tomorrow", k=1)] == [
        "weather"
    ]
    assert select_tools(r, [weather, refund], "zxqv blorp") == []
    assert r.last_decision is not None and r.last_decision.unsure

    @tool
    def unknown(x: str) -> str:
        """Not registered."""
        return x

    with pytest.raises(InputError, match="not registered"):
        select_tools(r, [unknown], "hi")


async def test_llamaindex_object_retriever() -> None:
    def weather(city: str) -> str:
        """Weather forecast for a city."""
        return city

    def refund(order_id: str) -> str:
        """Refund or return a purchase."""
        return order_id

    tools = [FunctionTool.from_defaults(fn=weather), FunctionTool.from_defaults(fn=refund)]
    r = _router(threshold=0.3)
    retriever = tool_object_retriever(r, tools, k=1)
    assert [t.metadata.name for t in retriever.retrieve("I want a refund for these shoes")] == ["refund"]
    assert retriever.retrieve("zxqv blorp") == []
    assert [t.metadata.name for t in await retriever.aretrieve("will it rain tomorrow")] == ["weather"]


def test_shipped_set_layout() -> None:
    s = load_tool_set()
    single = [r for r in s.test if not r.multi]
    assert len(s.tools) == 14 and len(s.fit) == 160 and len(single) == 160
    assert sum(r.tool is None for r in single) == 20 and len(s.no_tool_examples) == 6
    assert sum(r.multi for r in s.test) == 40
    assert {t.sensitivity for t in s.tools} >= {"public", "confidential", "restricted"}
    assert len(load_tool_set(shots=2).tools[0].examples) == 2


def _write(path: Path, rows: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_data_folder_draws_shots_and_reads_multi_tool_rows(tmp_path: Path) -> None:
    _write(
        tmp_path / "tools.jsonl", [{"name": "a", "description": "does a"}, {"name": "b", "description": "b"}]
    )
    rows: list[dict[str, object]] = [{"text": f"a request {i}", "tool": "a"} for i in range(6)]
    rows += [{"text": f"b request {i}", "tool": "b"} for i in range(6)]
    rows += [{"text": "nothing", "tool": None}, {"text": "a and b", "tools": ["a", "b"]}]
    _write(tmp_path / "requests.jsonl", rows)
    s = load_tool_set(tmp_path, shots=2)
    assert [len(t.examples) for t in s.tools] == [2, 2]
    assert len(s.test) == 14 - 4 and sum(r.multi for r in s.test) == 1
    drawn = {e for t in s.tools for e in t.examples}
    assert not drawn & {r.text for r in s.test}  # a drawn example is never also a test request
    out = measure_tool_routing(HashingEmbedder(256), data_dir=tmp_path, shots=2, timed=3)
    assert out["tools"] == 2 and out["multi_tool_requests"] == 1 and 0 <= out["multi_tool_recall"] <= 1


def test_data_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"tools\.jsonl"):
        load_tool_set(tmp_path)
    _write(tmp_path / "tools.jsonl", [{"name": "a", "description": "does a"}])
    _write(tmp_path / "requests.jsonl", [{"text": "x", "tool": "zzz"}])
    with pytest.raises(InputError, match="does not define"):
        load_tool_set(tmp_path)
    (tmp_path / "requests.jsonl").write_text("{not json\n")
    with pytest.raises(InputError, match="not valid JSON"):
        load_tool_set(tmp_path)


def test_measure_tool_routing_figures() -> None:
    out = measure_tool_routing(HashingEmbedder(256), timed=5)
    for key in (
        "in_scope_accuracy",
        "out_of_scope_recall",
        "overall_accuracy",
        "coverage",
        "answered_precision",
        "decision_p50_ms",
        "embedding_p50_ms",
        "decision_over_embedding",
        "fit_seconds",
        "threshold",
    ):
        assert key in out
    assert out["test_requests"] == 160 and out["top1_accuracy"] > 0.4


@pytest.mark.slow
def test_real_model_routes_tools_accurately() -> None:
    from edgeroute.framework.edge.embedder import EdgeEmbedder

    if not (MODEL / "manifest.json").is_file():
        pytest.fail(f"the exported EmbeddingGemma model is missing at {MODEL}; run `edgeroute model export`")
    out = measure_tool_routing(EdgeEmbedder.load(MODEL), timed=10)
    assert out["in_scope_accuracy"] >= 0.9 and out["out_of_scope_recall"] >= 0.7


@pytest.mark.slow
def test_real_model_a_name_in_prose_never_reaches_the_cloud(emulator: GeminiEmulator) -> None:
    """The router's default detector (the real model with the shipped, retrained head) reads the requests
    that could leave: a name in plain prose keeps the request on the device."""
    from edgeroute.framework.edge.embedder import EdgeEmbedder

    if not MODEL.is_dir():
        pytest.skip(f"model directory {MODEL} absent (run scripts/prepare-model)")
    edge = EdgeEmbedder.load(MODEL)
    if not edge.has_token_states:
        pytest.skip("the model directory has no token-state outputs (graph version < 3)")
    cloud = CloudEmbedder(base_url=emulator.base_url, api_key="test-key", dims=256)
    r = ToolRouter(edge, cloud=cloud, threshold=1.0)  # always unsure: every request would escalate
    r.register("weather", "Weather forecast for a city", ["what's the weather in Paris", "will it rain tomorrow"])
    r.register("sports", "Sports results and match reports", ["who won the match", "latest football scores"])
    before = len(emulator.requests)
    prose = "Takuya Takagi scored the winner in the 88th minute."
    d = r.route(prose)
    assert d.served_by == "edge" and "privacy.pii" in d.decision.codes
    sent = json.dumps(emulator.requests[before:])
    assert "Takagi" not in sent and "Takuya" not in sent
