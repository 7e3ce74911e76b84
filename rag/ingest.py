"""Find and read seed files: decode any common encoding, skip what is not text, say why."""

from __future__ import annotations

import codecs
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from .clean import find_title
from .types import Document

_WESTERN = {"cp1252", "latin_1", "iso8859_15", "iso8859_1", "windows-1252"}
_BINARY_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"%PDF", b"PK\x03\x04", b"\x7fELF")


@dataclass(frozen=True)
class SeedFile:
    """A candidate seed on disk, before it is read."""

    path: Path
    source: str  # relative to the seeds folder, forward slashes


def discover(seeds_dir: Path, extensions: tuple[str, ...]) -> tuple[list[SeedFile], list[tuple[str, str]]]:
    """Every seed under ``seeds_dir`` (recursively), sorted, plus what was passed over and why.

    Symbolic links that lead outside the seeds folder are not followed."""
    root = seeds_dir.resolve()
    found: list[SeedFile] = []
    skipped: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            source = path.relative_to(root).as_posix()
            if not name.lower().endswith(tuple(e.lower() for e in extensions)):
                continue
            if path.is_symlink():
                target = path.resolve()
                if not target.is_relative_to(root):
                    skipped.append((source, "symbolic link pointing outside the seeds folder (not followed)"))
                    continue
                if not target.is_file():
                    skipped.append((source, "broken symbolic link"))
                    continue
            found.append(SeedFile(path=path, source=source))
    return found, skipped


def read_seed(seed: SeedFile, max_bytes: int) -> tuple[Document | None, str]:
    """Read one seed. Returns (document, "") or (None, reason it was skipped)."""
    try:
        size = seed.path.stat().st_size
        if size > max_bytes:
            return None, f"file too large ({size:,} bytes; the limit is {max_bytes:,})"
        raw = seed.path.read_bytes()
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}"
    return parse_seed_bytes(seed.source, raw)


def parse_seed_bytes(source: str, raw: bytes) -> tuple[Document | None, str]:
    if not raw.strip():
        return None, "empty file" if not raw else "only white space"
    decoded = decode_text(raw)
    if decoded is None:
        return None, "binary file (not text)"
    text, encoding = decoded
    if not text.strip():
        return None, "only white space"
    return Document(
        source=source,
        text=text,
        sha256=hashlib.sha256(raw).hexdigest(),
        title=find_title(text) or Path(source).stem,
        encoding=encoding,
    ), ""


def decode_text(raw: bytes) -> tuple[str, str] | None:
    """Decode bytes as text, or None for binary content. UTF-8 first, then BOMs, then detection."""
    if raw.startswith(codecs.BOM_UTF8):
        return _strict(raw[len(codecs.BOM_UTF8) :], "utf-8")
    for bom, enc in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if raw.startswith(bom):
            return _strict(raw[len(bom) :], enc)
    if raw.startswith(_BINARY_MAGIC) or b"\x00" in raw[:8192]:
        return None
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    # Short legacy files are ambiguous between code pages; the articles are French, so a
    # Western code page wins whenever the detector finds it plausible at all.
    matches = list(from_bytes(raw[:200_000]))
    names = [m.encoding for m in matches]
    candidates = [e for e in names if e in _WESTERN] and ["cp1252"]
    candidates += names + ["cp1252", "latin-1"]
    for enc in candidates:
        result = _strict(raw, enc)
        if result is not None:
            return result
    return None


def _strict(raw: bytes, encoding: str) -> tuple[str, str] | None:
    try:
        text = raw.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None
    return (text, encoding) if _looks_like_text(text) else None


def _looks_like_text(text: str) -> bool:
    if "\x00" in text:
        return False
    sample = text[:20_000]
    control = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\n\r\t\f\v")
    return control <= max(2, len(sample) // 200)
