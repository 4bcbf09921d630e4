"""Where a query process's memory goes: resident memory after each step of loading the edge model.

``python -m edgeroute.framework.eval.edge_memory [--model DIR] [--queries 30] [--threads 2] [--json]``

The steps run in a fresh child process (a ``python -c`` that imports nothing before the first
snapshot), so every figure is that process's own: Python, numpy, onnxruntime, edgeroute's edge modules,
the tokenizer, the ONNX session (weights), the first query, then ``--queries`` short queries. After each
step it reads ``VmRSS`` / ``VmHWM`` (peak) / ``RssAnon`` / ``RssFile`` from ``/proc/self/status``
(tracemalloc cannot see ONNX Runtime's C++ allocations), and at the end the largest resident mappings
from ``/proc/self/smaps`` (the heap, ONNX Runtime's library, the memory-mapped weights file). Linux only.
The issue's target is the last step's peak: a process that loads the default model and embeds 30 short
queries, at most 200 MB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

CHILD = r"""
import json, os, re, sys, time
steps = []
def snap(step, t0):
    row = {"step": step, "seconds": round(time.perf_counter() - t0, 3)}
    for line in open("/proc/self/status"):
        key = line.split(":")[0]
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            row[key] = round(int(line.split()[1]) / 1024, 1)
    steps.append(row)
t = time.perf_counter(); snap("python", t)
t = time.perf_counter(); import numpy as np; snap("numpy", t)
t = time.perf_counter(); import onnxruntime; snap("onnxruntime", t)
t = time.perf_counter(); from edgeroute.framework.edge.embedder import EdgeEmbedder; snap("edge modules", t)
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"chromadb", "pydantic", "torch", "tokenizers", "typer", "rich", "httpx"})
cfg = json.loads(sys.argv[1])
t = time.perf_counter()
edge = EdgeEmbedder.load(cfg["model"], threads=cfg["threads"], verify=False, lazy=True)
edge.count_tokens(["warm"]); snap("tokenizer (" + edge.tokenizer_kind + ")", t)
t = time.perf_counter(); edge._session; snap("onnx session (weights)", t)
queries = ["query %d: what are the common side effects of statins in older adults" % i for i in range(cfg["queries"])]
t = time.perf_counter(); edge.embed_queries([queries[0]]); snap("first query", t)
t = time.perf_counter()
for q in queries[1:]:
    edge.embed_queries([q])
snap("%d queries" % len(queries), t)
maps = {}
cur = None
for line in open("/proc/self/smaps"):
    m = re.match(r"^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$", line)
    if m:
        cur = m.group(1) or "[anonymous mappings]"
    elif line.startswith("Rss:"):
        maps[cur] = maps.get(cur, 0) + int(line.split()[1])
top = sorted(maps.items(), key=lambda kv: -kv[1])[:8]
print(json.dumps({"steps": steps, "heavy_modules": heavy, "tokenizer": edge.tokenizer_kind,
                  "mappings_mb": [[os.path.basename(k) if k.startswith("/") else k, round(v / 1024, 1)] for k, v in top]}))
"""


def measure(model: str | None = None, *, queries: int = 30, threads: int = 2) -> dict[str, Any]:
    """Run the steps in a fresh child process; returns ``{"steps": [...], "peak_mb": ..., ...}``."""
    from ..edge.model_dir import resolve_model_dir

    path = str(resolve_model_dir(model, download=False))
    cfg = json.dumps({"model": path, "queries": max(1, queries), "threads": threads})
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, cfg], capture_output=True, text=True, timeout=600, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the memory probe failed:\n{proc.stderr[-2000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["model"] = path
    out["threads"] = threads
    out["peak_mb"] = out["steps"][-1]["VmHWM"]
    return out


def table(result: dict[str, Any]) -> str:
    lines = [f"{'step':28s} {'RSS':>7s} {'peak':>7s} {'anon':>7s} {'file':>7s} {'s':>6s}"]
    for s in result["steps"]:
        lines.append(
            f"{s['step']:28s} {s['VmRSS']:7.1f} {s['VmHWM']:7.1f} {s['RssAnon']:7.1f} {s['RssFile']:7.1f} "
            f"{s['seconds']:6.2f}"
        )
    lines.append(f"peak RSS {result['peak_mb']} MB (target <= 200); model {result['model']}")
    lines.append("largest resident mappings (MB): " + ", ".join(f"{k} {v}" for k, v in result["mappings_mb"]))
    if result["heavy_modules"]:
        lines.append("heavy modules imported by the edge path: " + ", ".join(result["heavy_modules"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model directory (default: resolved as EdgeEmbedder.load does)")
    p.add_argument("--queries", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    result = measure(a.model, queries=a.queries, threads=a.threads)
    print(json.dumps(result, indent=2) if a.json else table(result))


if __name__ == "__main__":
    main()


__all__ = ["measure", "table"]
