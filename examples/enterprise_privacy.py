"""Privacy-sensitive setup: sensitivity classes, PII queries kept on-device, and the audit summary.

The emulator records every request it receives; at the end the script checks that no confidential
document and no PII query ever reached it.

    python examples/enterprise_privacy.py
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from _common import cloud_embedder, edge_embedder, parser

from edgeroute.framework.documents import Document
from edgeroute.framework.router.audit import AuditLog
from edgeroute.framework.router.engine import HybridEngine
from edgeroute.framework.store.chroma import VectorStore
from edgeroute.policies.config import PolicyConfig, policy_config_from_mapping

DOCS = [
    Document(
        id="handbook", text="Office hours are nine to five; the canteen opens at noon.", sensitivity="public"
    ),
    Document(
        id="roadmap",
        text="Internal roadmap: the mobile app ships in the second quarter.",
        sensitivity="internal",
    ),
    Document(
        id="salaries",
        text="Salary bands: senior engineers earn between 90k and 120k.",
        sensitivity="confidential",
    ),
    Document(
        id="incident",
        text="Incident 42: customer card data was exposed for an hour.",
        sensitivity="restricted",
    ),
]
QUERIES = [
    ("when does the canteen open?", "public"),
    ("what are the salary bands for senior engineers?", "confidential"),
    ("find the ticket for alice.smith@example.com", "internal"),  # PII: stays on the device
    ("when does the mobile app ship?", "internal"),
]


def main() -> None:
    p = parser(__doc__ or "")
    args = p.parse_args()
    policy: PolicyConfig = policy_config_from_mapping(
        {"cloud_ceiling": "internal", "pii": {"terms": ["Project Falcon"]}}
    )
    audit_path = Path(tempfile.mkdtemp()) / "audit.jsonl"
    with cloud_embedder(args.emulator) as (cloud, emu), AuditLog(audit_path) as audit:
        engine = HybridEngine(
            VectorStore.ephemeral(),
            "enterprise",
            edge=edge_embedder(args.edge, args.model_dir),
            cloud=cloud,
            policy=policy,
            audit=audit,
        )
        report = engine.ingest(DOCS)
        print(f"ingested {report.documents}; kept out of the cloud index: {report.private}")
        for q, sensitivity in QUERIES:
            r = engine.retrieve(q, k=1, sensitivity=sensitivity, stakes="high")
            print(f"[{sensitivity:>12}] {q}\n   -> {r.decision.route.value} {list(r.decision.codes)}")
        summary = audit.summary()
        print(
            "\naudit summary:",
            json.dumps({"queries": summary.queries, "routes": summary.routes, "reasons": summary.reasons}),
        )
        print("audit log (hashes, no query text):", audit_path)
        if emu is not None:
            sent = json.dumps(emu.requests)
            leaked = [s for s in ("Salary bands", "card data", "alice.smith", "salary bands") if s in sent]
            print("cloud saw private text:", leaked or "nothing")
            assert not leaked
        engine.close()


if __name__ == "__main__":
    main()
