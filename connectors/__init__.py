"""Adapters for LangChain, LlamaIndex and agent tool routing."""
