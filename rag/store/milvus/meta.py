"""What a Milvus build records besides its rows: the manifest (the same JSON as the folder store's,
with its own checksum) and the head row naming the live generation; and the pointer to the live build.

The ``meta`` collection of a build holds, by id:

* 0, the head: ``{"gen", "parts", "sha256", "state", "removed", "plan", "previous"}``; ``state`` is
  "building" while a full build fills new collections (``plan`` says for which model and chunker, so a
  killed build resumes only into a build of the same), then "live"; ``removed`` lists, as id runs,
  the chunks the live generation dropped whose rows may still be being deleted (readers skip them);
* ``gen << 20 | part`` (part >= 1): the manifest of generation ``gen``, in parts of at most
  ``PART_CHARS`` characters (a VARCHAR holds 65,535 bytes).

The live build: an alias ``<base>_live`` on its chunks collection where the engine has aliases (a
server or cluster), else a one-row collection ``<base>__pointer`` holding its name (Milvus Lite);
either is switched in one request, so readers find the old build or the new one, never a mix."""

from __future__ import annotations

import hashlib
import json

from ...errors import REBUILD_HINT, IndexCorruptError, IndexMismatchError
from ..manifest import Manifest
from .schema import BuildNames, alias_name, create_record_collection, pointer_name

HEAD_ID = 0
PART_CHARS = 16_000  # 4 bytes a character at most: within a VARCHAR's 65,535 bytes
GEN_SHIFT = 20
ZERO = [0.0, 0.0]


def runs(ids) -> list[list[int]]:
    """Sorted ids as ``[first, end)`` runs (a seed's chunks have consecutive ids)."""
    out: list[list[int]] = []
    for i in sorted(ids):
        if out and out[-1][1] == i:
            out[-1][1] = i + 1
        else:
            out.append([i, i + 1])
    return out


def expand(id_runs) -> list[int]:
    return [i for a, b in id_runs for i in range(a, b)]


def read_head(client, meta: str, strong: bool = True) -> dict | None:
    """The head record; ``strong``: the newest (a Strong read waits for the engine's latest write: ~300 ms
    on the 2.3 standalone server), else as the engine serves it now (Bounded: seconds behind at most)."""
    rows = client.query(meta, filter=f"id == {HEAD_ID}", output_fields=["body"],
                        consistency_level="Strong" if strong else "Bounded")
    if not rows:
        return None
    try:
        head = json.loads(rows[0]["body"])
        if not isinstance(head, dict) or not isinstance(head.get("gen"), int):
            raise ValueError("not a head record")
        return head
    except ValueError as exc:
        raise IndexCorruptError(f"the head record of {meta} is damaged ({exc}); {REBUILD_HINT}") from None


def write_head(client, meta: str, head: dict) -> None:
    client.upsert(meta, [{"id": HEAD_ID, "body": json.dumps(head, sort_keys=True), "vec": ZERO}])


def write_manifest(client, meta: str, manifest: Manifest, gen: int) -> dict:
    """Store ``manifest`` as generation ``gen``'s parts; returns the head fields naming them."""
    body = manifest.to_json()
    parts = [body[i : i + PART_CHARS] for i in range(0, len(body), PART_CHARS)]
    rows = [{"id": (gen << GEN_SHIFT) | (n + 1), "body": part, "vec": ZERO} for n, part in enumerate(parts)]
    for start in range(0, len(rows), 64):
        client.upsert(meta, rows[start : start + 64])
    return {"gen": gen, "parts": len(parts), "sha256": hashlib.sha256(body.encode("utf-8")).hexdigest()}


def read_manifest(client, meta: str, head: dict) -> Manifest:
    gen, parts = head["gen"], head.get("parts", 0)
    first = (gen << GEN_SHIFT) | 1
    rows = client.query(meta, filter=f"id >= {first} and id < {first + parts}", output_fields=["id", "body"],
                        consistency_level="Strong")
    body = "".join(r["body"] for r in sorted(rows, key=lambda r: r["id"]))
    if len(rows) != parts or hashlib.sha256(body.encode("utf-8")).hexdigest() != head.get("sha256"):
        raise IndexCorruptError(f"the manifest in {meta} is incomplete or damaged; {REBUILD_HINT}")
    try:
        return Manifest.from_json(body)
    except IndexMismatchError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise IndexCorruptError(f"the manifest in {meta} is damaged ({str(exc)[:200]}); {REBUILD_HINT}") from None


def drop_old_parts(client, meta: str, gen: int) -> None:
    """Delete the manifest parts of generations before ``gen``."""
    client.delete(meta, filter=f"id > {HEAD_ID} and id < {gen << GEN_SHIFT}")


class AliasPointer:
    """The live build as an alias on its chunks collection (a Milvus server or cluster)."""

    def __init__(self, client, base: str) -> None:
        self.client, self.base, self.alias = client, base, alias_name(base)

    def live(self) -> BuildNames | None:
        try:
            target = self.client.describe_alias(self.alias).get("collection_name", "")
        except Exception as exc:  # noqa: BLE001 - pymilvus: "alias not found" is an error
            if "not found" in str(exc).lower() or getattr(exc, "code", None) == 1600:
                return None
            raise
        return _names(self.base, target, self.alias)

    def switch(self, names: BuildNames) -> None:
        if self.live() is None:
            self.client.create_alias(names.chunks, self.alias)
        else:
            self.client.alter_alias(names.chunks, self.alias)

    def clear(self) -> None:
        if self.live() is not None:
            self.client.drop_alias(self.alias)


class RecordPointer:
    """The live build named in a one-row collection (Milvus Lite has no aliases)."""

    def __init__(self, client, base: str) -> None:
        self.client, self.base, self.name = client, base, pointer_name(base)

    def live(self) -> BuildNames | None:
        try:
            rows = self.client.query(self.name, filter=f"id == {HEAD_ID}", output_fields=["body"],
                                     consistency_level="Strong")
        except Exception:  # noqa: BLE001 - no pointer collection yet: nothing was built
            if self.client.has_collection(self.name):
                raise
            return None
        return _names(self.base, rows[0]["body"], self.name) if rows else None

    def switch(self, names: BuildNames) -> None:
        if not self.client.has_collection(self.name):
            create_record_collection(self.client, self.name)
        self.client.upsert(self.name, [{"id": HEAD_ID, "body": names.chunks, "vec": ZERO}])

    def clear(self) -> None:
        if self.client.has_collection(self.name):
            self.client.drop_collection(self.name)


def _names(base: str, collection: str, pointer: str) -> BuildNames:
    names = BuildNames.of(base, collection)
    if names is None:
        raise IndexCorruptError(f"{pointer} names {collection!r}, not a build of {base!r}; {REBUILD_HINT}")
    return names
