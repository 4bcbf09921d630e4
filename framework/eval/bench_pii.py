"""Precision and recall of the on-device PII detectors on a labelled JSONL set.

Each line: ``{"text": ..., "spans": [{"start", "end", "kind", "detector"}, ...]}``. A finding is a
true positive when it overlaps a labelled span of the same detector; a labelled span is recalled
when some finding of its detector overlaps it. ``overall`` ignores the detector (any overlap), which
is what privacy cares about: was the sensitive span caught at all.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ...policies.config import PiiConfig, PolicyConfig, UserPattern
from ...policies.pii import detect_pii
from ...policies.signals import PiiFinding
from ..errors import InputError
from .conll import CONLL_SUFFIXES, join_words, parse_conll

BENCH_PII_CONFIG = PiiConfig(
    terms=("Project Falcon", "Bluebird merger"),
    patterns=(UserPattern(name="employee_id", regex=r"\bEMP-\d{6}\b"),),
)
"""The user terms and patterns the shipped labelled set expects (its user_terms/user_patterns rows)."""


@dataclass(frozen=True, slots=True)
class _Span:
    start: int
    end: int
    detector: str


def default_pii_set() -> Path:
    """Path of the labelled set shipped with edgeroute (``policies/data/pii_labelled.jsonl``)."""
    return Path(str(resources.files("edgeroute.policies").joinpath("data", "pii_labelled.jsonl")))


def _load(path: Path) -> list[tuple[str, list[_Span]]]:
    if not path.is_file():
        raise InputError(
            f"labelled PII set {path} does not exist; pass a JSONL file or omit it for the default"
        )
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text = row["text"]
            spans = [_Span(int(s["start"]), int(s["end"]), str(s["detector"])) for s in row.get("spans", [])]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise InputError(
                f"{path}:{n}: expected {{'text': str, 'spans': [{{'start','end','detector'}}]}}; "
                f"got an error: {exc}"
            ) from None
        if not isinstance(text, str) or any(not 0 <= s.start < s.end <= len(text) for s in spans):
            raise InputError(f"{path}:{n}: 'text' must be a string and every span must lie inside it")
        rows.append((text, spans))
    if not rows:
        raise InputError(f"labelled PII set {path} has no rows")
    return rows


def _overlaps(a: PiiFinding | _Span, b: _Span) -> bool:
    return a.start < b.end and b.start < a.end


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": round(p, 4),
        "recall": round(r, 4),
        "f1": round(2 * p * r / (p + r) if p + r else 0.0, 4),
    }


def measure_pii(
    path: str | Path | None = None, config: PolicyConfig | PiiConfig | None = None
) -> dict[str, Any]:
    """Run :func:`detect_pii` over a labelled set; per-detector and overall precision/recall, latency.

    ``path`` defaults to the shipped set, ``config`` to :data:`BENCH_PII_CONFIG`. Returns
    ``{"texts", "detectors": {name: {tp, fp, fn, precision, recall, f1}}, "overall": {...},
    "latency_ms": {"mean", "p50", "p95", "max"}, "errors": [first false positives/negatives]}``.
    """
    rows = _load(Path(path) if path is not None else default_pii_set())
    cfg = config if config is not None else BENCH_PII_CONFIG
    counts: dict[str, list[int]] = {}
    overall = [0, 0, 0]
    latencies: list[float] = []
    errors: list[dict[str, str]] = []
    detect_pii("warm-up", cfg)  # compile outside the timed loop
    for text, gold in rows:
        t0 = time.perf_counter()
        found = detect_pii(text, cfg)
        latencies.append((time.perf_counter() - t0) * 1000)
        for f in found:
            c = counts.setdefault(f.detector, [0, 0, 0])
            if any(_overlaps(f, g) and g.detector == f.detector for g in gold):
                c[0] += 1
            else:
                c[1] += 1
                if len(errors) < 50:
                    errors.append(
                        {"type": "fp", "detector": f.detector, "span": text[f.start : f.end], "text": text}
                    )
            overall[0 if any(_overlaps(f, g) for g in gold) else 1] += 1
        for g in gold:
            c = counts.setdefault(g.detector, [0, 0, 0])
            if not any(_overlaps(f, g) and f.detector == g.detector for f in found):
                c[2] += 1
                if len(errors) < 50:
                    errors.append(
                        {"type": "fn", "detector": g.detector, "span": text[g.start : g.end], "text": text}
                    )
            if not any(_overlaps(f, g) for f in found):
                overall[2] += 1
    latencies.sort()
    n = len(latencies)
    return {
        "texts": len(rows),
        "detectors": {name: _prf(*c) for name, c in sorted(counts.items())},
        "overall": _prf(*overall),
        "latency_ms": {
            "mean": round(sum(latencies) / n, 4),
            "p50": round(latencies[n // 2], 4),
            "p95": round(latencies[min(n - 1, int(n * 0.95))], 4),
            "max": round(latencies[-1], 4),
        },
        "errors": errors,
    }


__all__ = ["BENCH_PII_CONFIG", "default_pii_set", "measure_pii"]


# --- the full detector (patterns + named entities) on a span-labelled set ---------------------------------


@dataclass(frozen=True, slots=True)
class LabelledText:
    """One row of a span-labelled set: ``spans`` are ``(start, end, label)``; ``lang``/``genre`` optional."""

    text: str
    spans: tuple[tuple[int, int, str], ...]
    lang: str = ""
    genre: str = ""


def load_labelled(path: str | Path, *, lang: str = "") -> list[LabelledText]:
    """Read a span-labelled set, by its suffix:

    - JSONL (``.jsonl``/``.json``/``.ndjson``): ``{"text", "spans": [{"start", "end", "label"}]}`` lines
      (``kind`` or ``detector`` may stand in for ``label``). ``findings`` may stand in for ``spans``, so
      the output of ``pii scan --json`` (reviewed) is a labelled set too, and any JSONL ``pii scan`` reads
      is one with no gold spans (every finding a false positive).
    - BIO / CoNLL (``.conll``, ``.conllu``, ``.bio``, ``.iob``, ``.tsv``): one word and its tag per line,
      sentences separated by blank lines (:mod:`.conll`); PER/LOC/ORG become person/location/organization.
      ``lang`` names the language; without it a two-letter folder or file stem in the path is used
      (``wikineural/en/test.conllu`` is English).

    Clear errors name the line."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"labelled PII set {p} does not exist; pass a JSONL or BIO/CoNLL file with text and spans")
    if p.suffix.lower() in CONLL_SUFFIXES:
        return _load_conll(p, lang)
    rows: list[LabelledText] = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if "summary" in row and "text" not in row:
                continue  # the last line of `pii scan --json`
            text = row["text"]
            gold = row.get("spans", row.get("findings", []))
            spans = tuple(
                (int(s["start"]), int(s["end"]), str(s.get("label") or s.get("kind") or s["detector"]))
                for s in gold
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise InputError(
                f"{p}:{n}: expected {{'text': str, 'spans': [{{'start', 'end', 'label'}}]}}; got an error: {exc}"
            ) from None
        if not isinstance(text, str) or any(not 0 <= s < e <= len(text) for s, e, _ in spans):
            raise InputError(f"{p}:{n}: 'text' must be a string and every span must lie inside it")
        rows.append(LabelledText(text, spans, str(row.get("lang", lang)), str(row.get("genre", ""))))
    if not rows:
        raise InputError(f"labelled PII set {p} has no rows")
    return rows


def _path_lang(p: Path) -> str:
    for part in [p.stem, *reversed(p.parent.parts)]:
        if len(part) == 2 and part.isalpha() and part.islower():
            return part
    return ""


def _load_conll(p: Path, lang: str) -> list[LabelledText]:
    sentences = parse_conll(p.read_text(encoding="utf-8"))
    if not sentences:
        raise InputError(f"{p} has no BIO/CoNLL sentences (expected 'word<TAB>tag' lines, blank lines between sentences)")
    lang = lang or _path_lang(p)
    rows = []
    for words in sentences:
        text, spans = join_words(words)
        rows.append(LabelledText(text, tuple(spans), lang, "conll"))
    return rows


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def score_findings(rows: list[LabelledText], found: list[tuple[PiiFinding, ...]]) -> dict[str, Any]:
    """Span recall per label, document-level recall (texts with PII that got any finding) and false-positive
    rate (PII-free texts that got any finding), overall and per language/genre; finding precision."""
    per_label: dict[str, list[int]] = {}
    by_lang: dict[str, dict[str, list[int]]] = {}  # lang -> label -> [spans, recalled]
    docs: dict[str, list[int]] = {}  # group -> [pii docs, flagged pii docs, clean docs, flagged clean docs]
    tp = fp = 0
    fp_kinds: dict[str, int] = {}
    examples: list[dict[str, str]] = []
    for row, fs in zip(rows, found, strict=True):
        for s, e, label in row.spans:
            c = per_label.setdefault(label, [0, 0])
            c[0] += 1
            hit = any(f.start < e and s < f.end for f in fs)
            c[1] += hit
            lc = by_lang.setdefault(row.lang or "?", {}).setdefault(label, [0, 0])
            lc[0] += 1
            lc[1] += hit
        for f in fs:
            if any(f.start < e and s < f.end for s, e, _ in row.spans):
                tp += 1
            else:
                fp += 1
                fp_kinds[f.kind] = fp_kinds.get(f.kind, 0) + 1
                if len(examples) < 30:
                    examples.append({"kind": f.kind, "span": row.text[f.start : f.end], "text": row.text[:200]})
        groups = ["all", f"lang:{row.lang}" if row.lang else "lang:?", f"genre:{row.genre}" if row.genre else "genre:?"]
        has_person = any(label == "person" for _, _, label in row.spans)
        for g in groups:
            d = docs.setdefault(g, [0, 0, 0, 0, 0, 0])
            if row.spans:
                d[0] += 1
                d[1] += bool(fs)
            else:
                d[2] += 1
                d[3] += bool(fs)
            if has_person:  # sentence recall for people: a text naming someone got any finding
                d[4] += 1
                d[5] += bool(fs)
    return {
        "texts": len(rows),
        "span_recall": {k: {"spans": v[0], "recall": _ratio(v[1], v[0])} for k, v in sorted(per_label.items())},
        "documents": {
            g: {"pii_texts": d[0], "doc_recall": _ratio(d[1], d[0]), "clean_texts": d[2], "fp_rate": _ratio(d[3], d[2]),
                "person_texts": d[4], "person_text_recall": _ratio(d[5], d[4])}
            for g, d in sorted(docs.items())
        },
        "span_recall_by_lang": {
            lang: {k: {"spans": v[0], "recall": _ratio(v[1], v[0])} for k, v in sorted(labels.items())}
            for lang, labels in sorted(by_lang.items())
        },
        "finding_precision": _ratio(tp, tp + fp),
        "false_positive_kinds": dict(sorted(fp_kinds.items(), key=lambda kv: -kv[1])),
        "false_positive_examples": examples,
    }


def _p50(xs: list[float]) -> float:
    s = sorted(xs)
    return round(s[len(s) // 2], 3) if s else 0.0


def measure_latency(detector: Any, texts: list[str], *, samples: int = 100) -> dict[str, Any]:
    """Query latency with and without detection, side by side on the same texts and the same model.

    For each text, alternately: ``embed_queries([text])`` (the embedding alone) and
    ``detector.embed_query_batch(text)`` (embedding + token states + head + patterns, one forward pass),
    both in this thread.
    ``added_ms_p50`` is the median of the per-text differences. Also the pattern layer alone, and the
    scan rate on 1,000-character texts (``detect_many`` in batches of 16, the ``pii scan`` path).
    """
    emb = detector.embedder
    out: dict[str, Any] = {}
    picks = [t for t in texts if 0 < len(t) <= 300][:samples]
    if emb is not None and picks:
        emb.embed_queries(["warm-up"])
        detector.embed_query("warm-up for Jane Doe")
        base: list[float] = []
        both: list[float] = []
        cpu_base: list[float] = []
        cpu_both: list[float] = []
        for t in picks:
            c0, t0 = time.process_time(), time.perf_counter()
            emb.embed_queries([t])
            c1, t1 = time.process_time(), time.perf_counter()
            detector.embed_query_batch(t)
            c2, t2 = time.process_time(), time.perf_counter()
            base.append((t1 - t0) * 1000)
            both.append((t2 - t1) * 1000)
            cpu_base.append((c1 - c0) * 1000)
            cpu_both.append((c2 - c1) * 1000)
        out["queries"] = len(picks)
        out["embed_ms_p50"] = _p50(base)
        out["embed_and_detect_ms_p50"] = _p50(both)
        out["added_ms_p50"] = _p50([b - a for a, b in zip(base, both, strict=True)])
        # CPU time of the whole process (every ORT thread): steadier than wall time on a shared machine.
        out["embed_cpu_ms_p50"] = _p50(cpu_base)
        out["embed_and_detect_cpu_ms_p50"] = _p50(cpu_both)
        out["added_cpu_ms_p50"] = _p50([b - a for a, b in zip(cpu_base, cpu_both, strict=True)])
    pat: list[float] = []
    for t in picks or texts[:samples]:
        t0 = time.perf_counter()
        detector.patterns(t)
        pat.append((time.perf_counter() - t0) * 1000)
    out["patterns_ms_p50"] = _p50(pat)
    joined = " ".join(texts)
    if len(joined) >= 1000:
        docs = [joined[i : i + 1000] for i in range(0, min(len(joined), 48_000) - 999, 1000)]
        per: list[float] = []
        for b in range(0, len(docs), 16):
            batch = docs[b : b + 16]
            t0 = time.perf_counter()
            detector.detect_many(batch)
            per.append((time.perf_counter() - t0) * 1000 / len(batch))
        out["scan_1000_chars_ms_per_text_median"] = _p50(per)
        out["scan_texts"] = len(docs)
    return out


def measure_detection(
    rows: list[LabelledText], detector: Any, *, latency_samples: int = 100
) -> dict[str, Any]:
    """Run ``detector`` (a :class:`edgeroute.framework.pii.PiiDetector`) over ``rows`` and score it."""
    t0 = time.perf_counter()
    found: list[tuple[PiiFinding, ...]] = []
    for b in range(0, len(rows), 32):
        found.extend(detector.detect_many([r.text for r in rows[b : b + 32]]))
    result = score_findings(rows, found)
    result["detectors"] = detector.detectors
    result["seconds"] = round(time.perf_counter() - t0, 1)
    if latency_samples:
        result["latency"] = measure_latency(detector, [r.text for r in rows], samples=latency_samples)
    return result


__all__ += ["LabelledText", "load_labelled", "measure_detection", "measure_latency", "score_findings"]
