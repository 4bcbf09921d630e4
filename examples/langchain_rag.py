"""A LangChain RAG chain: the edgeroute retriever, a prompt, and a fake LLM (swap in any chat model).

python examples/langchain_rag.py "why do cats purr?"
"""

from __future__ import annotations

from _common import cloud_embedder, edge_embedder, parser
from langchain_core.documents import Document as LCDocument
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompt_values import PromptValue
from langchain_core.prompts import PromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough

from edgeroute.connectors.langchain import EdgeRouteRetriever
from edgeroute.framework.documents import Document
from edgeroute.framework.router.engine import HybridEngine
from edgeroute.framework.store.chroma import VectorStore

DOCS = [
    Document(
        id="cats",
        text="Cats purr when content, and also to soothe themselves when hurt.",
        sensitivity="public",
    ),
    Document(id="dogs", text="Dogs bark to alert their pack to strangers.", sensitivity="public"),
    Document(id="plans", text="The 2027 product plan moves the launch to March.", sensitivity="confidential"),
]


def format_docs(docs: list[LCDocument]) -> str:
    return "\n".join(f"- {d.page_content} [{d.metadata['route']}/{d.metadata['index']}]" for d in docs)


def show(prompt: PromptValue) -> PromptValue:
    print(prompt.to_string())
    return prompt


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("question", nargs="?", default="why do cats purr?")
    p.add_argument("--sensitivity", default="internal", help="public|internal|confidential|restricted")
    args = p.parse_args()
    with cloud_embedder(args.emulator) as (cloud, _emu):
        engine = HybridEngine(
            VectorStore.ephemeral(), "lc-rag", edge=edge_embedder(args.edge, args.model_dir), cloud=cloud
        )
        engine.ingest(DOCS)
        retriever = EdgeRouteRetriever(engine=engine, k=2, sensitivity=args.sensitivity)
        prompt = PromptTemplate.from_template("Answer from the context.\n{context}\n\nQuestion: {question}")
        llm = FakeListLLM(responses=["(a real LLM would answer here from the context above)"])
        chain = (
            {"context": retriever | format_docs, "question": RunnablePassthrough()}
            | prompt
            | RunnableLambda(show)
            | llm
            | StrOutputParser()
        )
        print("answer:", chain.invoke(args.question))
        last = retriever.last_result
        assert last is not None
        print("decision:", last.decision.route.value, list(last.decision.codes))
        engine.close()


if __name__ == "__main__":
    main()
