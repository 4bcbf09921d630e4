"""The edgeroute demo: index a bundled handbook, answer queries, show every routing decision.

    scripts/demo                        # from a fresh machine: set-up, model, then this script
    python examples/demo.py [--json]    # once installed; --edge hashing runs without the model

It starts a loopback Gemini emulator (whose text vectors are EmbeddingGemma's through a fixed rotation,
so results are sensible; the emulator reproduces Gemini's protocol, not its quality) unless GEMINI_API_KEY
is set. At the end it reads the emulator's recording and proves that no private text left the device.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import edge_embedder, parser
from rich.console import Console
from rich.table import Table

from edgeroute.framework.cloud.embedder import CloudEmbedder
from edgeroute.framework.documents import Document
from edgeroute.framework.router.audit import AuditLog
from edgeroute.framework.router.engine import HybridEngine
from edgeroute.framework.router.policy_files import load_high_stakes_set
from edgeroute.framework.router.semantic_routes_file import fit_routes
from edgeroute.framework.store.chroma import VectorStore
from edgeroute.framework.testing.emulator import GeminiEmulator

CORPUS = Path(__file__).with_name("data") / "handbook.jsonl"

# (query, sensitivity, stakes, what it shows)
QUERIES: list[tuple[str, str, str, str]] = [
    ("how many vacation days do I get per year?", "internal", "normal", "confident edge answer"),
    ("how do I reset my VPN password?", "internal", "normal", "confident edge answer"),
    (
        "can I take ibuprofen with my blood pressure pills, what is the max dose?",
        "internal",
        "normal",
        "semantic high-stakes route -> hybrid",
    ),
    (
        "a supplier asks us to wire 80,000 euros to a new bank account today",
        "internal",
        "high",
        "caller marks high stakes -> hybrid",
    ),
    (
        "my card 4111 1111 1111 1111 was charged twice for a refund, who helps?",
        "internal",
        "normal",
        "PII found on-device -> stays at the edge",
    ),
    (
        "what are the 2026 salary bands for L5 engineers?",
        "restricted",
        "normal",
        "restricted query -> never leaves the device",
    ),
    ("stuff about the thing", "internal", "normal", "low edge confidence -> escalates"),
]
OFFLINE_QUERY = (
    "what should I do if the fire alarm goes off?",
    "internal",
    "high",
    "cloud offline -> edge, degraded",
)


def load_corpus() -> list[Document]:
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [
        Document(id=r["id"], title=r["title"], text=r["text"], sensitivity=r["sensitivity"]) for r in rows
    ]


def main() -> int:
    p = parser(__doc__ or "")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = p.parse_args()
    console = Console(stderr=args.json, width=None if sys.stdout.isatty() else 150)
    edge = edge_embedder(args.edge, args.model_dir)
    docs = load_corpus()
    work = Path(tempfile.mkdtemp(prefix="edgeroute-demo-"))

    def emulator_text(texts: list[str]) -> Any:
        # The emulator receives Gemini's task prefixes, which are EmbeddingGemma's prompts verbatim.
        embed = getattr(edge, "embed", None)
        return embed(texts, None) if embed is not None else edge.embed_documents(texts)

    with GeminiEmulator(text_embedder=emulator_text, record_path=work / "emulator.jsonl") as emu:
        cloud = CloudEmbedder(dims=768, api_key="emulator-key", base_url=emu.base_url)
        texts, labels = load_high_stakes_set()
        with console.status("fitting high-stakes semantic routes on-device"):
            routes, _ = fit_routes(edge, texts, labels)
        audit = AuditLog(work / "audit.jsonl")
        with HybridEngine(
            VectorStore.persistent(work / "store"),
            "handbook",
            edge=edge,
            cloud=cloud,
            audit=audit,
            outbox_path=work / "outbox.sqlite",
            semantic_routes=routes,
        ) as engine:
            t = time.perf_counter()
            report = engine.ingest(docs)
            console.print(
                f"indexed {report.documents} documents in {time.perf_counter() - t:.1f} s: all in the edge index, "
                f"{report.cloud.written} in the cloud index, {report.private} kept on-device (sensitivity/PII)"
            )
            rows: list[dict[str, Any]] = []
            for q, sens, stakes, note in [*QUERIES, OFFLINE_QUERY]:
                if (q, sens, stakes, note) == OFFLINE_QUERY:
                    cloud.offline = True
                t = time.perf_counter()
                result = engine.retrieve(q, k=3, sensitivity=sens, stakes=stakes, deadline_ms=2000)
                ms = (time.perf_counter() - t) * 1000
                top = result.hits[0] if result.hits else None
                rows.append(
                    {
                        "query": q,
                        "sensitivity": sens,
                        "stakes": stakes,
                        "shows": note,
                        "route": result.decision.route.value,
                        "reasons": list(result.decision.codes),
                        "degraded": result.decision.degraded,
                        "latency_ms": round(ms, 1),
                        "top": None
                        if top is None
                        else {"id": top.id, "index": top.index, "score": round(top.score, 4)},
                    }
                )
            cloud.offline = False
            summary = audit.summary()
        private_texts = [d.text for d in docs if d.sensitivity in ("confidential", "restricted")]
        private_texts += [q for q, s, _, n in QUERIES if s == "restricted" or "PII" in n]
        sent = json.dumps(emu.requests)
        leaked = [t for t in private_texts if t[:40] in sent]

    result_doc = {
        "queries": rows,
        "audit": summary.to_dict() if hasattr(summary, "to_dict") else str(summary),
        "emulator_requests": len(emu.requests),
        "private_texts_checked": len(private_texts),
        "private_texts_leaked": len(leaked),
    }
    if args.json:
        print(json.dumps(result_doc, indent=2, default=str))
        return 0 if not leaked else 1
    table = Table(title="routing decisions", show_lines=True)
    for col in ("query", "shows", "route", "reasons", "top hit", "ms"):
        table.add_column(col, overflow="fold")
    for r in rows:
        top = r["top"]
        hit = "-" if top is None else f"{top['id']} ({top['index']}, {top['score']:.3f})"
        route = r["route"] + (" [degraded]" if r["degraded"] else "")
        table.add_row(r["query"], r["shows"], route, "\n".join(r["reasons"]), hit, f"{r['latency_ms']:.0f}")
    console.print(table)
    audit_summary = result_doc["audit"]
    if isinstance(audit_summary, dict):
        routes = ", ".join(f"{k} {v}" for k, v in audit_summary.get("routes", {}).items())
        console.print(
            f"audit: {audit_summary.get('queries')} queries ({routes}); degraded {audit_summary.get('degraded')}; "
            f"cloud calls {audit_summary.get('cloud_calls')}, est. cost ${audit_summary.get('cloud_cost_usd', 0):.6f}; "
            f"p50 {audit_summary.get('latency_p50_ms') or 0:.0f} ms"
        )
    else:
        console.print(f"audit: {audit_summary}")
    verdict = "[green]none[/]" if not leaked else f"[red]{len(leaked)} LEAKED[/]"
    console.print(
        f"privacy check: {len(emu.requests)} requests reached the emulator; private texts found in them: {verdict}"
    )
    return 0 if not leaked else 1


if __name__ == "__main__":
    sys.exit(main())
