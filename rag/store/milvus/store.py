"""The Milvus store backend: a server or cluster (``http://host:port``) or a Milvus Lite file (``*.db``),
behind the interface of rag/store/backend.py."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

from ...errors import REBUILD_HINT, IndexCorruptError, IndexNotFoundError
from ..manifest import Manifest
from .connect import client_for, describe, engine_errors, is_lite
from .meta import AliasPointer, RecordPointer, read_head, read_manifest
from .reader import MilvusReader
from .schema import BuildNames
from .writer import READ_YOUR_BUILD_SECONDS, MilvusBuild, finish_removals

NOT_LOADED = 101  # Milvus's "collection not loaded": after a server restart, until loaded again
_stores: dict[tuple, MilvusStore] = {}
_stores_lock = threading.Lock()


class MilvusStore:
    def __init__(self, store: str, token: str, base: str, index_dir: Path) -> None:
        self.store, self.base = store, base
        self.lite = is_lite(store)
        self.where = f"{describe(store)} (collections {base}__*)"
        self.cache_key = ("milvus", store, base)
        if self.lite:
            db = Path(store).expanduser().resolve()
            self.lock_path = db.parent / f".{db.name}.{base}.build-lock"
        else:
            self.lock_path = Path(index_dir) / f".milvus-{base}.build-lock"
        self.client = client_for(store, token)
        self.pointer = RecordPointer(self.client, base) if self.lite else AliasPointer(self.client, base)
        self.bm25 = self.lite or _server_has_bm25(self.client)
        self.strong_until = 0.0  # live_version reads Strong until then (set when this process commits a build)

    @classmethod
    def for_settings(cls, settings) -> MilvusStore:
        key = (settings.store, settings.store_token, settings.store_collection, str(settings.index_dir))
        with _stores_lock:
            if key not in _stores:
                _stores[key] = cls(settings.store, settings.store_token, settings.store_collection, settings.index_dir)
            return _stores[key]

    # --- the live build

    def live(self) -> tuple[BuildNames, dict] | None:
        """The live build's names and head record (None when nothing was built)."""
        return self._live()

    def live_names(self) -> BuildNames | None:
        with engine_errors(self.where):
            return self.pointer.live()

    def _live(self, strong: bool = True) -> tuple[BuildNames, dict] | None:
        names = self.live_names()
        if names is None:
            return None
        gone = IndexNotFoundError(
            f"the live build {names.chunks} is gone from {self.where} (deleted by someone else?); {REBUILD_HINT}"
        )
        with engine_errors(self.where, names.meta):
            try:  # one read a question: the collections' existence is checked only when it fails
                head = read_head(self.client, names.meta, strong)
            except Exception as exc:  # noqa: BLE001 - a restarted server loads collections again on request
                if not self.client.has_collection(names.meta):
                    raise gone from None
                if getattr(exc, "code", None) != NOT_LOADED:
                    raise
                for collection in names.all():
                    if self.client.has_collection(collection):
                        self.client.load_collection(collection)
                head = read_head(self.client, names.meta, strong)
        if head is None or head.get("state") != "live":
            raise IndexCorruptError(f"the live build {names.chunks} in {self.where} has no head record; {REBUILD_HINT}")
        return names, head

    def live_version(self) -> str | None:
        """Read at every question: a Bounded read (a build made live by another process is picked up
        within the engine's graceful time, 5 s by default, instead of making every question wait ~300 ms);
        Strong for a while after a build this process made live, so that its next question sees it."""
        live = self._live(strong=time.monotonic() < self.strong_until)
        return f"{live[0].chunks}@{live[1]['gen']}" if live else None

    def built_by_us(self) -> None:
        """A build this process made live, or asked a child process for: its next questions must see it."""
        self.strong_until = time.monotonic() + READ_YOUR_BUILD_SECONDS

    def live_manifest(self) -> Manifest | None:
        live = self._live()
        if live is None:
            return None
        with engine_errors(self.where, live[0].meta):
            return read_manifest(self.client, live[0].meta, live[1])

    def open_reader(self) -> MilvusReader:
        live = self._live()
        if live is None:
            raise IndexNotFoundError(f"no index in {self.where}; run `rag index` to build one")
        names, head = live
        with engine_errors(self.where, names.meta):
            manifest = read_manifest(self.client, names.meta, head)
        return MilvusReader(self.client, names, head, manifest, self.where).check()

    def location(self, reader: MilvusReader) -> str:
        return f"{self.store}#{reader.version}"

    # --- builds

    def begin_build(self, *, full: bool, base, dim: int, identity: dict | None = None, n_expected: int = 0,
                    crash_hook=None) -> MilvusBuild:
        return MilvusBuild(self, full=full or base is None, identity={**(identity or {}), "dim": dim},
                           n_expected=n_expected, crash_hook=crash_hook)

    def intact_live(self) -> BuildNames | None:
        """The live build, when it is whole (None when there is none, or it was deleted or damaged)."""
        try:
            live = self._live()
        except (IndexNotFoundError, IndexCorruptError):
            return None
        return live[0] if live else None

    def previous_names(self) -> BuildNames | None:
        try:
            live = self._live()
        except (IndexNotFoundError, IndexCorruptError):
            return None
        stamp = live[1].get("previous") if live else ""
        return BuildNames(self.base, stamp) if stamp else None

    def build_sets(self) -> list[BuildNames]:
        with engine_errors(self.where):
            names = {BuildNames.of(self.base, c) for c in self.client.list_collections()}
        return sorted((n for n in names if n is not None), key=lambda n: n.stamp)

    def drop_build(self, names: BuildNames) -> None:
        with engine_errors(self.where):
            for collection in names.all():
                if self.client.has_collection(collection):
                    self.client.drop_collection(collection)

    def drop_other_builds(self, keep: set[BuildNames]) -> None:
        for names in self.build_sets():
            if names not in keep:
                self.drop_build(names)

    def collect_garbage(self) -> None:
        """Finish the live build's pending row deletions; drop builds a killed full build left (no
        build in progress: the lock is held, and the live index is up to date)."""
        live = self._live()
        if live is None:
            return
        with engine_errors(self.where):
            finish_removals(self.client, live[0], live[1])
        self.drop_other_builds(keep={live[0], self.previous_names()} - {None})

    def drop_everything(self) -> None:
        """Every collection of this index and its pointer (tests, and `rag index --full` never does this)."""
        for names in self.build_sets():
            self.drop_build(names)
        with engine_errors(self.where):
            self.pointer.clear()


def _server_has_bm25(client) -> bool:
    """Full-text search (BM25 functions) came with Milvus 2.5."""
    try:
        version = client.get_server_version()
    except Exception:  # noqa: BLE001 - an engine that does not say is taken to predate it
        return False
    match = re.search(r"(\d+)\.(\d+)", str(version))
    return bool(match) and (int(match.group(1)), int(match.group(2))) >= (2, 5)
