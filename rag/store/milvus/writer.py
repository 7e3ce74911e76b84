"""Writing a Milvus build, batch by batch as chunks are embedded, so that an interrupted build resumes.

* A full build fills new collections (head state "building", with the model and chunker it is for),
  then writes the documents' texts, the manifest, marks the head "live" and switches the pointer (rag/store/milvus/meta.py).
  A killed full build is resumed by the next build of the same plan: the rows it wrote are kept where
  they match a planned chunk (same id, source, offsets and text), the rest deleted.
* An incremental build writes its rows into the live collections under the next generation (readers
  of the live one filter them out), with its new and changed documents, writes that generation's
  manifest, moves the head on with the removed chunks listed (readers skip them), deletes their rows,
  then clears the list, and deletes the replaced documents. A killed one
  is resumed the same way from the rows of the next generation.

Rows go in with upsert (idempotent by id, so a batch written twice is written once), in requests of
at most ``ROWS_PER_REQUEST`` rows (Milvus Lite took 50-60 s for 5,000-row requests)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

import numpy as np

from ...errors import ConfigError
from ...types import Chunk, Document
from ..manifest import Manifest
from .connect import engine_errors
from .documents import drop_replaced, write_documents
from .meta import (
    drop_old_parts,
    expand,
    read_head,
    runs,
    write_head,
    write_manifest,
)
from .reader import FETCH
from .schema import VARCHAR_MAX, BuildNames, create_build, vector_index

log = logging.getLogger(__name__)
ROWS_PER_REQUEST = 1000
READ_YOUR_BUILD_SECONDS = 30.0  # this process reads the live version Strong for this long after its build
BATCH_CHUNKS = 256  # chunks embedded between two writes (~2,000 texts with their sentences)


class MilvusBuild:
    stores_token_states = False  # see rag/store/backend.py
    batch_chunks = BATCH_CHUNKS

    def __init__(self, store, *, full: bool, identity: dict, n_expected: int, crash_hook=None) -> None:
        self.store, self.client, self.where = store, store.client, store.where
        self.crash_hook = crash_hook
        self.full = full
        self.plan = identity
        if full:
            self.names, self.gen, self.head = self._full_target(n_expected)
        else:
            self.names, self.head = store.live()
            with engine_errors(self.where):
                finish_removals(self.client, self.names, self.head)
            self.gen = self.head["gen"] + 1
        self.index = self.head["index"]
        self.wants_lexical_text = bool(self.index["bm25"])

    def _full_target(self, n_expected: int) -> tuple[BuildNames, int, dict]:
        """A killed full build of the same plan to resume, or new collections."""
        for names in self.store.build_sets():
            if names in (self.store.intact_live(), self.store.previous_names()):
                continue
            head = read_head(self.client, names.meta) if self.client.has_collection(names.meta) else None
            if head and head.get("state") == "building" and head.get("plan") == self.plan:
                return names, 1, head
            self.store.drop_build(names)  # a killed build of another plan, or half-made collections
        names = BuildNames.new(self.store.base)
        index_type, params = vector_index(n_expected, self.store.lite)
        index = {"kind": "milvus", "index_type": index_type, "params": params, "bm25": self.store.bm25}
        with engine_errors(self.where):
            create_build(self.client, names, self.plan["dim"], index_type, params, self.store.bm25)
            head = {"gen": 0, "parts": 0, "sha256": "", "state": "building", "plan": self.plan, "index": index,
                    "removed": [], "previous": ""}
            write_head(self.client, names.meta, head)
        return names, 1, head

    def resume(self, planned: list[Chunk]) -> set[int]:
        """Keep the rows of this generation that match a planned chunk; delete the others."""
        want = {c.id: c for c in planned}
        rows = self._rows_of_gen(self.names.chunks, ["id", "source", "start_char", "end_char", "text"])
        kept = {r["id"] for r in rows if (c := want.get(r["id"])) is not None
                and (c.source, c.start, c.end, c.text) == (r["source"], r["start_char"], r["end_char"], r["text"])}
        stale = [r["id"] for r in rows if r["id"] not in kept]
        sentence_rows = self._rows_of_gen(self.names.sentences, ["id", "chunk"])
        stale_sentences = [r["id"] for r in sentence_rows if r["chunk"] not in kept]
        with engine_errors(self.where):
            for collection, ids in ((self.names.chunks, stale), (self.names.sentences, stale_sentences)):
                for start in range(0, len(ids), FETCH):
                    self.client.delete(collection, ids=ids[start : start + FETCH])
        return kept

    def _rows_of_gen(self, collection: str, fields: list[str]) -> list[dict]:
        out = []
        with engine_errors(self.where, collection):
            pages = self.client.query_iterator(collection, batch_size=FETCH, filter=f"gen == {self.gen}",
                                               output_fields=fields)
            while page := pages.next():
                out += page
            pages.close()
        return out

    def add(self, chunks, vectors, sentence_ids, sentence_vectors, lexical_texts=None) -> None:
        """Write a batch: its sentences first, then its chunks (a chunk row present means its sentences are)."""
        sentence_rows = [{"id": int(i), "chunk": int(i) // 1024, "gen": self.gen, "vec": v.tolist()}
                         for i, v in zip(sentence_ids, np.asarray(sentence_vectors, np.float32))]
        chunk_rows = []
        for n, (c, v) in enumerate(zip(chunks, np.asarray(vectors, np.float32))):
            row = {"id": c.id, "gen": self.gen, "source": c.source, "start_char": c.start, "end_char": c.end,
                   "title": c.title, "text": c.text, "sentences": json.dumps(c.sentences), "vec": v.tolist()}
            if self.wants_lexical_text:
                row["lex"] = lexical_texts[n]
            for field in ("source", "title", "text", "sentences", "lex"):
                if field in row and len(row[field].encode("utf-8")) > VARCHAR_MAX:
                    raise ConfigError(f"a chunk of {c.source} has a {field} of more than {VARCHAR_MAX:,} bytes, "
                                      "more than Milvus holds in a field; choose a smaller chunk_tokens")
            chunk_rows.append(row)
        with engine_errors(self.where):
            for collection, rows in ((self.names.sentences, sentence_rows), (self.names.chunks, chunk_rows)):
                for start in range(0, len(rows), ROWS_PER_REQUEST):
                    self.client.upsert(collection, rows[start : start + ROWS_PER_REQUEST])
        self._hook("batch-written")

    def commit(self, manifest: Manifest, remove_ids: list[int], token_states=None, *,
               remove_sources: Iterable[str] = (), add_documents: Iterable[Document] = ()) -> str:
        manifest = Manifest(**{**manifest.__dict__, "index": self.index, "schema_version": 3})
        manifest.validate()
        with engine_errors(self.where):
            write_documents(self.client, self.names.documents, self.gen, add_documents)
            self._hook("documents-written")
            head = {**self.head, **write_manifest(self.client, self.names.meta, manifest, self.gen), "plan": {}}
            self._hook("manifest-written")
            if self.full:
                previous = self.store.intact_live()
                write_head(self.client, self.names.meta, {**head, "state": "live", "removed": [],
                                                          "previous": previous.stamp if previous else ""})
                self._hook("head-written")
                self.store.pointer.switch(self.names)  # the atomic switch
                self._hook("pointer-switched")
                self.store.drop_other_builds(keep={self.names, previous} - {None})
            else:
                head = {**head, "state": "live", "removed": runs(remove_ids)}
                write_head(self.client, self.names.meta, head)  # the atomic switch
                self._hook("head-written")
                finish_removals(self.client, self.names, head)
                drop_replaced(self.client, self.names.documents, self.gen, remove_sources)
            drop_old_parts(self.client, self.names.meta, self.gen)
        self._hook("garbage-collected")
        self.store.built_by_us()
        return f"{self.store.store}#{self.names.chunks}@{self.gen}"

    def close(self) -> None:
        """Nothing held: what an interrupted build wrote stays for the next one to resume."""

    def _hook(self, point: str) -> None:
        if self.crash_hook is not None:
            self.crash_hook(point)


def finish_removals(client, names: BuildNames, head: dict) -> None:
    """Delete the rows of the chunks the live generation dropped, then clear the list (idempotent:
    a build killed while deleting leaves the list for the next one)."""
    removed = expand(head.get("removed", []))
    if not removed:
        return
    for start in range(0, len(removed), FETCH):
        part = removed[start : start + FETCH]
        client.delete(names.chunks, ids=part)
        client.delete(names.sentences, filter=f"chunk in {part}")
    head["removed"] = []
    write_head(client, names.meta, head)
