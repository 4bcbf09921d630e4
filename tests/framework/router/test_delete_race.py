"""Delete and ingest of the same id, racing a drain: the last operation wins in both indexes.

Deterministic interleavings use the emulator's latency to keep a drain's cloud call in flight
while a delete (or a new text) lands from another engine on the same store and outbox; the
randomized race runs two writers and an eager drainer until 200 operations landed and judges every id.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from router_helpers import EngineFactory, make_cloud

from edgeroute.framework.documents import Document
from edgeroute.framework.router.engine import HybridEngine
from edgeroute.framework.router.outbox import Outbox
from edgeroute.framework.router.write_order import WriteOrder
from edgeroute.framework.testing.emulator import GeminiEmulator
from edgeroute.framework.testing.race import run_race

V1 = Document("x", "running shoes, first version: sizes 38 to 46", sensitivity="public")
V2 = Document("x", "running shoes, second version: sizes 36 to 48", sensitivity="public")
# How long the emulator keeps a drain's cloud call in flight: long enough that the other engine's delete
# or ingest surely lands inside it, however slowly a loaded machine runs them.
LATENCY_MS = 2000


def _pair(
    make_engine: EngineFactory, tmp_path: Path, emu: GeminiEmulator
) -> tuple[HybridEngine, HybridEngine]:
    path = tmp_path / "outbox.sqlite"
    # A client timeout far above LATENCY_MS: the slow call is answered, never given up on.
    a = make_engine(outbox=Outbox(path), cloud=make_cloud(emu, timeout_s=30.0))
    return a, make_engine(outbox=Outbox(path), cloud=make_cloud(emu, timeout_s=30.0))


def _ingest_with_drain_in_flight(engine: HybridEngine, doc: Document) -> threading.Thread:
    """Start ``engine.ingest([doc])`` in a thread; return once its drain holds the row (cloud call in flight)."""
    t = threading.Thread(target=engine.ingest, args=([doc],))
    t.start()
    deadline = time.monotonic() + 60
    while engine.outbox.leased("docs") == 0:
        assert time.monotonic() < deadline, "the drain never claimed the row"
        time.sleep(0.005)
    return t


def _state(engine: HybridEngine) -> tuple[str | None, str | None, int]:
    edge, cloud = engine.open_index("edge"), engine.open_index("cloud")
    e = next((r.content_hash for r in edge.get(["x"])), None) if edge else None
    c = next((r.content_hash for r in cloud.get(["x"])), None) if cloud else None
    rows = int(engine.outbox._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
    return e, c, rows


def test_a_delete_landing_while_the_drain_is_sending_wins_in_the_cloud_index(
    make_engine: EngineFactory, emu: GeminiEmulator, tmp_path: Path
) -> None:
    a, b = _pair(make_engine, tmp_path, emu)
    emu.latency_ms = LATENCY_MS
    sender = _ingest_with_drain_in_flight(a, V1)
    assert b.delete(["x"]).matched == 1  # lands during the cloud call, and does not wait for it
    assert a.outbox.leased("docs") == 0 and sender.is_alive()  # the row is a tombstone the drain holds
    sender.join(60)
    assert _state(b) == (None, None, 0)  # written by the drain, then taken back out: nowhere


def test_a_delete_then_a_new_text_while_the_drain_sends_the_old_one_ends_with_the_new_one(
    make_engine: EngineFactory, emu: GeminiEmulator, tmp_path: Path
) -> None:
    a, b = _pair(make_engine, tmp_path, emu)
    emu.latency_ms = LATENCY_MS
    sender = _ingest_with_drain_in_flight(a, V1)
    b.delete(["x"])
    report = b.ingest([V2])  # B's own drain cannot take the row: A still holds it
    assert report.queued == 1
    sender.join(60)  # A learns the row changed, releases it, and its loop sends the new text
    b.sync()
    assert _state(b) == (V2.content_hash(), V2.content_hash(), 0)


def test_a_new_text_while_the_old_one_is_being_sent_is_sent_after_it(
    make_engine: EngineFactory, emu: GeminiEmulator, tmp_path: Path
) -> None:
    a, b = _pair(make_engine, tmp_path, emu)
    emu.latency_ms = LATENCY_MS
    sender = _ingest_with_drain_in_flight(a, V1)
    b.ingest([V2])
    sender.join(60)
    b.sync()
    assert _state(b) == (V2.content_hash(), V2.content_hash(), 0)


def test_a_tombstone_left_by_a_drainer_that_died_is_finished_by_the_next_drain(
    make_engine: EngineFactory, emu: GeminiEmulator, tmp_path: Path
) -> None:
    a, _ = _pair(make_engine, tmp_path, emu)
    a.ingest([V1])
    cloud = a.open_index("cloud")
    assert cloud is not None
    stored = cloud.get(["x"], include_vectors=True)[0]
    # A drainer on another host claims a new text, and dies after writing it but before completing.
    a.outbox.enqueue("docs", [V2])
    # A 2 s lease: the delete below surely lands while it holds, however slow the machine.
    assert a.outbox.claim("docs", 5, owner="elsewhere:1:dead", lease_s=2.0)
    a.delete(["x"])
    assert stored.vector is not None
    cloud.upsert(
        ["x"],
        np.asarray([stored.vector], dtype=np.float32),
        space=cloud.space,
        texts=[stored.text],
        content_hashes=[stored.content_hash or ""],
    )  # the dead drainer's late write, after the delete
    time.sleep(2.1)  # its lease runs out
    a.sync()
    assert _state(a) == (None, None, 0)


def test_two_writers_and_a_drainer_racing_on_the_same_ids_agree_in_both_indexes(tmp_path: Path) -> None:
    # The race must really happen: it runs until 200 operations landed on the 30 ids (about 4 s on an
    # idle machine), however long a loaded machine takes to get there, within a generous 300 s.
    result = run_race(
        tmp_path, ids=30, seconds=0.0, latency_ms=15.0, seed=3, min_operations=200, max_seconds=300
    )
    assert result.operations >= 200, f"only {result.operations} operations in 300 s"
    assert result.stale == [] and result.mismatched_text == []


_HOLDER = """
import sys, time, asyncio
from pathlib import Path
from edgeroute.framework.router.write_order import WriteOrder
async def main():
    async with WriteOrder(Path(sys.argv[1]), "docs").hold():
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
        Path(sys.argv[3]).write_text("released")
