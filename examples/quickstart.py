"""Quick start: index a folder, ask questions, see where each query was routed and why.

python examples/quickstart.py                       # built-in notes, emulated Gemini
python examples/quickstart.py --folder ~/notes -q "how do I reset the VPN?"
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from _common import cloud_embedder, edge_embedder, parser

from edgeroute.framework.router.engine import HybridEngine
from edgeroute.framework.store.chroma import VectorStore
from edgeroute.framework.store.loaders import load_paths

NOTES = {
    "vpn.md": "To reset the VPN password open the self-service portal and choose 'forgot password'.",
    "travel.md": "Book business travel through the travel desk at least two weeks ahead.",
    "coffee.md": "The coffee machine on floor three is descaled every Monday morning.",
    "holidays.md": "Employees get 25 days of annual leave plus public holidays.",
}
QUESTIONS = [
    "how do I reset my VPN password?",
    "how many vacation days do I get?",
    "when is the coffee machine cleaned?",
]


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument(
        "--folder", default=None, help="folder of .md/.txt files to index (default: built-in notes)"
    )
    p.add_argument("-q", "--question", action="append", help="a question (repeatable)")
    args = p.parse_args()
    folder = Path(args.folder) if args.folder else Path(tempfile.mkdtemp())
    if not args.folder:
        for name, text in NOTES.items():
            (folder / name).write_text(text, encoding="utf-8")
    edge = edge_embedder(args.edge, args.model_dir)
    with (
        cloud_embedder(args.emulator) as (cloud, _emu),
        HybridEngine(VectorStore.ephemeral(), "quickstart", edge=edge, cloud=cloud) as engine,
    ):
        report = engine.ingest(list(load_paths([folder])))
        print(f"indexed {report.documents} chunks ({report.cloud.written} also in the cloud index)")
        for q in args.question or QUESTIONS:
            result = engine.retrieve(q, k=1)
            d = result.decision
            top = result.hits[0] if result.hits else None
            print(f"\nQ: {q}\n  route={d.route.value} reasons={list(d.codes)} degraded={d.degraded}")
            if top is not None:
                print(f"  best: {top.id} ({top.index}, score {top.score:.3f}): {top.text[:70]}")


if __name__ == "__main__":
    main()
