"""Find and read seed files: decode any common encoding, skip what is not text, say why."""

from __future__ import annotations

import codecs
import hashlib
import os
import stat
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
    target: Path | None = None  # for a symbolic link: the file inside the seeds folder it leads to


def discover(seeds_dir: Path, extensions: tuple[str, ...]) -> tuple[list[SeedFile], list[tuple[str, str]]]:
    """Every seed under ``seeds_dir`` (recursively), sorted, plus what was passed over and why.

    Symbolic links that lead outside the seeds folder are not followed; neither are linked
    folders. Only regular files are read (a named pipe would block the build forever)."""
    root = seeds_dir.resolve()
    found: list[SeedFile] = []
    skipped: list[tuple[str, str]] = []
    wanted = tuple(e.lower() for e in extensions)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        for d in sorted(dirnames):
            if not d.startswith(".") and (here / d).is_symlink():
                skipped.append((_shown(here / d, root), "symbolic link to a folder (not followed)"))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or not name.lower().endswith(wanted):
                continue
            path = here / name
            source = _shown(path, root)
            if not _utf8(name) or not _utf8(str(path.relative_to(root))):
                skipped.append((source, "the file name is not valid UTF-8 (rename the file)"))
                continue
            try:
                mode = path.lstat().st_mode
            except OSError as exc:
                skipped.append((source, f"cannot read: {exc.strerror or exc}"))
                continue
            target = None
            if stat.S_ISLNK(mode):
                target = path.resolve()
                if not target.is_relative_to(root):
                    skipped.append((source, "symbolic link pointing outside the seeds folder (not followed)"))
                    continue
                if not target.is_file():
                    skipped.append((source, "broken symbolic link"))
                    continue
            elif not stat.S_ISREG(mode):
                skipped.append((source, "not a regular file"))
                continue
            found.append(SeedFile(path=path, source=source, target=target))
    return found, skipped


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes of the file name, kept as surrogates by os.fsdecode
        return False
    return True


def _shown(path: Path, root: Path) -> str:
    """The seed's name relative to the seeds folder, printable even when the name is not UTF-8."""
    return os.fsencode(path.relative_to(root).as_posix()).decode("utf-8", "backslashreplace")


def read_seed(seed: SeedFile, max_bytes: int) -> tuple[Document | None, str]:
    """Read one seed. Returns (document, "") or (None, reason it was skipped).

    Never reads more than ``max_bytes`` + 1 bytes, whatever the size the file claims or reaches."""
    try:
        raw = _read_limited(seed.target or seed.path, max_bytes)
    except _TooLarge as exc:
        return None, f"file too large ({exc.size:,} bytes; the limit is {max_bytes:,})"
    except _NotRegular:
        return None, "not a regular file"
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}"
    return parse_seed_bytes(seed.source, raw)


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        self.size = size


class _NotRegular(Exception):
    pass


def _read_limited(path: Path, max_bytes: int) -> bytes:
    # O_NOFOLLOW: a file swapped for a link after discovery is not followed; O_NONBLOCK: a pipe cannot block
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise _NotRegular()
        if info.st_size > max_bytes:
            raise _TooLarge(info.st_size)
        raw = f.read(max_bytes + 1)
    if len(raw) > max_bytes:  # it grew since
        raise _TooLarge(len(raw))
    return raw


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
    """Decode bytes as text, or None for binary content. BOMs first, then UTF-8, then detection."""
    if raw.startswith(codecs.BOM_UTF8):
        return _strict(raw[len(codecs.BOM_UTF8) :], "utf-8")
    # UTF-32's BOMs begin with UTF-16's: test them first
    for bom, enc in (
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if raw.startswith(bom):
            result = _strict(raw[len(bom) :], enc)
            if result is not None or enc.startswith("utf-16"):
                return result
    if raw.startswith(_BINARY_MAGIC) or b"\x00" in raw[:8192]:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return (text, "utf-8") if _looks_like_text(text) else None
    mostly_utf8 = _mostly_utf8(raw)
    if mostly_utf8 is not None:
        return mostly_utf8
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


def _mostly_utf8(raw: bytes) -> tuple[str, str] | None:
    """UTF-8 text with a few invalid bytes (a bad copy, a truncated character) is read as UTF-8 with
    the bad bytes replaced by U+FFFD, rather than as mojibake in some code page: it applies when
    valid multi-byte characters outnumber the invalid sequences."""
    text = raw.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - raw.count("\ufffd".encode())
    good = sum(1 for ch in text if ord(ch) > 127 and ch != "\ufffd")
    if bad <= 0 or good < bad or not _looks_like_text(text):
        return None
    return text, f"utf-8 ({bad} invalid byte sequence{'s' if bad > 1 else ''} replaced)"


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
