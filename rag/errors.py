"""The library's errors: one base class, a subclass per thing a user can fix, and the form of a message
that may leave this machine."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path


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


# An absolute path of two parts or more, not inside a URL or a word ("and/or", "http://host/a" stay).
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/\\-])/(?:[^\s/:;,'\"“”«»()<>\[\]]+/)+([^\s/:;,'\"“”«»()<>\[\]]*)")


def public_message(message: object, folders: Iterable[Path] = ()) -> str:
    """``message`` fit for a person on another machine: each of ``folders`` (the seeds and index folders)
    by its own name, any other absolute path of this machine by its last part only."""
    text = str(message)
    forms: dict[str, str] = {}
    for folder in folders:
        folder = Path(folder)
        for form in (str(folder), str(folder.absolute()), str(folder.resolve())):
            if form.startswith("/") and len(form) > 1:
                forms[form] = folder.name or "/"
    for form in sorted(forms, key=len, reverse=True):  # a folder before a folder inside it
        text = text.replace(form, forms[form])
    return _ABSOLUTE_PATH.sub(lambda m: "…/" + m.group(1), text)
