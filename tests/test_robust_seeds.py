"""Issue 5, bad seeds: each one is indexed or skipped with a reason, and the rest is indexed."""

from __future__ import annotations

import codecs
import json
import os
import shutil
import threading
import tracemalloc
import zlib
from dataclasses import asdict
from pathlib import Path

import pytest

import rag
from rag.cli import main as cli_main
from rag.store import CURRENT, IndexReader
from tests.conftest import SEEDS

FRENCH = (
    "Le café de l'été à Noël : la clientèle reçoit un accueil chaleureux où l'on goûte des crêpes. "
    "Les élèves français préfèrent la boulangerie du quartier, déçus par la qualité des grandes surfaces."
)
CP1252_ONLY = "L’œuvre « coûte » 15 € — c’est l’été, dit-on… "
BAD_NAME = os.fsdecode(b"caf\xe9-latin1-name.txt")  # bytes that are not UTF-8 in a file name


def _png() -> bytes:
    """A real (1x1) PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = (1).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b"")


# name -> (bytes, expected): "indexed" with a word its text must contain, or the skip reason
def _bad_corpus() -> dict[str, tuple[bytes, str]]:
    return {
        "vide.txt": (b"", "skip:empty file"),
        "blanc.txt": (b"   \n\t\r\n  ", "skip:only white space"),
        "insecables.txt": ("\u00a0\u2003\n\u00a0".encode(), "skip:only white space"),
        "nul.txt": (b"du texte\x00avec des\x00octets nuls" * 20, "skip:binary file (not text)"),
        "image.txt": (_png(), "skip:binary file (a PNG image, not text)"),
        # the content decides the reader: a cut PDF named .md goes to the PDF reader, which says what is wrong
        "document.md": (
            b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >>",
            "skip:damaged PDF, its text cannot be read (Stream has ended unexpectedly)",
        ),
        "controle.txt": (bytes(range(1, 32)) * 40, "skip:binary file (not text)"),
        "latin1.txt": ((FRENCH * 3).encode("latin-1"), "index:clientèle"),
        "cp1252.txt": ((CP1252_ONLY + FRENCH).encode("cp1252"), "index:L’œuvre « coûte » 15 €"),
        "utf16.txt": ((FRENCH * 2).encode("utf-16"), "index:reçoit un accueil"),
        "utf16be.txt": (codecs.BOM_UTF16_BE + (FRENCH * 2).encode("utf-16-be"), "index:goûte des crêpes"),
        "utf32.txt": ((FRENCH * 2).encode("utf-32"), "index:élèves français"),
        "utf8-bom.txt": (codecs.BOM_UTF8 + FRENCH.encode(), "index:déçus par la qualité"),
        # UTF-8 with a stray byte and a cut character: read as UTF-8, not as mojibake in a code page
        "utf8-invalide.txt": (FRENCH.encode() + b" \xff fin " + FRENCH.encode() + "é".encode()[:1], "index:reçoit un accueil"),
        "avec des espaces.txt": (b"Les espaces du nom : un article sur la vitrine du libraire.", "index:vitrine"),
        "accentué çà.txt": ("Un nom accentué pour un article sur la fête des voisins.".encode(), "index:voisins"),
        "-tiret.txt": (b"Un nom qui commence par un tiret, sur la livraison express.", "index:livraison"),
        "--full.txt": ("Un nom qui ressemble à une option, sur la carte de fidélité.".encode(), "index:fidélité"),
        "nom\navec saut.txt": ("Un nom avec un saut de ligne, sur le marché couvert.".encode(), "index:couvert"),
        "MAJUSCULES.TXT": ("Une extension en majuscules, sur le rayon des surgelés.".encode(), "index:surgelés"),
        "sous dossier/é.md": (b"# Titre\n\nUn fichier Markdown dans un sous-dossier, sur la caisse automatique.", "index:caisse"),
        BAD_NAME: (b"Le contenu est lisible mais le nom ne l'est pas.", "skip:the file name is not valid UTF-8 (rename the file)"),
        "gros.txt": (("Un très gros fichier. " * 4000).encode(), "skip:file too large (92,000 bytes; the limit is 50,000)"),
    }


@pytest.fixture
def bad_settings(fake, tmp_path) -> rag.Settings:
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    for name, (raw, _) in _bad_corpus().items():
        path = seeds / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
    # a sparse file of 16 GiB: reading it would exhaust memory
    with open(seeds / "enorme.txt", "wb") as f:
        f.truncate(16 * 2**30)
    outside = tmp_path / "ailleurs"
    outside.mkdir()
    (outside / "secret.txt").write_text("Le mot secretissime ne doit jamais entrer dans l'index.")
    os.symlink(outside / "secret.txt", seeds / "lien-dehors.txt")
    os.symlink(outside, seeds / "dossier-lie")
    os.symlink(seeds / "nowhere.txt", seeds / "lien-casse.txt")
    os.symlink(seeds / "latin1.txt", seeds / "alias-latin1.txt")
    os.mkfifo(seeds / "tube.txt")  # reading a named pipe would block the build forever
    return rag.Settings(seeds_dir=seeds, index_dir=tmp_path / "index", model=fake.model_id, max_file_bytes=50_000)


def _expected(settings) -> dict[str, str]:
    shown = {name: name for name in _bad_corpus()}
    shown[BAD_NAME] = "caf\\xe9-latin1-name.txt"
    out = {shown[n]: exp for n, (_, exp) in _bad_corpus().items()}
    out.update(
        {
            "enorme.txt": "skip:file too large (17,179,869,184 bytes; the limit is 50,000)",
            "lien-dehors.txt": "skip:symbolic link pointing outside the seeds folder (not followed)",
            "dossier-lie": "skip:symbolic link to a folder (not followed)",
            "lien-casse.txt": "skip:broken symbolic link",
            "alias-latin1.txt": "index:clientèle",
            "tube.txt": "skip:not a regular file",
        }
    )
    out.update({p.name: "index:" for p in SEEDS.iterdir()})
    return out


def _build_guarded(settings, **kw):
    """Build in a thread with a deadline: a build blocked on the named pipe fails instead of hanging."""
    result: dict = {}

    def run():
        try:
            result["report"] = rag.build_index(settings=settings, **kw)
        except BaseException as exc:  # handed to the test below
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(120)
    assert not thread.is_alive(), "the build blocked (on the named pipe?)"
    if "error" in result:
        raise result["error"]
    return result["report"]


def test_every_bad_seed_is_indexed_or_skipped_with_its_reason_and_the_rest_is_indexed(bad_settings):
    tracemalloc.start()
    try:
        report = _build_guarded(bad_settings)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200 * 2**20  # the 16 GiB file was never read
    expected = _expected(bad_settings)
    status = {f.source: f for f in report.files}
    assert sorted(status) == sorted(expected)
    for source, exp in expected.items():
        kind, _, detail = exp.partition(":")
        f = status[source]
        if kind == "skip":
            assert (f.status, f.reason) == ("skipped", detail), source
        else:
            assert f.status == "added" and f.chunks >= 1 and f.reason == "", source
    assert sorted(report.skipped) == sorted((s, e[5:]) for s, e in expected.items() if e.startswith("skip:"))
    assert report.added == sum(e.startswith("index:") for e in expected.values())

    reader = IndexReader.open(bad_settings.index_dir)
    texts: dict[str, str] = {}
    for c in reader.iter_chunks():
        texts[c.source] = texts.get(c.source, "") + c.text
    reader.close()
    for source, exp in expected.items():
        if exp.startswith("index:"):
            assert exp[6:] in texts[source], source
    assert set(texts) == {s for s, e in expected.items() if e.startswith("index:")}
    # nothing outside the seeds folder, nothing mis-decoded
    everything = "".join(texts.values())
    assert "secretissime" not in everything
    assert "Ã©" not in everything and "Ã¨" not in everything
    assert "\ufffd" in texts["utf8-invalide.txt"]  # the bad bytes are marked, the rest is intact
    manifest_encodings = {s: e.encoding for s, e in reader.manifest.seeds.items()}
    assert manifest_encodings["utf16.txt"] == "utf-16-le" and manifest_encodings["utf32.txt"] == "utf-32-le"
    assert manifest_encodings["utf8-invalide.txt"].startswith("utf-8 (")
    assert manifest_encodings["cp1252.txt"] == "cp1252"
    # odd names are cited as they are
    hit = rag.search("tiret livraison express", k=1, settings=bad_settings)[0]
    assert hit.source == "-tiret.txt"
    # the report is plain data, printable as JSON whatever the names
    assert json.loads(json.dumps(asdict(report)))["added"] == report.added

    again = _build_guarded(bad_settings)
    assert (again.added, again.changed, again.removed, again.chunks_embedded) == (0, 0, 0, 0)
    assert again.unchanged == report.added and again.skipped == report.skipped


def test_a_seed_that_turns_bad_is_removed_and_says_why(fake_settings):
    first = rag.build_index(settings=fake_settings)
    victim = sorted(p.name for p in fake_settings.seeds_dir.iterdir())[2]
    (fake_settings.seeds_dir / victim).write_bytes(b"\x00" * 100)
    report = rag.build_index(settings=fake_settings)
    lines = [(f.source, f.status, f.reason) for f in report.files if f.source == victim]
    assert (report.removed, report.unchanged) == (1, 4) and report.skipped == [(victim, "binary file (not text)")]
    assert lines == [(victim, "removed", "binary file (not text)")] and len(report.files) == 5
    reader = IndexReader.open(fake_settings.index_dir)
    assert victim not in {c.source for c in reader.iter_chunks()}
    assert reader.ntotal == report.total_chunks < first.total_chunks
    reader.close()


def test_a_file_over_the_size_limit_is_skipped_and_one_under_it_indexed(fake, tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "petit.txt").write_text("Un petit article sur la fidélité. " * 100)  # 3,600 bytes
    (seeds / "grand.txt").write_text("Un grand article sur la fidélité. " * 200)  # 7,200 bytes
    settings = rag.Settings(seeds_dir=seeds, index_dir=tmp_path / "index", model=fake.model_id, max_file_bytes=5_000)
    report = rag.build_index(settings=settings)
    assert report.skipped == [("grand.txt", "file too large (7,200 bytes; the limit is 5,000)")]
    assert [(f.source, f.status) for f in report.files] == [("grand.txt", "skipped"), ("petit.txt", "added")]
    report = rag.build_index(settings=settings.with_(max_file_bytes=10_000))  # not a chunker setting
    assert (report.added, report.unchanged, report.full_rebuild) == (1, 1, False)


def test_cli_prints_each_skipped_seed_and_an_empty_corpus_is_an_error(bad_settings, capsys, monkeypatch):
    args = ["--model", bad_settings.model, "index", "--seeds", str(bad_settings.seeds_dir), "--index", str(bad_settings.index_dir)]
    os.unlink(bad_settings.seeds_dir / "tube.txt")  # cli_main runs in this thread: no pipe here
    monkeypatch.setenv("RAG_MAX_FILE_BYTES", "50000")
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    assert "  skipped vide.txt: empty file" in out and "  skipped image.txt: binary file (a PNG image, not text)" in out
    assert "  skipped gros.txt: file too large (92,000 bytes; the limit is 50,000)" in out
    assert "  skipped lien-dehors.txt: symbolic link pointing outside the seeds folder (not followed)" in out
    for p in list(bad_settings.seeds_dir.rglob("*")):
        if p.is_symlink() or p.is_file():
            p.unlink()
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("rag: error: no readable document (.txt, .md, .markdown, .html, .htm, .pdf, .docx)") and err.count("\n") == 1
    assert (bad_settings.index_dir / CURRENT).exists()  # the previous index is still there


def test_empty_corpus_of_only_bad_files_writes_no_index(fake, tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for name, (raw, exp) in _bad_corpus().items():
        if exp.startswith("skip:") and "/" not in name:
            (seeds / name).write_bytes(raw)
    settings = rag.Settings(seeds_dir=seeds, index_dir=tmp_path / "index", model=fake.model_id, max_file_bytes=50_000)
    with pytest.raises(rag.EmptyCorpusError, match=r"no readable .* \(9 file\(s\) skipped\); nothing was indexed"):
        rag.build_index(settings=settings)
    assert not (tmp_path / "index" / CURRENT).exists() and not list((tmp_path / "index").glob("v-*"))


def test_seeds_folder_itself_missing_is_a_clear_error(fake, tmp_path):
    settings = rag.Settings(seeds_dir=tmp_path / "absent", index_dir=tmp_path / "index", model=fake.model_id)
    with pytest.raises(rag.EmptyCorpusError, match="does not exist"):
        rag.build_index(settings=settings)
    assert not (tmp_path / "index").exists()


def test_reading_never_follows_a_file_swapped_for_a_link_after_discovery(tmp_path):
    from rag.documents.discover import discover, read_seed

    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "a.txt").write_text("un texte ordinaire sur la Fnac")
    (tmp_path / "secret.txt").write_text("secretissime")
    (found,), _ = discover(seeds, (".txt",))
    (seeds / "a.txt").unlink()
    os.symlink(tmp_path / "secret.txt", seeds / "a.txt")
    doc, reason = read_seed(found, 10_000)
    assert doc is None and reason.startswith("cannot read")
    Path(seeds / "a.txt").unlink()
    (seeds / "a.txt").write_text("x" * 20)
    doc, reason = read_seed(found, 10)
    assert doc is None and reason == "file too large (20 bytes; the limit is 10)"
