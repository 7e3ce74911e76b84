"""Connecting to Milvus (a server or cluster by its URL, Milvus Lite by its ``.db`` file) and turning
its failures into the library's errors: one line each, naming the address, never the token."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import socket
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from ...errors import (
    REBUILD_HINT,
    ConfigError,
    IndexBusyError,
    IndexCorruptError,
    IndexNotFoundError,
    RagError,
    StoreAuthError,
    StoreUnreachableError,
)

log = logging.getLogger(__name__)
CONNECT_SECONDS = 10.0
LITE_START_SECONDS = 60.0  # Milvus Lite starts its engine process first: seconds on two busy cores
CALL_SECONDS = 120.0  # one request (a batch insert into a busy server can take tens of seconds)

_clients: dict[tuple[str, str], object] = {}
_clients_lock = threading.Lock()


def is_lite(store: str) -> bool:
    return not store.startswith(("http://", "https://"))


def describe(store: str) -> str:
    """The store for messages: never its token (which is not part of ``store``)."""
    return f"the Milvus Lite file {store}" if is_lite(store) else f"the Milvus server at {store}"


class _DropMilvusLiteRecords(logging.Filter):
    """Milvus Lite logs its failures on the root logger; they come back to the user as our one-line errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "milvus_lite" not in record.pathname


def _quiet() -> None:
    # milvus-lite 2.5 imports pkg_resources (hence setuptools<81), which warns on every start
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    # pymilvus logs each failed call at ERROR with a traceback (its own logging config, set on import)
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL + 1)
    root = logging.getLogger()
    if not any(isinstance(f, _DropMilvusLiteRecords) for f in root.filters):
        root.addFilter(_DropMilvusLiteRecords())


def client_for(store: str, token: str):
    """The process's client for ``store`` (one per address and token: Milvus Lite lets one process
    at a time open a file, and a server's channel is shared between threads)."""
    key = (store, hashlib.sha256(token.encode("utf-8")).hexdigest())
    with _clients_lock:
        if key in _clients:
            return _clients[key]
        try:
            from pymilvus import MilvusClient
        except ImportError:
            raise ConfigError("a Milvus store needs pymilvus: pip install 'rag-seeds[milvus]'") from None
        _quiet()  # after the import: pymilvus sets its loggers' levels when it loads
        where = describe(store)
        if is_lite(store):
            path = Path(store).expanduser().resolve()
            path.parent.mkdir(parents=True, exist_ok=True)
            uri = str(path)
        else:
            _check_reachable(store)
            uri = store
        try:
            with engine_errors(where):
                client = MilvusClient(uri=uri, token=token, dedicated=True,
                                      timeout=LITE_START_SECONDS if is_lite(store) else CONNECT_SECONDS)
        except StoreUnreachableError:
            if not is_lite(store):
                raise
            # Milvus Lite's engine process did not answer its first connection (seen twice in the test
            # suite's runs on this busy machine, never in a dozen starts alone): it is started once more
            log.warning("Milvus Lite did not start for %s; starting it again", uri)
            _release_lite(store)
            with engine_errors(where):
                client = MilvusClient(uri=uri, token=token, dedicated=True, timeout=LITE_START_SECONDS)
        _clients[key] = client
        return client


def forget(store: str) -> None:
    """Close this process's clients of ``store``; a Milvus Lite file is released for other processes."""
    with _clients_lock:
        for key in [k for k in _clients if k[0] == store]:
            client = _clients.pop(key)
            with _suppress():
                client.close()
        if is_lite(store):
            _release_lite(store)


def _release_lite(store: str) -> None:
    """Stop this process's Milvus Lite engine for ``store`` (the file is then free for other processes)."""
    with _suppress():
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(str(Path(store).expanduser().resolve()))


def _suppress():
    """Errors of a client that is already gone, or of an attribute that cannot be read, do not matter here."""
    return contextlib.suppress(Exception)


def _check_reachable(store: str) -> None:
    url = urlparse(store)
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 19530)
    if not host:
        raise ConfigError(f"the store URL {store!r} names no host")
    try:
        socket.create_connection((host, port), timeout=CONNECT_SECONDS / 2).close()
    except OSError as exc:
        raise StoreUnreachableError(
            f"cannot reach {describe(store)} ({exc.strerror or exc}); is the server running, and is the address right?"
        ) from None


@contextmanager
def engine_errors(where: str, collection: str = ""):
    """Turn the engine's exceptions raised inside into the library's errors."""
    try:
        yield
    except RagError:
        raise
    except Exception as exc:  # noqa: BLE001 - pymilvus raises MilvusException and grpc errors alike
        raise translate(exc, where, collection) from None


def translate(exc: BaseException, where: str, collection: str = "") -> RagError:
    """The library's error for an exception of pymilvus or grpc (one line, no token)."""
    text = " ".join(_messages(exc)).lower()
    code = getattr(exc, "code", None)
    if "unauthenticated" in text or "auth check failure" in text or "authenticat" in text:
        return StoreAuthError(
            f"{where} refused the credentials; check RAG_STORE_TOKEN (\"user:password\" or an API key)"
        )
    if "open local milvus failed" in text:
        return IndexBusyError(
            f"{where} is open in another process (Milvus Lite lets one process at a time use a file); "
            "stop that process, or share the index through a Milvus server"
        )
    if code == 100 or "collection not found" in text or "can't find collection" in text:
        name = f" {collection}" if collection else ""
        return IndexNotFoundError(
            f"the collection{name} is gone from {where} (deleted by someone else?); {REBUILD_HINT}"
        )
    if code == 2 or "unavailable" in text or "fail connecting" in text or "deadline" in text:
        return StoreUnreachableError(f"cannot reach {where}; is the server running, and is the address right?")
    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    return IndexCorruptError(f"{where} failed: {first}; {REBUILD_HINT}")


def _messages(exc: BaseException) -> list[str]:
    """The messages of ``exc`` and of what it was raised from (grpc's status details among them)."""
    out, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        out.append(str(exc))
        details = getattr(exc, "details", None)
        if callable(details):
            with _suppress():
                out.append(str(details()))
        code = getattr(exc, "code", None)
        if callable(code):
            with _suppress():
                out.append(str(code()))
        exc = exc.__cause__ or exc.__context__
    return out
