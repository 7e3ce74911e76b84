"""Writing a build: a complete new version beside the live one, fsynced, then made live by one
atomic rename of the CURRENT pointer; old and unfinished builds are collected under the build lock."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..checksum import sha256_file
from ..errors import IndexCorruptError
from ..types import Chunk, Document
from . import kinds, tokens
from .documents import write_documents
from .manifest import (
    CHUNKS_DB,
    CURRENT,
    FLAT_SCHEMA_VERSION,
    MANIFEST,
    SCHEMA_VERSION,
    Manifest,
    current_version,
    data_files,
)
from .vectors import VectorSet


@dataclass(frozen=True)
class TokenStates:
    """What a build stores of the passages' word-piece states: the encoder layer, and ``(chunk id,
    states)`` pairs in increasing chunk id order (an iterable, consumed once)."""

    layer: int
    items: Iterable[tuple[int, np.ndarray]]


def write_version(
    index_dir: Path,
    manifest: Manifest,
    vectors: VectorSet,
    base_db: Path | None,
    remove_ids: list[int],
    add_chunks: list[Chunk],
    crash_hook=None,
    *,
    token_states: TokenStates | None = None,
    remove_sources: Iterable[str] = (),
    add_documents: Iterable[Document] = (),
) -> Path:
    """Write a complete new build beside the live one and make it live. Returns its folder.

    ``base_db`` is the previous build's chunk table, copied then edited, so unchanged
    chunks are never re-read or re-written one by one; its documents table (the extracted texts) loses
    ``remove_sources`` and gains ``add_documents`` the same way. ``vectors`` chooses the index kind for the
    new chunk count (kinds.choose) and writes its files; the manifest records it. ``token_states``, when
    given, are the passages' word-piece states to store (rag/store/tokens.py)."""
    index_dir.mkdir(parents=True, exist_ok=True)
    tmp = index_dir / f".tmp-{secrets.token_hex(6)}"
    tmp.mkdir()
    _hook(crash_hook, "tmp-created")
    try:
        db_path = tmp / CHUNKS_DB
        if base_db is not None:
            shutil.copyfile(base_db, db_path)
        db = sqlite3.connect(db_path)
        try:
            db.execute(
                "CREATE TABLE IF NOT EXISTS chunks (id INTEGER PRIMARY KEY, source TEXT NOT NULL, "
                "start INTEGER NOT NULL, end INTEGER NOT NULL, title TEXT NOT NULL, text TEXT NOT NULL, "
                "sentences TEXT NOT NULL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS chunks_source ON chunks(source)")
            db.executemany("DELETE FROM chunks WHERE id = ?", [(i,) for i in remove_ids])
            db.executemany(
                "INSERT INTO chunks (id, source, start, end, title, text, sentences) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(c.id, c.source, c.start, c.end, c.title, c.text, json.dumps(c.sentences)) for c in add_chunks],
            )
            remove_sources = list(remove_sources)
            write_documents(db, remove_sources, add_documents)
            db.commit()
            if remove_ids or remove_sources:
                db.execute("VACUUM")  # deleted rows would otherwise keep their space
        finally:
            db.close()
        _hook(crash_hook, "chunks-written")
        spec = vectors.write(tmp)
        _hook(crash_hook, "vectors-written")
        stored = {}
        if token_states is not None:
            rows = tokens.save(tmp, manifest.dim, token_states.items)
            stored = {"layer": token_states.layer, "dim": manifest.dim, "rows": rows}
        names = data_files(spec.kind, token_states=bool(stored))
        files = {name: sha256_file(tmp / name) for name in names}
        schema = FLAT_SCHEMA_VERSION if spec.kind == "flat" else SCHEMA_VERSION
        final = Manifest(**{
            **asdict(manifest), "seeds": manifest.seeds, "files": files,
            "index": kinds.spec_to_manifest(spec), "schema_version": schema, "token_states": stored,
        })
        _write_synced(tmp / MANIFEST, final.to_json())
        _hook(crash_hook, "manifest-written")
        for name in names:
            _fsync_file(tmp / name)
        _fsync_dir(tmp)
        _hook(crash_hook, "version-complete")
        version = index_dir / f"v-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"
        os.replace(tmp, version)
        _fsync_dir(index_dir)
        _hook(crash_hook, "version-renamed")
        pointer = index_dir / f".{CURRENT}.{secrets.token_hex(4)}"
        _write_synced(pointer, version.name + "\n")
        _hook(crash_hook, "pointer-written")
        previous = live_version_name(index_dir)
        os.replace(pointer, index_dir / CURRENT)  # the atomic switch
        _fsync_dir(index_dir)
        _hook(crash_hook, "current-switched")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # the build that was live until now stays, for readers that are opening it at this moment
    collect_garbage(index_dir, keep={version.name} | ({previous} if previous else set()))
    _hook(crash_hook, "garbage-collected")
    return version


def live_version_name(index_dir: Path) -> str | None:
    """The name CURRENT holds, or None when there is none or it cannot be read."""
    try:
        version = current_version(index_dir)
    except IndexCorruptError:
        return None
    return version.name if version else None


def collect_garbage(index_dir: Path, keep: set[str] | None) -> None:
    """Delete every build not in ``keep`` (older ones, and complete ones a killed rebuild never made
    live; none when ``keep`` is None), unfinished temp folders and stray CURRENT pointers.
    Runs under the build lock. A build is renamed away before it is deleted, so a deletion cut
    short leaves no half build under a build's name."""
    if keep is not None:
        for p in index_dir.glob("v-*"):
            if p.name not in keep and p.is_dir() and not p.is_symlink():
                trash = index_dir / f".trash-{secrets.token_hex(6)}"
                with contextlib.suppress(OSError):
                    os.rename(p, trash)
                    shutil.rmtree(trash, ignore_errors=True)
    for p in [*index_dir.glob(".tmp-*"), *index_dir.glob(".trash-*")]:
        shutil.rmtree(p, ignore_errors=True)
    for p in index_dir.glob(f".{CURRENT}.*"):
        p.unlink(missing_ok=True)


def _hook(crash_hook, point: str) -> None:
    if crash_hook is not None:
        crash_hook(point)


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
