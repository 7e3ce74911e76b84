"""The collections of a Milvus build, their fields and their indexes.

A build is four collections sharing a name, ``<base>__<stamp>__{chunks,sentences,meta,documents}``:

* ``chunks``: one row per chunk (id, build generation, source, seed sha256, offsets, title, text,
  sentence spans, vector), plus, on engines with full-text search (Milvus >= 2.5, Milvus Lite 2.5),
  the chunk's analysed words and the BM25 sparse vector the engine derives from them;
* ``sentences``: one row per sentence (id = chunk id * 1024 + position, chunk id, generation, vector);
* ``meta``: the manifest, in parts, and a head row naming the live generation (rag/store/milvus/meta.py);
* ``documents``: each document's extracted text and info (rag/store/milvus/documents.py).

Every row carries the generation (``gen``) of the build that wrote it: an incremental build writes
its rows under the next generation, which readers of the live one filter out (``gen <= live``), and
makes them live by moving the head row on."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

from .. import kinds
from .documents import create_documents_collection

VARCHAR_MAX = 65535  # bytes: Milvus's limit for one VARCHAR value
SENTENCE_STRIDE = 1024
BM25_K1, BM25_B = 1.5, 0.75  # bm25s's defaults (method "lucene"), so that the engine's scores are ours
HNSW = {"M": 16, "efConstruction": 200}
HNSW_EF = 256  # the least ef a search asks for (ef >= the number of results asked)
KINDS = ("chunks", "sentences", "meta", "documents")  # the collections of a build
_STAMP = re.compile(r"^[0-9]{8}T[0-9]{6}_[0-9a-f]{6}$")


@dataclass(frozen=True)
class BuildNames:
    base: str
    stamp: str

    def name(self, kind: str) -> str:
        return f"{self.base}__{self.stamp}__{kind}"

    chunks = property(lambda self: self.name("chunks"))
    sentences = property(lambda self: self.name("sentences"))
    meta = property(lambda self: self.name("meta"))
    documents = property(lambda self: self.name("documents"))

    def all(self) -> tuple[str, ...]:
        return tuple(self.name(kind) for kind in KINDS)

    @classmethod
    def new(cls, base: str) -> BuildNames:
        return cls(base, f"{time.strftime('%Y%m%dT%H%M%S')}_{secrets.token_hex(3)}")

    @classmethod
    def of(cls, base: str, collection: str) -> BuildNames | None:
        """The build a collection name belongs to (None when it is not one of ``base``'s)."""
        prefix = f"{base}__"
        if not collection.startswith(prefix):
            return None
        stamp, sep, kind = collection[len(prefix):].rpartition("__")
        if not sep or kind not in KINDS or not _STAMP.match(stamp):
            return None
        return cls(base, stamp)


def alias_name(base: str) -> str:
    return f"{base}_live"


def pointer_name(base: str) -> str:
    return f"{base}__pointer"


def vector_index(n_expected: int, lite: bool) -> tuple[str, dict]:
    """(index type, build params) for about ``n_expected`` chunks: exact (FLAT) below the FAISS store's
    exact tier and always on Milvus Lite, HNSW above it on a server. Milvus Lite's IVF_FLAT (nlist 512,
    nprobe 128, as kinds.ivf_params) found 0.24 of the true top 10 at 100k chunks where FAISS's IVF with
    the same lists found 0.85 (``python -m bench --only milvus``): Lite stays exact, a server scales."""
    if lite or n_expected < kinds.EXACT_MAX:
        return "FLAT", {}
    return "HNSW", dict(HNSW)


def search_params(index_type: str, params: dict, limit: int) -> dict:
    if index_type == "HNSW":
        return {"metric_type": "IP", "params": {"ef": max(limit, HNSW_EF)}}
    return {"metric_type": "IP", "params": {}}


def create_build(client, names: BuildNames, dim: int, index_type: str, params: dict, bm25: bool) -> None:
    """Create and load the four collections of a build."""
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    def vector_params(index_params, field: str, kind: str, build: dict) -> None:
        index_params.add_index(field, index_type=kind, metric_type="IP",
                               params={k: v for k, v in build.items() if k != "nprobe"})

    chunks = MilvusClient.create_schema(auto_id=False)
    chunks.add_field("id", DataType.INT64, is_primary=True)
    chunks.add_field("gen", DataType.INT64)
    chunks.add_field("source", DataType.VARCHAR, max_length=VARCHAR_MAX)
    chunks.add_field("start_char", DataType.INT64)
    chunks.add_field("end_char", DataType.INT64)
    chunks.add_field("title", DataType.VARCHAR, max_length=VARCHAR_MAX)
    chunks.add_field("text", DataType.VARCHAR, max_length=VARCHAR_MAX)
    chunks.add_field("sentences", DataType.VARCHAR, max_length=VARCHAR_MAX)
    chunks.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
    index = client.prepare_index_params()
    vector_params(index, "vec", index_type, params)
    if bm25:
        # the words our own BM25 counts (accents folded, stop words dropped, 6-letter stems), joined by
        # spaces: the engine's standard tokenizer splits them back exactly (rag/store/milvus/lexical.py)
        chunks.add_field("lex", DataType.VARCHAR, max_length=VARCHAR_MAX, enable_analyzer=True,
                         analyzer_params={"tokenizer": "standard"})
        chunks.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        chunks.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                     input_field_names=["lex"], output_field_names=["sparse"]))
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                        params={"bm25_k1": BM25_K1, "bm25_b": BM25_B})
    client.create_collection(names.chunks, schema=chunks, index_params=index, consistency_level="Bounded")

    sentences = MilvusClient.create_schema(auto_id=False)
    sentences.add_field("id", DataType.INT64, is_primary=True)
    sentences.add_field("chunk", DataType.INT64)
    sentences.add_field("gen", DataType.INT64)
    sentences.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
    index = client.prepare_index_params()
    vector_params(index, "vec", index_type, params)
    client.create_collection(names.sentences, schema=sentences, index_params=index, consistency_level="Bounded")

    create_record_collection(client, names.meta)
    create_documents_collection(client, names.documents)


def create_record_collection(client, name: str) -> None:
    """A collection of text records by id (the manifest, the live pointer); Milvus wants a vector field."""
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("body", DataType.VARCHAR, max_length=VARCHAR_MAX)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=2)
    index = client.prepare_index_params()
    index.add_index("vec", index_type="FLAT", metric_type="IP")
    client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")
