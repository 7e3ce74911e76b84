"""File names for documents added from outside (an upload, a link): safe in any file system, readable,
short enough for every file system (a name is at most 255 bytes; a 300-character name is shortened, not
refused with a bare OSError), with an extension the seeds folder reads."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from ..errors import InvalidDocumentError
from .links import link_file, read_link

MAX_NAME_BYTES = 180  # well under the 255 of common file systems: room for the link file's ".url" and temp names
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")


def upload_name(filename: str, extensions: tuple[str, ...]) -> str:
    """The name an uploaded file is saved under, or InvalidDocumentError when its extension is not read."""
    name = PurePosixPath(str(filename or "").replace("\\", "/")).name.strip()
    name = _UNSAFE.sub("", name).lstrip(".-").strip()
    suffix = PurePosixPath(name).suffix.lower()
    if not name or suffix not in extensions:
        raise InvalidDocumentError(
            f"only {', '.join(extensions)} files can be added, not “{name or filename}”"
        )
    return shorten(PurePosixPath(name).stem, suffix)


def shorten(stem: str, suffix: str) -> str:
    """``stem + suffix`` within MAX_NAME_BYTES of UTF-8, cut at a character boundary."""
    room = MAX_NAME_BYTES - len(suffix.encode("utf-8"))
    cut = stem.encode("utf-8")[:room].decode("utf-8", "ignore").rstrip(" .-")
    return (cut or "document") + suffix


def link_name(title: str, url: str, extension: str, seeds_dir: Path, hint: str = "") -> tuple[str, bool]:
    """(file name, whether it replaces a file) for a document fetched from ``url``: its title, else the
    file name the server suggested (``hint``), else the last part of the address. The same link fetched
    again replaces its file; another document that gets the same name gets ' (2)', ' (3)', ..."""
    stem = (_readable(title) or _readable(PurePosixPath(hint).stem) or _readable(_last_part(url))
            or _readable(urlsplit(url).hostname or "") or "page")
    base = shorten(stem, extension)
    for n in range(1, 1000):
        name = base if n == 1 else shorten(PurePosixPath(base).stem[: MAX_NAME_BYTES - 16] + f" ({n})", extension)
        path = seeds_dir / name
        if not path.exists() and not link_file(path).exists():
            return name, False
        if read_link(path) == url:
            return name, True
    raise InvalidDocumentError(f"too many documents are named like “{base}” in the seeds folder")


def _last_part(url: str) -> str:
    path = unquote(urlsplit(url).path).rstrip("/")
    return PurePosixPath(PurePosixPath(path).name).stem if path else ""


def _readable(text: str) -> str:
    text = unicodedata.normalize("NFC", " ".join(str(text or "").split()))
    text = _UNSAFE.sub(" ", text).replace("\u2019", "'")
    return " ".join(text.split()).strip(" .-")[:120].rstrip(" .-")
