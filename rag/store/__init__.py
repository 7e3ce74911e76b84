"""The index on disk: FAISS vectors, SQLite chunk metadata and a JSON manifest.

Layout of ``index_dir``::

    CURRENT            name of the live version (replaced atomically with os.replace)
    v-<time>-<rand>/   one complete, immutable build
        vectors.faiss  IndexIDMap2 over inner product (vectors are normalised), one per chunk
        sentences.faiss  the same, one vector per sentence (id = chunk id * 1024 + position)
                       (from kinds.EXACT_MAX chunks on: vectors.faiss is an IVF-SQ8, beside float16
                       stores vectors.{f16,ids}.npy and sentences.{f16,ids}.npy; see kinds.py)
        chunks.sqlite  one row per chunk: id, source, start, end, title, text, sentence spans; and one row
                       per document: its extracted text (every offset points into it), kind, title, URL,
                       author, date, PDF page starts (documents.py)
        manifest.json  written last; lists every file's sha256, and its own
    .lock              held while a build runs (an flock: the kernel frees it if the build dies)
    .tmp-*/ .trash-*/  a build being written / an old build being deleted (swept by the next build)

A build never touches a live version: it writes a new one beside it and swaps
CURRENT, so readers see the old index or the new one, never a mix. Nothing is pickled.
A reader checks the manifest's own checksum, every data file's sha256 and the FAISS file layout
before any parser touches a byte, then cross-checks the three stores id by id.

Modules: ``manifest`` (what a build holds; the live build), ``reader`` (loading and searching a
build), ``writer`` (making a build live, collecting old ones), ``documents`` (the documents table), ``kinds`` (the FAISS index kind by
corpus size), ``vectors`` (a build's vector files), ``fp16`` (the float16 side store of the
approximate kind), ``checks`` (file layouts refused before parsing)."""

from .checks import check_ivf_file, check_vector_file
from .manifest import (
    CHUNKS_DB,
    CURRENT,
    MANIFEST,
    SCHEMA_VERSION,
    SENTENCE_STRIDE,
    Manifest,
    SeedEntry,
    check_compatible,
    current_version,
    data_files,
    library_versions,
    read_manifest,
)
from .reader import IndexReader, sentence_ids
from .writer import collect_garbage, live_version_name, write_version

__all__ = [
    "CHUNKS_DB",
    "CURRENT",
    "MANIFEST",
    "SCHEMA_VERSION",
    "SENTENCE_STRIDE",
    "IndexReader",
    "Manifest",
    "SeedEntry",
    "check_compatible",
    "check_ivf_file",
    "check_vector_file",
    "collect_garbage",
    "current_version",
    "data_files",
    "library_versions",
    "live_version_name",
    "read_manifest",
    "sentence_ids",
    "write_version",
]
