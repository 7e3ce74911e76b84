"""Find seed files and read their bytes: links leaving the folder, non-regular files and files over
the size limit are passed over with a reason; reading never follows a link or blocks on a pipe. The
bytes then go to the reader of their kind (formats.py)."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ..types import Document
from .formats import read_document, seed_digest
from .links import read_link


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


@dataclass(frozen=True)
class SeedBytes:
    """A seed's bytes, its recorded link (links.py) and their sha256, before any reader parses them."""

    raw: bytes
    url: str
    sha256: str


def load_seed(seed: SeedFile, max_bytes: int) -> tuple[SeedBytes | None, str]:
    """The seed's bytes and digest, or (None, why it cannot be read): what tells a changed seed from an
    unchanged one without parsing it. Never reads more than ``max_bytes`` + 1 bytes, whatever the size
    the file claims or reaches."""
    try:
        raw = _read_limited(seed.target or seed.path, max_bytes)
    except _TooLarge as exc:
        return None, f"file too large ({exc.size:,} bytes; the limit is {max_bytes:,})"
    except _NotRegular:
        return None, "not a regular file"
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}"
    url = read_link(seed.path)
    return SeedBytes(raw, url, seed_digest(raw, url)), ""


def read_seed(seed: SeedFile, max_bytes: int) -> tuple[Document | None, str]:
    """Read one seed with the reader of its kind. Returns (document, "") or (None, reason it was skipped)."""
    loaded, reason = load_seed(seed, max_bytes)
    if loaded is None:
        return None, reason
    return parse_seed(seed.source, loaded)


def parse_seed(source: str, loaded: SeedBytes) -> tuple[Document | None, str]:
    return read_document(source, loaded.raw, url=loaded.url)


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

