"""Token states of labelled rows under a prompt, cached on disk (for scripts/train-pii-head and eval-pii-head).

A set of rows and a prompt name a cache folder (``<cache>/<name>-<prompt>-<sha12 of the rows>``); the rows
are run through the edge model sorted by length (less padding per batch), in chunks of ``CHUNK`` rows,
and each chunk is saved as float16 states, int offsets and token lengths. A rerun reads what is there.
The cache is a development artefact (``~/.cache/edgeroute-dev/pii-features``), never committed.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

CHUNK = 64
DEFAULT_CACHE = Path.home() / ".cache" / "edgeroute-dev" / "pii-features"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def rows_sha(rows: list[dict[str, Any]]) -> str:
    return hashlib.sha256(
        json.dumps([[r["text"], r["spans"]] for r in rows], sort_keys=True).encode()
    ).hexdigest()


def by_length(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows in the order they are extracted and cached (stable sort by text length)."""
    return sorted(rows, key=lambda r: len(str(r["text"])))


def model_key(model: Path) -> str:
    """12 hex digits naming the model's graph and weights (their sha256 in its manifest): token states of
    another export (a new graph version, another recipe) are other states, never read from this cache."""
    files = json.loads((Path(model) / "manifest.json").read_text(encoding="utf-8")).get("files", {})
    pinned = {k: v for k, v in files.items() if not k.startswith("tokenizer")} if isinstance(files, dict) else files
    return hashlib.sha256(json.dumps(pinned, sort_keys=True).encode()).hexdigest()[:12]


def folder(cache: Path, name: str, prompt: str, rows: list[dict[str, Any]], model: Path | None = None) -> Path:
    tag = f"-{model_key(model)}" if model is not None else ""
    return cache / f"{name}-{prompt}-{rows_sha(rows)[:12]}{tag}"


def extract(
    rows: list[dict[str, Any]],
    name: str,
    prompt: str,
    model: Path,
    cache: Path = DEFAULT_CACHE,
    emb: Any = None,
) -> tuple[list[np.ndarray[Any, Any]], list[np.ndarray[Any, Any]]]:
    """``(states, offsets)`` per row of ``by_length(rows)``, computed once and cached."""
    ordered = by_length(rows)
    out = folder(cache, name, prompt, rows, model)
    out.mkdir(parents=True, exist_ok=True)
    for c in range(0, len(ordered), CHUNK):
        part = out / f"states-{c // CHUNK:04d}.npz"
        if part.is_file():
            continue
        if emb is None:
            from edgeroute.framework.edge.embedder import EdgeEmbedder

            emb = EdgeEmbedder.load(model, threads=int(os.environ.get("PII_THREADS", "2")))
        batch = ordered[c : c + CHUNK]
        t0 = time.perf_counter()
        _, states = emb.embed_with_token_states([str(r["text"]) for r in batch], prompt)
        lengths = np.array([len(s.states) for s in states])
        tmp = part.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            feats=np.concatenate([s.states.astype(np.float16) for s in states]),
            offsets=np.concatenate([s.offsets for s in states]),
            lengths=lengths,
        )
        tmp.rename(part)
        log(
            f"{name}/{prompt}: {c + len(batch)}/{len(ordered)} rows ({time.perf_counter() - t0:.1f}s, {lengths.sum()} tokens)"
        )
    xs: list[np.ndarray[Any, Any]] = []
    offs: list[np.ndarray[Any, Any]] = []
    for part in sorted(out.glob("states-*.npz")):
        if part.name.endswith(".tmp.npz"):
            continue
        with np.load(part) as d:  # each d[key] reads the array anew: read each once
            feats, offsets, lengths = d["feats"], d["offsets"], d["lengths"]
        start = 0
        for n in lengths:
            xs.append(feats[start : start + n])
            offs.append(offsets[start : start + n])
            start += n
    if len(xs) != len(ordered):
        raise RuntimeError(f"{out} holds {len(xs)} rows, expected {len(ordered)}: remove it and rerun")
    return xs, offs


__all__ = ["CHUNK", "DEFAULT_CACHE", "by_length", "extract", "folder", "log", "model_key", "rows_sha"]
