"""Edge embeddings are stored as batches finish: a run killed midway (kill -9) keeps them, and the
next run embeds only what is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edgeroute.framework.documents import Document
from edgeroute.framework.router.engine import HybridEngine
from edgeroute.framework.router.ingest import EMBED_BATCH
from edgeroute.framework.store.chroma import VectorStore
from edgeroute.framework.testing.hashing import HashingEmbedder

N = 60
DOCS = "[Document(f'd{i}', f'chunk {i} about freight rules ' + 'word ' * 40) for i in range(" + str(N) + ")]"


class Counting(HashingEmbedder):
    def __init__(self, dims: int) -> None:
        super().__init__(dims)
        self.embedded = 0

    async def aembed_documents(self, texts, *, titles=None, dims=None):  # type: ignore[no-untyped-def]
        self.embedded += len(texts)
        return await super().aembed_documents(texts, titles=titles, dims=dims)


def test_a_run_killed_during_edge_embedding_keeps_finished_batches(tmp_path: Path) -> None:
    store = tmp_path / "store"
    code = f"""
import os, signal
from edgeroute.framework.documents import Document
from edgeroute.framework.router.engine import HybridEngine
from edgeroute.framework.store.chroma import VectorStore
from edgeroute.framework.testing.hashing import HashingEmbedder

class Dying(HashingEmbedder):
    calls = 0
    async def aembed_documents(self, texts, *, titles=None, dims=None):
        Dying.calls += 1
        if Dying.calls == 3:  # two batches done, the third in flight: kill -9
            os.kill(os.getpid(), signal.SIGKILL)
        return await super().aembed_documents(texts, titles=titles, dims=dims)

engine = HybridEngine(VectorStore.persistent({str(store)!r}), "resume", edge=Dying(64))
engine.ingest({DOCS})
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert proc.returncode == -9, proc.stderr
    kept = VectorStore.persistent(store).get_collection("resume.edge").count()
    # The finished batches survived the kill. The third call runs ahead, while the second batch is
    # being stored (LocalPasses), so the kill lands during that write or after it: whole batches only.
    assert kept in (EMBED_BATCH, 2 * EMBED_BATCH)
    edge = Counting(64)
    docs = [Document(f"d{i}", f"chunk {i} about freight rules " + "word " * 40) for i in range(N)]
    with HybridEngine(VectorStore.persistent(store), "resume", edge=edge) as engine:
        report = engine.ingest(docs)
    assert edge.embedded == N - kept  # the re-run reused them
    assert report.edge_written == N - kept and report.edge_unchanged == kept
