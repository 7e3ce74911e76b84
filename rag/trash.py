"""The trash: a seed replaced or removed through rag is moved here, not deleted, so it can be restored.

A trashed seed lives in ``<index>/trash/<UTC time>/<its name in the seeds folder>`` for
``Settings.trash_days`` days; older folders are deleted whenever the trash is used. The folder sits
inside the index folder so it moves, is backed up and is kept from the web server with the index."""

from __future__ import annotations

import calendar
import os
import shutil
import time
from pathlib import Path, PurePosixPath

from .documents.links import LINK_SUFFIX, link_file
from .errors import InvalidDocumentError
from .settings import Settings
from .types import TrashedSeed

TRASH_DIR = "trash"
_STAMP = "%Y-%m-%dT%H-%M-%SZ"  # a folder name: no colons


def seed_path(settings: Settings, name: str) -> Path:
    """The file of seed ``name`` (a path relative to the seeds folder), refusing any name that
    would lead out of it."""
    if not isinstance(name, str) or not name.strip() or "\x00" in name:
        raise InvalidDocumentError("give the document's name as the seeds folder shows it")
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts or PurePosixPath(name).is_absolute() or any(p in ("..", ".", "") for p in parts):
        raise InvalidDocumentError(f"“{name}” is not a name inside the seeds folder")
    return settings.seeds_dir.joinpath(*parts)


def move_to_trash(settings: Settings, name: str, copy: bool = False) -> TrashedSeed:
    """Move seed ``name`` (and the link file recording where it came from, if any) out of the seeds folder
    into a new dated trash folder (``copy``: leave them in place too, for a caller that replaces the seed
    atomically next)."""
    source = seed_path(settings, name)
    if not source.is_file() and not source.is_symlink():
        raise InvalidDocumentError(f"there is no document named {name} in the seeds folder")
    purge(settings)
    folder = _new_folder(settings)
    target = folder.joinpath(*PurePosixPath(name.replace("\\", "/")).parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    for here, there in ((source, target), (link_file(source), link_file(target))):
        if here is source or here.is_file():
            if copy:
                shutil.copy2(here, there, follow_symlinks=False)
            else:
                shutil.move(here, there)  # a rename, unless the index is on another file system
    return _entry(settings, target)


def list_trash(settings: Settings) -> list[TrashedSeed]:
    """What the trash holds, newest first (old entries are purged first)."""
    purge(settings)
    root = settings.index_dir / TRASH_DIR
    if not root.is_dir():
        return []
    entries = [
        _entry(settings, path)
        for folder in root.iterdir()
        if folder.is_dir() and _folder_time(folder) is not None
        for path in sorted(folder.rglob("*"))
        if (path.is_file() or path.is_symlink()) and not _is_link_of_a_trashed_seed(path)
    ]
    return sorted(entries, key=lambda e: _folder_order(e.folder), reverse=True)


def take_from_trash(settings: Settings, name: str) -> TrashedSeed:
    """Put the newest trashed copy of ``name`` back into the seeds folder; a seed of that name already
    there goes to the trash first, so nothing is lost either way."""
    seed_path(settings, name)
    wanted = PurePosixPath(name.replace("\\", "/")).as_posix()
    matches = [e for e in list_trash(settings) if e.source == wanted]
    if not matches:
        known = sorted({e.source for e in list_trash(settings)})
        hint = f"; the trash holds {', '.join(known[:10])}" if known else "; the trash is empty"
        raise InvalidDocumentError(f"no copy of {name} in the trash{hint}")
    entry = matches[0]
    current = seed_path(settings, wanted)
    if current.exists() or current.is_symlink():
        move_to_trash(settings, wanted)
    current.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(entry.path, current)
    if link_file(Path(entry.path)).is_file():
        shutil.move(link_file(Path(entry.path)), link_file(current))
    _remove_empty_parents(Path(entry.path).parent, settings.index_dir / TRASH_DIR)
    return entry


def purge(settings: Settings, now: float | None = None) -> list[str]:
    """Delete the trash folders older than ``settings.trash_days``; returns their names."""
    root = settings.index_dir / TRASH_DIR
    if not root.is_dir():
        return []
    limit = (time.time() if now is None else now) - settings.trash_days * 86400
    gone = []
    for folder in sorted(root.iterdir()):
        when = _folder_time(folder)
        if when is not None and when < limit and folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
            gone.append(folder.name)
    return gone


def _new_folder(settings: Settings) -> Path:
    root = settings.index_dir / TRASH_DIR
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime(_STAMP, time.gmtime())
    for n in range(1000):
        folder = root / (stamp if n == 0 else f"{stamp}.{n}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise InvalidDocumentError("too many documents were trashed within one second; try again")


def _is_link_of_a_trashed_seed(path: Path) -> bool:
    return path.name.endswith(LINK_SUFFIX) and path.with_name(path.name[: -len(LINK_SUFFIX)]).exists()


def _folder_time(folder: Path) -> float | None:
    """When a trash folder was made, from its name (``2026-11-23T10-48-32Z`` or ``...Z.2``)."""
    try:
        return calendar.timegm(time.strptime(folder.name.split(".")[0], _STAMP))
    except ValueError:
        return None


def _folder_order(name: str) -> tuple[str, int]:
    stamp, _, n = name.partition(".")
    return stamp, int(n) if n.isdigit() else 0


def _entry(settings: Settings, path: Path) -> TrashedSeed:
    root = settings.index_dir / TRASH_DIR
    relative = path.relative_to(root)
    folder = relative.parts[0]
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.strptime(folder.split(".")[0], _STAMP))
    size = path.lstat().st_size
    return TrashedSeed(source=PurePosixPath(*relative.parts[1:]).as_posix(), trashed_at=when, bytes=size,
                       path=str(path), folder=folder)


def _remove_empty_parents(folder: Path, root: Path) -> None:
    while folder != root and folder.is_relative_to(root):
        try:
            os.rmdir(folder)
        except OSError:
            return
        folder = folder.parent
