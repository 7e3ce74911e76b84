"""Issue 20: a replaced or removed seed goes to a dated trash folder inside the index folder, for
``trash_days`` days, and ``rag restore NAME`` (or ``rag.restore_document``) brings it back."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

import rag
from rag import trash
from tests.conftest import SEEDS
from tests.robust_helpers import child_env

FIRST = "000_7e6f9a2e3c46846f.txt"
QUESTION = "Qui a écrit la biographie d'Amazon citée dans l'article ?"


@pytest.fixture
def indexed(fake_settings):
    rag.build_index(settings=fake_settings)
    return fake_settings


def _sources(settings) -> set[str]:
    return {h.source for h in rag.search("Amazon biographie pure-players", k=200, settings=settings)}


def test_remove_moves_the_seed_to_a_dated_trash_folder_and_drops_it_from_the_index(indexed):
    original = (indexed.seeds_dir / FIRST).read_bytes()
    entry, report = rag.remove_document(FIRST, settings=indexed)
    assert report.removed == 1 and not (indexed.seeds_dir / FIRST).exists()
    assert FIRST not in _sources(indexed)
    trashed = indexed.index_dir / "trash" / entry.folder / FIRST
    assert trashed.read_bytes() == original and entry.path == str(trashed)
    assert entry.source == FIRST and entry.bytes == len(original)
    assert time.strptime(entry.trashed_at, "%Y-%m-%dT%H:%M:%SZ")
    assert [e.source for e in rag.list_trash(settings=indexed)] == [FIRST]
    # the trash survives the next build's garbage collection
    rag.build_index(settings=indexed, full=True)
    assert trashed.is_file()


def test_restore_brings_it_back_into_the_seeds_and_the_index(indexed):
    original = (indexed.seeds_dir / FIRST).read_bytes()
    rag.remove_document(FIRST, settings=indexed)
    entry, report = rag.restore_document(FIRST, settings=indexed)
    assert report.added == 1 and (indexed.seeds_dir / FIRST).read_bytes() == original
    assert FIRST in _sources(indexed)
    assert rag.list_trash(settings=indexed) == []
    assert not (indexed.index_dir / "trash" / entry.folder).exists()  # emptied folders go too


def test_replacing_through_add_document_keeps_the_original_and_restore_swaps_them(indexed):
    original = (indexed.seeds_dir / FIRST).read_bytes()
    replacement = "Un tout autre texte, sur la tarte Tatin et les pommes caramélisées.".encode()
    source, report = rag.add_document(FIRST, replacement, settings=indexed, overwrite=True)
    assert report.changed == 1 and (indexed.seeds_dir / FIRST).read_bytes() == replacement
    (kept,) = rag.list_trash(settings=indexed)
    assert kept.source == FIRST and Path(kept.path).read_bytes() == original
    rag.restore_document(FIRST, settings=indexed)
    assert (indexed.seeds_dir / FIRST).read_bytes() == original
    # the replacement was not lost either: it went to the trash in its turn
    (swapped,) = rag.list_trash(settings=indexed)
    assert Path(swapped.path).read_bytes() == replacement


def test_a_refused_replacement_trashes_nothing(indexed):
    with pytest.raises(rag.InvalidDocumentError, match="cannot be indexed"):
        rag.add_document(FIRST, b"\x00\x01\x02 binary", settings=indexed, overwrite=True)
    assert rag.list_trash(settings=indexed) == []
    assert (indexed.seeds_dir / FIRST).read_bytes() == (SEEDS / FIRST).read_bytes()


def test_old_trash_folders_are_purged_after_trash_days(indexed):
    entry, _ = rag.remove_document(FIRST, settings=indexed)
    folder = indexed.index_dir / "trash" / entry.folder
    assert trash.purge(indexed, now=time.time() + 29 * 86400) == [] and folder.is_dir()
    assert trash.purge(indexed, now=time.time() + 31 * 86400) == [entry.folder] and not folder.exists()
    short = indexed.with_(trash_days=0)
    rag.remove_document("001_75e3d22749f12467.txt", settings=short)
    assert trash.purge(short, now=time.time() + 2) != []
    with pytest.raises(rag.InvalidDocumentError, match="trash is empty"):
        rag.restore_document("001_75e3d22749f12467.txt", settings=short)


@pytest.mark.parametrize("name", ["../outside.txt", "/etc/passwd", "a/../../b.txt", "", "nul\x00.txt", "./x.txt"])
def test_names_leading_out_of_the_seeds_folder_are_refused(indexed, name):
    with pytest.raises(rag.InvalidDocumentError):
        rag.remove_document(name, settings=indexed)
    with pytest.raises(rag.InvalidDocumentError):
        rag.restore_document(name, settings=indexed)


def test_unknown_names_are_refused_with_what_the_trash_holds(indexed):
    with pytest.raises(rag.InvalidDocumentError, match="no document named nope.txt"):
        rag.remove_document("nope.txt", settings=indexed)
    rag.remove_document(FIRST, settings=indexed)
    with pytest.raises(rag.InvalidDocumentError, match=f"the trash holds {FIRST}"):
        rag.restore_document("nope.txt", settings=indexed)


def test_trash_days_is_a_validated_setting():
    assert rag.Settings.from_env({"RAG_TRASH_DAYS": "7"}).trash_days == 7
    with pytest.raises(rag.ConfigError, match="RAG_TRASH_DAYS"):
        rag.Settings.from_env({"RAG_TRASH_DAYS": "a week"})
    with pytest.raises(rag.ConfigError, match="trash_days"):
        rag.Settings(trash_days=-1)


def _rag(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "rag.cli", "--model", "fake-sha256-64", *args],
        cwd=cwd, env=child_env(), capture_output=True, text=True, timeout=300,
    )


def test_rag_remove_and_rag_restore_on_the_command_line(indexed, tmp_path):
    paths = ["--seeds", str(indexed.seeds_dir), "--index", str(indexed.index_dir)]
    r = _rag("remove", FIRST, *paths, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"Moved {FIRST} to the trash" in r.stdout and f"rag restore {FIRST}" in r.stdout
    r = _rag("restore", *paths, cwd=tmp_path)
    assert r.returncode == 0 and FIRST in r.stdout and "7,893 bytes" in r.stdout
    r = _rag("restore", FIRST, *paths, cwd=tmp_path)
    assert r.returncode == 0 and f"Restored {FIRST}" in r.stdout
    assert (indexed.seeds_dir / FIRST).is_file()
    r = _rag("restore", FIRST, *paths, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("rag: error: no copy of") and "Traceback" not in r.stderr


def test_a_seed_s_link_file_goes_to_the_trash_and_comes_back_with_it(indexed):
    from rag.documents.links import link_file, read_link

    page = b"<html><head><title>Le cidre</title></head><body><p>" + b"Le cidre de Normandie. " * 20 + b"</p></body></html>"
    source, _ = rag.add_document("cidre.html", page, url="https://example.com/cidre", settings=indexed)
    seed = indexed.seeds_dir / source
    assert read_link(seed) == "https://example.com/cidre"
    entry, _ = rag.remove_document(source, settings=indexed)
    assert not seed.exists() and not link_file(seed).exists()
    assert [e.source for e in rag.list_trash(settings=indexed)] == [source]  # the link file is not an entry
    assert read_link(Path(entry.path)) == "https://example.com/cidre"
    rag.restore_document(source, settings=indexed)
    assert seed.read_bytes() == page and read_link(seed) == "https://example.com/cidre"
