"""The Milvus store backend (the optional ``milvus`` extra): a Milvus server or cluster, or a Milvus
Lite file. Modules: ``connect`` (clients, errors), ``schema`` (collections, indexes), ``meta`` (the
manifest in the engine, the live pointer), ``documents`` (the documents' texts), ``reader``, ``writer`` (resumable builds), ``store``."""

from .store import MilvusStore

__all__ = ["MilvusStore"]
