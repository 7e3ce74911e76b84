"""Retrieval Q&A over a folder of articles, in English or French, with cited passages."""

from .api import (
    MAX_UPLOAD_BYTES,
    add_document,
    answer,
    build_index,
    get_embedder,
    index_status,
    register_embedder,
    search,
)
from .errors import (
    ConfigError,
    EmptyCorpusError,
    IndexBusyError,
    IndexCorruptError,
    IndexMismatchError,
    IndexNotFoundError,
    InvalidDocumentError,
    InvalidQuestionError,
    ModelError,
    RagError,
    StoreAuthError,
    StoreUnreachableError,
)
from .settings import Settings
from .types import Answer, Chunk, Citation, Hit, IndexReport, IndexStatus

__all__ = [
    "MAX_UPLOAD_BYTES",
    "Answer",
    "Chunk",
    "Citation",
    "ConfigError",
    "EmptyCorpusError",
    "Hit",
    "IndexBusyError",
    "IndexCorruptError",
    "IndexMismatchError",
    "IndexNotFoundError",
    "IndexReport",
    "IndexStatus",
    "InvalidDocumentError",
    "InvalidQuestionError",
    "ModelError",
    "RagError",
    "Settings",
    "StoreAuthError",
    "StoreUnreachableError",
    "add_document",
    "answer",
    "build_index",
    "get_embedder",
    "index_status",
    "register_embedder",
    "search",
]
