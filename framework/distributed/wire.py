"""What travels between the driver and the actors: one job as a JSON string, one result as bytes.

Plain strings and bytes, so Ray Data's Arrow blocks hold them as they are (no nested types to infer)
and a job is as long as its texts. Findings travel in the form they are stored in
(:func:`~edgeroute.framework.pii.stored.findings_to_json`), vectors as float32 bytes.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ...policies.signals import PiiFinding
from ..documents import Document
from ..embedder import Vectors
from ..pii.patterns import Span
from ..pii.stored import findings_from_json, findings_to_json
from ..router.passes import PassJob


def encode_job(job: PassJob) -> str:
    """The job's texts, titles, pattern spans and whether findings are wanted (ids only for errors)."""
    return json.dumps(
        {
            "ids": [d.id for d in job.docs],
            "texts": [d.text for d in job.docs],
            "titles": [d.title for d in job.docs],
            "spans": [None if s is None else [list(x) for x in s] for s in job.spans],
            "findings": job.findings,
        },
        ensure_ascii=False,
    )


def decode_job(payload: str) -> tuple[list[Document], list[list[Span] | None], bool]:
    raw = json.loads(payload)
    docs = [Document(i, t, ti) for i, t, ti in zip(raw["ids"], raw["texts"], raw["titles"], strict=True)]
    spans: list[list[Span] | None] = [
        None if s is None else [(str(k), int(a), int(b), str(d)) for k, a, b, d in s] for s in raw["spans"]
    ]
    return docs, spans, bool(raw["findings"])


def result_row(
    seq: int, vectors: Vectors, found: list[tuple[PiiFinding, ...]] | None, seconds: float
) -> dict[str, Any]:
    """A job's result; ``seconds`` the actor spent on it (for ``edgeroute bench index``)."""
    vecs = np.ascontiguousarray(vectors, dtype=np.float32)
    return {
        "seq": seq,
        "seconds": seconds,
        "vectors": json.dumps([vecs.shape[1], vecs.tobytes().hex()]),
        "findings": None if found is None else json.dumps([findings_to_json(f) for f in found]),
    }


def decode_result(row: dict[str, Any]) -> tuple[int, Vectors, list[tuple[PiiFinding, ...]] | None, float]:
    dims, data = json.loads(row["vectors"])
    vecs = np.frombuffer(bytes.fromhex(data), dtype=np.float32).reshape(-1, int(dims)).copy()
    raw = row["findings"]
    found = None if raw is None else [findings_from_json(f) for f in json.loads(raw)]
    return int(row["seq"]), vecs, found, float(row["seconds"])


__all__ = ["decode_job", "decode_result", "encode_job", "result_row"]
