import os

from rag.documents.discover import discover, read_seed
from rag.documents.text import decode_text, parse_seed_bytes


def test_reads_utf8_latin1_cp1252_and_utf16(tmp_path):
    text = "Le client est roi, mais aussi un peu valet — l’été à Noël"
    (tmp_path / "utf8.txt").write_bytes(text.encode("utf-8"))
    (tmp_path / "latin1.txt").write_bytes("Le client est roi à Noël, été comme hiver".encode("latin-1"))
    (tmp_path / "cp1252.txt").write_bytes(text.encode("cp1252"))
    (tmp_path / "utf16.txt").write_bytes(text.encode("utf-16"))
    seeds, skipped = discover(tmp_path, (".txt",))
    docs = {s.source: read_seed(s, 10_000) for s in seeds}
    assert skipped == []
    assert docs["utf8.txt"][0].text == text
    assert docs["latin1.txt"][0].text == "Le client est roi à Noël, été comme hiver"
    assert docs["cp1252.txt"][0].text == text
    assert docs["utf16.txt"][0].text == text


def test_empty_whitespace_and_binary_files_are_skipped_with_a_reason():
    assert parse_seed_bytes("a.txt", b"") == (None, "empty file")
    assert parse_seed_bytes("b.txt", b"  \n\t ") == (None, "only white space")
    assert parse_seed_bytes("c.txt", b"abc\x00def")[1] == "binary file (not text)"
    assert parse_seed_bytes("d.txt", b"\x89PNG\r\n\x1a\n" + bytes(range(256)))[1] == "binary file (not text)"
    assert decode_text(bytes(range(256)) * 4) is None


def test_discovers_recursively_txt_and_md_only(tmp_path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "a.txt").write_text("alpha text here")
    (tmp_path / "sub" / "b.md").write_text("# beta\ntext")
    (tmp_path / "sub" / "deeper" / "c d é.txt").write_text("gamma text")
    (tmp_path / "-dash.txt").write_text("dash text")
    (tmp_path / "notes.pdf").write_bytes(b"%PDF")
    seeds, skipped = discover(tmp_path, (".txt", ".md"))
    assert [s.source for s in seeds] == ["-dash.txt", "a.txt", "sub/b.md", "sub/deeper/c d é.txt"]
    assert skipped == []


def test_symlink_outside_the_seeds_folder_is_not_followed(tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    seeds_dir = tmp_path / "seeds"
    seeds_dir.mkdir()
    (seeds_dir / "inside.txt").write_text("inside text")
    os.symlink(outside, seeds_dir / "link.txt")
    os.symlink(seeds_dir / "inside.txt", seeds_dir / "alias.txt")
    seeds, skipped = discover(seeds_dir, (".txt",))
    assert [s.source for s in seeds] == ["alias.txt", "inside.txt"]
    assert skipped == [("link.txt", "symbolic link pointing outside the seeds folder (not followed)")]


def test_file_over_the_size_limit_is_refused_without_reading(tmp_path):
    (tmp_path / "big.txt").write_text("x" * 5000)
    (seed,), _ = discover(tmp_path, (".txt",))
    doc, reason = read_seed(seed, max_bytes=1000)
    assert doc is None and "too large" in reason and "1,000" in reason
