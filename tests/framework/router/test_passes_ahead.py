"""LocalPasses keeps the model busy while ingest stores the last result: one job runs ahead, results
come in order, the pattern layer is not run twice, and a caller that stops early leaves nothing running."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy as np

from edgeroute.framework.documents import Document
from edgeroute.framework.pii.patterns import Span
from edgeroute.framework.router.passes import LocalPasses, PassJob


class Detector:
    """Stands in for the one-pass PII detector: each call takes a while (the model), and says when."""

    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.pattern_runs = 0
        self.seen_spans: list[Sequence[list[Span]] | None] = []
        self.model = asyncio.Lock()  # one call at a time, as on the inference thread

    def patterns(self, text: str) -> list[Span]:
        self.pattern_runs += 1
        return []

    async def aembed_documents_with_findings(
        self, texts: Sequence[str], titles: Sequence[str | None], dims: int | None, patterns: Any
    ) -> tuple[np.ndarray[Any, Any], list[tuple[()]]]:
        self.seen_spans.append(patterns)
        async with self.model:
            self.events.append(f"start {texts[0]}")
            await asyncio.sleep(0.05)
            self.events.append(f"end {texts[0]}")
        return np.zeros((len(texts), 4), dtype=np.float32), [() for _ in texts]


class Engine:
    def __init__(self, events: list[str]) -> None:
        self.pii = Detector(events)
        self.edge_dims = None


def jobs(n: int, spans: list[Span] | None = None) -> list[PassJob]:
    return [PassJob([Document(f"d{i}", f"t{i}")], True, True, [spans]) for i in range(n)]


async def feed(items: list[PassJob]) -> AsyncIterator[PassJob]:
    for job in items:
        yield job


async def test_the_next_call_runs_while_the_caller_stores_the_last() -> None:
    events: list[str] = []
    engine = Engine(events)
    got = []
    async for result in LocalPasses(engine).run(feed(jobs(3, spans=[]))):  # type: ignore[arg-type]
        got.append(result.job.docs[0].text)
        events.append(f"write {got[-1]}")
        await asyncio.sleep(0.05)  # the Chroma write
        events.append(f"written {got[-1]}")
    assert got == ["t0", "t1", "t2"]
    # The call for t1 started before the write of t0 ended, and t2's before t1's write.
    assert events.index("start t1") < events.index("written t0")
    assert events.index("start t2") < events.index("written t1")
    # Spans given as [] ("ran, found nothing") are used as they are: the patterns are not run again.
    assert engine.pii.pattern_runs == 0 and all(s == [[]] for s in engine.pii.seen_spans)


async def test_spans_not_run_yet_are_run_once_and_an_early_stop_leaves_no_call_running() -> None:
    events: list[str] = []
    engine = Engine(events)
    runner = LocalPasses(engine).run(feed(jobs(4)))  # type: ignore[arg-type]
    first = await runner.__anext__()
    assert first.job.docs[0].text == "t0"
    await runner.aclose()  # the caller failed: the job running ahead (t1) is cancelled
    await asyncio.sleep(0.1)
    assert "end t1" not in events and "start t2" not in events
    assert engine.pii.pattern_runs == 2  # t0 and t1, once each