asyncio.run(main())
"""


def test_the_write_order_is_shared_with_other_processes_and_freed_when_its_holder_is_killed(
    tmp_path: Path,
) -> None:
    import asyncio

    outbox, marker = tmp_path / "outbox.sqlite", tmp_path / "marker"

    async def take() -> str:
        async with WriteOrder(outbox, "docs").hold():
            return marker.read_text() if marker.exists() else "not released"

    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(outbox), "0.5", str(marker)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    assert asyncio.run(take()) == "released"  # waited for the other process to let go
    holder.wait(10)

    killed = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(outbox), "600", str(tmp_path / "never")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert killed.stdout is not None and killed.stdout.readline().strip() == "held"
    killed.kill()
    killed.wait(10)
    marker.unlink()
    assert asyncio.run(take()) == "not released"  # kill -9: the kernel dropped the lock


def test_a_row_dropped_by_privacy_at_drain_time_leaves_no_row_and_no_cloud_record(
    make_engine: EngineFactory, emu: GeminiEmulator
) -> None:
    engine = make_engine()
    engine.ingest([V1])  # public: in the cloud index
    engine.outbox.enqueue("docs", [Document("x", V2.text, sensitivity="confidential")])  # queued as if public
    report = engine.sync()
    assert report.refused == 1
    _, cloud_hash, rows = _state(engine)
    assert cloud_hash is None and rows == 0  # the older public version left the cloud index too
