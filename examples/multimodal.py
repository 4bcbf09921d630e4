"""Multimodal: index photos (caption at the edge, image in the cloud index), find them by text and by image.

python examples/multimodal.py --images ../shared/data/flickr8k_1k --limit 20
"""

from __future__ import annotations

import json
from pathlib import Path

from _common import cloud_embedder, edge_embedder, parser

from edgeroute.framework.documents import Document
from edgeroute.framework.parts import Part
from edgeroute.framework.router.engine import HybridEngine
from edgeroute.framework.store.chroma import VectorStore

DEFAULT_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "flickr8k_1k"


def load(folder: Path, limit: int) -> tuple[list[Document], dict[str, str]]:
    """Documents for the first ``limit`` images (caption #0 as text) and a second caption per image to query with."""
    captions: dict[str, list[str]] = {}
    for line in (folder / "queries_captions.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        captions.setdefault(row["_id"].split("#")[0], []).append(row["text"])
    docs: list[Document] = []
    queries: dict[str, str] = {}
    for line in (folder / "corpus_images.jsonl").read_text(encoding="utf-8").splitlines()[:limit]:
        row = json.loads(line)
        caps = captions.get(row["_id"], ["a photo"])
        docs.append(
            Document(
                id=row["_id"], text=caps[0], sensitivity="public", parts=(Part.file(folder / row["path"]),)
            )
        )
        queries[row["_id"]] = caps[-1]
    return docs, queries


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="a flickr8k_1k-like folder")
    p.add_argument("--limit", type=int, default=20)
    args = p.parse_args()
    docs, queries = load(args.images, args.limit)
    with cloud_embedder(args.emulator) as (cloud, _emu):
        engine = HybridEngine(
            VectorStore.ephemeral(), "photos", edge=edge_embedder(args.edge, args.model_dir), cloud=cloud
        )
        report = engine.ingest(docs)
        print(f"indexed {report.documents} photos; cloud index: {report.cloud.written}")
        first = docs[0]
        by_text = engine.retrieve(queries[first.id], k=3)
        print(
            f"\nby text {queries[first.id]!r}\n  route {by_text.decision.route.value} {list(by_text.decision.codes)}"
        )
        for h in by_text.hits:
            print(f"  {h.rank}. {h.id} ({h.index}, {h.score:.3f})")
        by_image = engine.retrieve([first.parts[0]], k=3)
        print(
            f"\nby image {first.id}\n  route {by_image.decision.route.value} {list(by_image.decision.codes)}"
        )
        for h in by_image.hits:
            print(f"  {h.rank}. {h.id} ({h.index}, {h.score:.3f})")
        assert by_image.hits[0].id == first.id
        engine.close()


if __name__ == "__main__":
    main()
