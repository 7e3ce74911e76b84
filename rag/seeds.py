"""Taking seeds out of the collection and putting them back: ``remove_document``, ``restore_document``,
``list_trash`` (the files move through ``rag.trash``; the index follows through ``rag.api.build_index``)."""

from __future__ import annotations

from . import trash
from .api import _settings, build_index
from .settings import Settings
from .types import IndexReport, TrashedSeed


def remove_document(name: str, seeds_dir=None, index_dir=None, *, settings: Settings | None = None
                    ) -> tuple[TrashedSeed, IndexReport]:
    """Move seed ``name`` to the trash and update the index; ``restore_document`` brings it back."""
    s = _settings(seeds_dir, index_dir, None, settings)
    entry = trash.move_to_trash(s, name)
    return entry, build_index(settings=s)


def restore_document(name: str, seeds_dir=None, index_dir=None, *, settings: Settings | None = None
                     ) -> tuple[TrashedSeed, IndexReport]:
    """Put the newest trashed copy of seed ``name`` back and update the index (a seed of that name in its
    place goes to the trash)."""
    s = _settings(seeds_dir, index_dir, None, settings)
    entry = trash.take_from_trash(s, name)
    return entry, build_index(settings=s)


def list_trash(index_dir=None, *, settings: Settings | None = None) -> list[TrashedSeed]:
    """The replaced and removed seeds kept in the index folder's trash, newest first."""
    return trash.list_trash(_settings(None, index_dir, None, settings))
