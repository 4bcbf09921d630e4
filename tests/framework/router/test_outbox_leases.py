"""Outbox leases: concurrent drainers (real processes) each get disjoint rows; dead drainers' rows come back."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from edgeroute.framework.documents import Document
from edgeroute.framework.errors import InputError
from edgeroute.framework.router.outbox import Outbox, new_owner_id


def _docs(n: int) -> list[Document]:
    return [Document(f"d{i}", f"text {i}", sensitivity="public") for i in range(n)]


def _drainer(path: str, out: str, barrier: Any) -> None:
    """A drainer process: claim small batches, 'send' them (append ids to a file), complete them."""
    box = Outbox(path)
    owner = new_owner_id()
    barrier.wait(60)  # all three start claiming at the same moment
    with open(out, "a", encoding="utf-8") as fh:
        while True:
            claim = box.claim("c", 3, owner=owner, lease_s=30)
            if not claim:
                if box.depth("c") == 0:
                    break
                time.sleep(0.01)  # rows leased by the others: wait for them to finish
                continue
            for item in claim.items:
                fh.write(item.document.id + "\n")
                fh.flush()
            time.sleep(0.005)  # the cloud call
            box.complete(claim, [(i.document.id, i.content_hash) for i in claim.items])
    box.close()


def test_three_concurrent_drainer_processes_claim_each_row_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    with Outbox(path) as box:
        box.enqueue("c", _docs(150))
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(3)
    outs = [tmp_path / f"sent-{i}.txt" for i in range(3)]
    procs = [ctx.Process(target=_drainer, args=(str(path), str(o), barrier)) for o in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    sent = [line for o in outs for line in o.read_text().split()]
    assert sorted(sent) == sorted(f"d{i}" for i in range(150))  # every row once, none twice
    assert all(o.read_text() for o in outs), "each drainer should have taken part"
    with Outbox(path) as box:
        assert box.depth() == 0


def test_a_leased_row_is_invisible_to_other_drainers_until_its_lease_expires(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite") as box:
        box.enqueue("c", _docs(4))
        # A 2 s lease: still held at B's claim and the count below, however slow the machine.
        a = box.claim("c", 3, owner="hostA:1:a", lease_s=2.0)
        b = box.claim("c", 10, owner="hostB:2:b", lease_s=30)
        assert [i.document.id for i in a.items] == ["d0", "d1", "d2"]
        assert [i.document.id for i in b.items] == ["d3"]
        assert box.leased("c") == 4
        time.sleep(2.1)  # A stopped renewing (a drainer on another host that died)
        c = box.claim("c", 10, owner="hostC:3:c")
        assert [i.document.id for i in c.items] == ["d0", "d1", "d2"]
        # A comes back late: it no longer owns the rows, so its completion removes nothing.
        assert box.complete(a, [(i.document.id, i.content_hash) for i in a.items]).done == 0
        assert box.depth("c") == 4
        assert box.complete(c, [(i.document.id, i.content_hash) for i in c.items]).done == 3


def test_rows_of_a_killed_drainer_on_this_host_are_reclaimed_at_once(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    with Outbox(path) as box:
        box.enqueue("c", _docs(5))
    code = (
        "import sys, os, signal\n"
        "from edgeroute.framework.router.outbox import Outbox, new_owner_id\n"
        f"box = Outbox({str(path)!r})\n"
        "c = box.claim('c', 5, owner=new_owner_id(), lease_s=600)\n"
        "assert len(c) == 5\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert proc.returncode == -9
    with Outbox(path) as box:
        assert box.leased("c") == 5  # the dead process still "holds" them on disk ...
        claim = box.claim("c", 10, owner=new_owner_id())
        assert len(claim) == 5  # ... but it is gone, so they are free at once, not in 10 minutes


def test_only_the_owner_completes_or_fails_and_failure_releases(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite") as box:
        box.enqueue("c", _docs(2))
        mine = box.claim("c", 2, owner="me:1:x")
        thief = box.claim("c", 2, owner="other:1:y")
        assert not thief
        forged = type(mine)("other:1:y", mine.items, mine.claimed_at, mine.expires_at)
        assert box.complete(forged, [("d0", mine.items[0].content_hash)]).done == 0
        assert box.fail(forged, ["d0"], "nope") == 0
        assert box.fail(mine, ["d1"], "CloudUnavailableError: 503") == 1
        again = box.claim("c", 2, owner="other:1:y")
        assert [i.document.id for i in again.items] == ["d1"]
        assert again.items[0].attempts == 1 and "503" in (again.items[0].last_error or "")
        assert box.release("me:1:x") == 1
        assert [i.document.id for i in box.claim("c", 2, owner="third:1:z").items] == ["d0"]


def test_a_document_changed_while_being_sent_stays_queued_with_its_new_content(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite") as box:
        box.enqueue("c", _docs(1))
        claim = box.claim("c", 1, owner="me:1:x")
        box.enqueue("c", [Document("d0", "edited", sensitivity="public")])
        assert not box.claim("c", 1, owner="other:1:y")  # still leased: no concurrent send of v2
        result = box.complete(claim, [("d0", claim.items[0].content_hash)])
        assert result.done == 0 and result.changed == ["d0"]
        nxt = box.claim("c", 1, owner="other:1:y")
        assert nxt.items[0].document.text == "edited"


def test_a_document_removed_while_being_sent_is_reported_vanished(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite") as box:
        box.enqueue("c", _docs(3))
        claim = box.claim("c", 3, owner="me:1:x")
        assert box.discard("c", ["d1"]) == 1  # `edgeroute delete` while the drainer is mid-call
        result = box.complete(claim, [(i.document.id, i.content_hash) for i in claim.items])
        assert result.done == 2 and result.vanished == ["d1"]
        box.enqueue("c", [Document("d2", "text 2", sensitivity="public")])  # re-added: no tombstone
        c2 = box.claim("c", 3, owner="me:1:x")
        assert box.complete(c2, [("d2", c2.items[0].content_hash)]).vanished == []


def test_claim_validates_its_arguments() -> None:
    with Outbox(None) as box:
        with pytest.raises(InputError, match="limit"):
            box.claim("c", 0, owner="o")
        with pytest.raises(InputError, match="lease_s"):
            box.claim("c", 1, owner="o", lease_s=0)
        with pytest.raises(InputError, match="owner"):
            box.claim("c", 1, owner="")


def test_an_outbox_file_from_before_leases_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, collection TEXT NOT NULL, "
        "doc_id TEXT NOT NULL, content_hash TEXT NOT NULL, payload TEXT NOT NULL, enqueued_at REAL NOT NULL, "
        "attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, UNIQUE (collection, doc_id));"
    )
    db.close()
    with Outbox(path) as box:
        box.enqueue("c", _docs(2))
        assert len(box.claim("c", 5, owner="me:1:x")) == 2
        assert box.collections() == ["c"]
