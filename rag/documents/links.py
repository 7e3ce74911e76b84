"""Web addresses a document carries: which values count as a link, and the link file that records where
a seed was fetched from (``name.pdf.url`` beside ``name.pdf``).

The link file uses the Internet Shortcut layout (``[InternetShortcut]`` then ``URL=...``), so a person
browsing the seeds folder can open it to reach the page, and every format (a PDF, a Word file, a page)
records its address the same way without its own bytes being changed."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

LINK_SUFFIX = ".url"
MAX_URL_CHARS = 2048
MAX_LINK_FILE_BYTES = 8192
_URL_LINE = re.compile(r"^\s*URL\s*=\s*(\S+)\s*$", re.IGNORECASE | re.MULTILINE)


def http_url(value: object) -> str:
    """``value`` when it is an absolute http(s) address a card may link to, else ''. A ``javascript:``,
    ``data:`` or relative address never becomes a link."""
    if not isinstance(value, str):
        return ""
    url = value.strip()
    if not url or len(url) > MAX_URL_CHARS or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return ""
    scheme, sep, rest = url.partition(":")
    if not sep or scheme.lower() not in ("http", "https") or not rest.startswith("//") or len(rest) < 3:
        return ""
    return url


def link_file(seed_path: Path) -> Path:
    """Where the link of ``seed_path`` is recorded."""
    return seed_path.with_name(seed_path.name + LINK_SUFFIX)


def link_file_text(url: str) -> str:
    return f"[InternetShortcut]\nURL={url}\n"


def read_link(seed_path: Path) -> str:
    """The recorded link of a seed, or '' (no link file, not a regular file, unreadable, not http(s))."""
    path = link_file(seed_path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return ""
        raw = f.read(MAX_LINK_FILE_BYTES)
    match = _URL_LINE.search(raw.decode("utf-8", "replace"))
    return http_url(match.group(1)) if match else ""
