"""What the edge model's tokenizers cost: resident memory and time, the compact one against SentencePiece.

``python -m edgeroute.framework.eval.tokenizer_cost --model DIR --data DATA [--texts 300] [--json]``

``DIR`` holds ``tokenizer.bin`` and ``tokenizer.model``; ``DATA`` holds ``scifact/queries.jsonl`` and
``scifact/corpus.jsonl``. Memory: each tokenizer in a fresh child process that imports its modules
first, then reports ``VmRSS`` / ``VmHWM`` above that base after loading it (and one text), after 30
short queries, and after every SciFact abstract with offsets (the compact tokenizer's word cache full).
Time: one process, the texts (``--texts`` queries and abstracts under their prompts) one per call,
interleaved rounds; the compact tokenizer with its word cache cleared before each text ("cold") and
kept; medians of CPU milliseconds a text. Linux only (``/proc/self/status``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

QUERY = "task: search result | query: "
DOCUMENT = "title: none | text: "

CHILD = r"""
import json, sys, time
def st():
    d = {}
    for line in open("/proc/self/status"):
        k = line.split(":")[0]
        if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            d[k] = int(line.split()[1]) / 1024
    return d
kind, model, corpus = sys.argv[1], sys.argv[2], sys.argv[3]
texts = ["title: none | text: " + json.loads(l)["text"] for l in open(corpus, encoding="utf-8")]
queries = ["task: search result | query: query %d: what are the common side effects of statins" % i for i in range(30)]
if kind == "compact":
    from edgeroute.framework.edge.compact_tokenizer import CompactTokenizer as T
    name = "tokenizer.bin"
else:
    import sentencepiece  # noqa: F401
    from edgeroute.framework.edge.tokenizer import SentencePieceTokenizer as T
    name = "tokenizer.model"
base = st()
rows = []
def snap(step, t0):
    s = st()
    rows.append({"step": step, "seconds": round(time.perf_counter() - t0, 4),
                 "rss_mb": round(s["VmRSS"] - base["VmRSS"], 1), "peak_mb": round(s["VmHWM"] - base["VmRSS"], 1),
                 "anon_mb": round(s["RssAnon"] - base["RssAnon"], 1), "file_mb": round(s["RssFile"] - base["RssFile"], 1)})
t = time.perf_counter(); tok = T(__import__("pathlib").Path(model) / name, 2048); tok.encode_batch(["warm"]); snap("load + one text", t)
t = time.perf_counter()
for q in queries:
    tok.encode_batch([q])
snap("30 short queries", t)
t = time.perf_counter()
for x in texts:
    tok.encode_batch([x], offsets=True)
snap("%d abstracts, offsets" % len(texts), t)
print(json.dumps(rows))
"""


def memory(model: Path, corpus: Path) -> dict[str, Any]:
    """Per tokenizer kind, the child's rows (MB above its base after importing the modules)."""
    out: dict[str, Any] = {}
    for kind in ("compact", "sentencepiece"):
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, kind, str(model), str(corpus)],
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"the {kind} memory probe failed:\n{proc.stderr[-2000:]}")
        out[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def timing(model: Path, data: Path, n: int, rounds: int = 3) -> dict[str, Any]:
    """Median CPU ms a text, per text kind, offsets or not, tokenizer (interleaved rounds)."""
    from ..edge.compact_tokenizer import CompactTokenizer
    from ..edge.tokenizer import COMPACT_FILE, SENTENCEPIECE_FILE, SentencePieceTokenizer

    def read(part: str, prompt: str) -> list[str]:
        with (data / "scifact" / part).open(encoding="utf-8") as fh:
            return [prompt + str(json.loads(line)["text"]) for _, line in zip(range(n), fh, strict=False)]

    sets = {"query": read("queries.jsonl", QUERY), "abstract": read("corpus.jsonl", DOCUMENT)}
    sp = SentencePieceTokenizer(model / SENTENCEPIECE_FILE, 2048)
    out: dict[str, Any] = {}
    for label, texts in sets.items():
        for offsets in (False, True):
            cpu: dict[str, list[float]] = {
                "compact, cold": [],
                "compact, cache kept": [],
                "sentencepiece": [],
            }
            for _ in range(rounds):
                compact = CompactTokenizer(model / COMPACT_FILE, 2048)
                for key, tok, fresh in (
                    ("compact, cold", compact, True),
                    ("compact, cache kept", compact, False),
                    ("sentencepiece", sp, False),
                ):
                    t0 = time.process_time()
                    for text in texts:
                        if fresh:
                            compact.clear_cache()
                        tok.encode_batch([text], offsets=offsets)
                    cpu[key].append((time.process_time() - t0) / len(texts) * 1e3)
                compact.close()
            out[f"{label}{', offsets' if offsets else ''}"] = {
                k: round(statistics.median(v), 3) for k, v in cpu.items()
            }
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--model", required=True, type=Path, help="a model directory with tokenizer.bin and tokenizer.model"
    )
    p.add_argument("--data", required=True, type=Path, help="the folder holding scifact/")
    p.add_argument("--texts", type=int, default=300, help="queries and abstracts timed (each)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    import os

    result: dict[str, Any] = {
        "memory_mb": memory(a.model, a.data / "scifact" / "corpus.jsonl"),
        "cpu_ms_per_text": timing(a.model, a.data, a.texts),
        "load_average": os.getloadavg(),
    }
    if a.json:
        print(json.dumps(result, indent=2))
        return
    for kind, rows in result["memory_mb"].items():
        for r in rows:
            print(
                f"{kind:14s} {r['step']:26s} RSS +{r['rss_mb']:5.1f} MB (peak +{r['peak_mb']:5.1f}; "
                f"anon +{r['anon_mb']:5.1f}, file +{r['file_mb']:5.1f}) {r['seconds']:8.4f} s"
            )
    for label, row in result["cpu_ms_per_text"].items():
        print(f"{label:18s} " + "  ".join(f"{k} {v:.3f} ms" for k, v in row.items()))
    print("load average", " ".join(f"{x:.2f}" for x in result["load_average"]))


if __name__ == "__main__":
    main()


__all__ = ["memory", "timing"]
