"""The documents of a Milvus build: each document's extracted text (what every chunk's offsets point
into) and what its reader knew of it, as the FAISS store keeps them in its documents table
(rag/store/documents.py).

The ``documents`` collection of a build holds, per document and generation, rows keyed
``"<gen>:<doc>:<part>"`` (``doc``: a 63-bit number from the sha256 of its source, so that no filter
ever quotes a file name): parts below 0 carry its info (source, kind, title, URL, author, date, page
starts, length) as JSON, parts from 1 its text, both cut at ``PART_CHARS`` characters (a VARCHAR holds
65,535 bytes). A reader of generation ``g`` takes, for each source its manifest lists, the rows of the
greatest generation up to ``g``: an incremental build writes a changed document under the next
generation, which readers of the live one do not see, and deletes the replaced rows only after the
switch. Rows a killed build wrote under its generation are deleted when that generation is written again."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from ...errors import REBUILD_HINT, IndexCorruptError
from ...types import Document
from ..documents import DocumentInfo

PART_CHARS = 16_000  # 4 bytes a character at most: within a VARCHAR's 65,535 bytes
ROWS_PER_REQUEST = 32  # up to 2 MB a request
FETCH = 1000
ZERO = [0.0, 0.0]  # the vector field Milvus wants in every collection


def doc_key(source: str) -> int:
    return int.from_bytes(hashlib.sha256(source.encode("utf-8")).digest()[:8], "big") >> 1


def create_documents_collection(client, name: str) -> None:
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("doc", DataType.INT64)
    schema.add_field("gen", DataType.INT64)
    schema.add_field("part", DataType.INT64)
    schema.add_field("body", DataType.VARCHAR, max_length=65535)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector field
    index = client.prepare_index_params()
    index.add_index("vec", index_type="FLAT", metric_type="IP")
    client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")


def _cut(text: str) -> list[str]:
    return [text[i : i + PART_CHARS] for i in range(0, len(text), PART_CHARS)] or [""]


def write_documents(client, collection: str, gen: int, documents: Iterable[Document]) -> None:
    """Store ``documents`` under generation ``gen`` (first deleting what a killed run of it wrote)."""
    client.delete(collection, filter=f"gen == {gen}")
    rows: list[dict] = []
    for d in documents:
        key = doc_key(d.source)
        info = {"source": d.source, "kind": d.kind, "title": d.title, "url": d.url, "author": d.author,
                "date": d.date, "page_starts": list(d.page_starts), "chars": len(d.text)}
        parts = [(-1 - n, p) for n, p in enumerate(_cut(json.dumps(info, ensure_ascii=False)))]
        parts += [(n + 1, p) for n, p in enumerate(_cut(d.text)) if p]
        rows += [{"pk": f"{gen}:{key}:{part}", "doc": key, "gen": gen, "part": part, "body": body, "vec": ZERO}
                 for part, body in parts]
        while len(rows) >= ROWS_PER_REQUEST:
            client.upsert(collection, rows[:ROWS_PER_REQUEST])
            rows = rows[ROWS_PER_REQUEST:]
    if rows:
        client.upsert(collection, rows)


def drop_replaced(client, collection: str, gen: int, sources: Iterable[str]) -> None:
    """Delete the rows of ``sources`` older than generation ``gen`` (removed or replaced by it)."""
    keys = sorted({doc_key(s) for s in sources})
    for start in range(0, len(keys), FETCH):
        client.delete(collection, filter=f"gen < {gen} and doc in {keys[start : start + FETCH]}")


def load_infos(client, collection: str, gen: int, sources: Iterable[str]) -> dict[str, tuple[DocumentInfo, int]]:
    """``{source: (info, generation of its rows)}`` for the ``sources`` a manifest lists, as generation
    ``gen`` sees them; a listed source without rows, or damaged rows, are an IndexCorruptError."""
    wanted = {doc_key(s): s for s in sources}
    parts: dict[tuple[int, int], list[tuple[int, str]]] = {}
    pages = client.query_iterator(collection, batch_size=FETCH, filter=f"part < 0 and gen <= {gen}",
                                  output_fields=["doc", "gen", "part", "body"])
    while page := pages.next():
        for r in page:
            if int(r["doc"]) in wanted:
                parts.setdefault((int(r["doc"]), int(r["gen"])), []).append((-int(r["part"]), r["body"]))
    pages.close()
    newest: dict[int, int] = {}
    for key, row_gen in parts:
        newest[key] = max(row_gen, newest.get(key, -1))
    out = {}
    for key, source in wanted.items():
        if key not in newest:
            raise IndexCorruptError(f"{collection} holds no document {source!r}; {REBUILD_HINT}")
        got = sorted(parts[(key, newest[key])])
        try:
            if [n for n, _ in got] != list(range(1, len(got) + 1)):
                raise ValueError("parts are missing")
            info = json.loads("".join(body for _, body in got))
            pages_at = info["page_starts"]
            if info["source"] != source or not all(isinstance(p, int) and 0 <= p <= info["chars"] for p in pages_at):
                raise ValueError("it does not match")
            out[source] = (DocumentInfo(source, info["kind"], info["title"], info["url"], info["author"],
                                        info["date"], tuple(pages_at), int(info["chars"])), newest[key])
        except (ValueError, KeyError, TypeError) as exc:
            raise IndexCorruptError(f"the stored info of {source!r} in {collection} is damaged ({exc}); "
                                    f"{REBUILD_HINT}") from None
    return out


def load_text(client, collection: str, source: str, info: DocumentInfo, gen: int) -> str:
    rows = client.query(collection, filter=f"doc == {doc_key(source)} and gen == {gen} and part > 0",
                        output_fields=["part", "body"], consistency_level="Strong")
    got = sorted((int(r["part"]), r["body"]) for r in rows)
    text = "".join(body for _, body in got)
    if [n for n, _ in got] != list(range(1, len(got) + 1)) or len(text) != info.chars:
        raise IndexCorruptError(f"the text of {source!r} in {collection} is incomplete; {REBUILD_HINT}")
    return text

