"""The library's errors: one base class, a subclass per thing a user can fix."""


class RagError(Exception):
    """Base of every error the library raises on purpose; its message is meant for people."""


class ConfigError(RagError):
    """A setting has a value that cannot work."""


class ModelError(RagError):
    """The embedding model cannot be built or loaded."""


class IndexNotFoundError(RagError):
    """No index exists where one was expected."""


class IndexMismatchError(RagError):
    """The index was built with another model, chunker or schema."""


class IndexCorruptError(RagError):
    """Index files are missing, truncated or inconsistent."""


class EmptyCorpusError(RagError):
    """The seeds folder holds no readable document."""


class InvalidQuestionError(RagError):
    """The question is empty or not text."""


class IndexBusyError(RagError):
    """Another rebuild holds the index lock."""


class StoreUnreachableError(RagError):
    """The vector store's server cannot be reached."""


class StoreAuthError(RagError):
    """The vector store's server refused the credentials (``RAG_STORE_TOKEN``)."""


class InvalidDocumentError(RagError):
    """A document to add is not one the product can index (type, size, name or content)."""


class FetchError(RagError):
    """A link cannot be fetched (not http(s), unreachable, refused, too large, not a document)."""


class DocumentNotFoundError(RagError):
    """The index holds no document of that name."""


class LLMError(RagError):
    """The language model configured to write answers failed (unreachable, an error, an unreadable reply);
    the answer falls back to quoting the passages."""


class LLMTimeoutError(LLMError):
    """The language model did not answer within the timeout."""


# The advice every damaged-index message ends with.
REBUILD_HINT = "run `rag index --full` to rebuild it"


# What makes a live index unusable for an incremental build (the next build starts again from nothing).
UNUSABLE_INDEX = (IndexCorruptError, IndexMismatchError, IndexNotFoundError)
