"""A LlamaIndex query engine over the edgeroute retriever (MockLLM here; pass any LlamaIndex LLM).

python examples/llamaindex_query_engine.py "how is bread made?"
"""

from __future__ import annotations

from _common import cloud_embedder, edge_embedder, parser
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.response_synthesizers import get_response_synthesizer

from edgeroute.connectors.llamaindex import EdgeRouteRetriever
from edgeroute.framework.documents import Document
from edgeroute.framework.router.engine import HybridEngine
from edgeroute.framework.store.chroma import VectorStore

DOCS = [
    Document(id="bread", text="Bread is baked after the dough has risen for an hour."),
    Document(id="pasta", text="Fresh pasta needs flour, eggs and a pinch of salt."),
    Document(id="soup", text="Tomato soup simmers for twenty minutes with basil."),
]


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("question", nargs="?", default="how is bread made?")
    p.add_argument("--stakes", default="normal", choices=["normal", "high"])
    args = p.parse_args()
    with cloud_embedder(args.emulator) as (cloud, _emu):
        engine = HybridEngine(
            VectorStore.ephemeral(), "li-qe", edge=edge_embedder(args.edge, args.model_dir), cloud=cloud
        )
        engine.ingest(DOCS)
        retriever = EdgeRouteRetriever(engine, k=2, stakes=args.stakes)
        query_engine = RetrieverQueryEngine(
            retriever=retriever, response_synthesizer=get_response_synthesizer(llm=MockLLM(max_tokens=16))
        )
        response = query_engine.query(args.question)
        for n in response.source_nodes:
            m = n.node.metadata
            print(
                f"{n.node.node_id}: score={n.score:.3f} route={m['route']} index={m['index']} reasons={m['reasons']}"
            )
        print("response:", str(response)[:80])
        engine.close()


if __name__ == "__main__":
    main()
