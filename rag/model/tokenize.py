"""Tokenising with the model's ``tokenizer.json`` while holding only the word pieces a text can use.

The default model's tokenizer (XLM-R's Unigram, 250,002 pieces) takes ~290 MB of resident memory in the
``tokenizers`` library, most of it the trie of its pieces; it was the largest part of a serving process.
About 112,000 of those pieces are written only with Latin letters, digits, punctuation and common
symbols. A Unigram tokenizer can only choose pieces that occur in the (normalised) text, so for a text
whose normalised characters are all of that kind, a tokenizer holding only those pieces builds the same
lattice and finds the same best path: the same pieces, hence the same ids once mapped back and the same
offsets. ``SubsetTokenizer`` loads that one (~95 MB) and loads the full tokenizer only on the first text
with any other character (Greek, Chinese, an emoji), which then answers every text (the subset is
dropped, so the process holds what it held before).

The subset is derived once from ``tokenizer.json`` and cached beside the ONNX export (``ensure_subset``);
it keeps the lowest-scored piece too, because the score the tokenizer gives an unknown character is
computed from the lowest score of its vocabulary. A tokenizer that is not a Unigram one (or uses byte
fallback) is used whole."""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SUBSET_VERSION = 1
SUBSET_FILE = f"tokenizer.latin-v{SUBSET_VERSION}.json"
SUBSET_IDS_FILE = f"tokenizer.latin-v{SUBSET_VERSION}.ids.npy"

# Basic Latin to Latin Extended-B, Latin Extended Additional, General Punctuation, currency symbols,
# and the few symbols French and English text uses outside them (the Metaspace mark "▁" included).
_OUTSIDE_SUBSET = re.compile("[^\u0000-\u024f\u1e00-\u1eff\u2000-\u206f\u20a0-\u20bf\u2100-\u215f\u2581]")


def in_subset(normalised: str) -> bool:
    """Whether every character of an already normalised text is one the subset's pieces are written in."""
    return _OUTSIDE_SUBSET.search(normalised) is None


def subset_vocabulary(config: dict) -> list[int] | None:
    """Ids of the pieces of ``config`` (a parsed ``tokenizer.json``) the subset keeps, in id order, or None
    when the tokenizer cannot be reduced so (not Unigram, byte fallback)."""
    model = config.get("model") or {}
    if model.get("type") != "Unigram" or model.get("byte_fallback"):
        return None
    vocab = model["vocab"]
    keep = {i for i, (piece, _) in enumerate(vocab) if in_subset(piece)}
    keep |= {int(t["id"]) for t in config.get("added_tokens", [])}
    keep.add(min(range(len(vocab)), key=lambda i: vocab[i][1]))  # the unknown character's score comes from it
    if model.get("unk_id") is not None:
        keep.add(int(model["unk_id"]))
    return sorted(keep)


def write_subset(tokenizer_json: Path, folder: Path) -> bool:
    """Write the subset tokenizer and its id map into ``folder`` (each file atomically); False when the
    tokenizer cannot be reduced."""
    config = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    keep = subset_vocabulary(config)
    if keep is None:
        return False
    new_id = {old: new for new, old in enumerate(keep)}
    vocab = config["model"]["vocab"]
    config["model"]["vocab"] = [vocab[i] for i in keep]
    if config["model"].get("unk_id") is not None:
        config["model"]["unk_id"] = new_id[int(config["model"]["unk_id"])]
    for token in config.get("added_tokens", []):
        token["id"] = new_id[int(token["id"])]
    # the post-processor names its special tokens by string, and their ids are looked up when it runs
    _write_atomic(folder / SUBSET_IDS_FILE, lambda f: np.save(f, np.asarray(keep, dtype=np.int32)))
    _write_atomic(folder / SUBSET_FILE, lambda f: f.write(json.dumps(config, ensure_ascii=False).encode("utf-8")))
    return True


def _write_atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_subset(tokenizer_json: Path, folder: Path) -> bool:
    """The subset files in ``folder`` (written once, under a file lock); False when there is no subset."""
    from filelock import FileLock

    if (folder / SUBSET_FILE).is_file() and (folder / SUBSET_IDS_FILE).is_file():
        return True
    with FileLock(str(folder / (SUBSET_FILE + ".lock"))):
        if (folder / SUBSET_FILE).is_file() and (folder / SUBSET_IDS_FILE).is_file():
            return True
        return write_subset(tokenizer_json, folder)


class SubsetTokenizer:
    """``tokenizers.Tokenizer`` for ``tokenizer_json`` (no padding, no truncation) that answers from the
    subset when a text allows it. Encodings are (ids, offsets) with the full tokenizer's ids. Not safe
    to call from several threads at once (neither is ``tokenizers``); the caller holds a lock."""

    def __init__(self, tokenizer_json: Path, subset_folder: Path | None = None) -> None:
        self._path = Path(tokenizer_json)
        self._full = None
        self._subset = None
        self._ids: np.ndarray | None = None
        if subset_folder is not None and _subset_ready(self._path, Path(subset_folder)):
            self._subset = _load(Path(subset_folder) / SUBSET_FILE)
            self._ids = np.load(Path(subset_folder) / SUBSET_IDS_FILE, allow_pickle=False)
        else:
            self._full = _load(self._path)

    @property
    def full_loaded(self) -> bool:
        return self._full is not None

    def _full_tokenizer(self):
        if self._full is None:
            # from now on the full one answers everything: the subset goes first, so that the full one
            # reuses its memory and the process holds no more than it would have without a subset
            self._subset, self._ids = None, None
            self._full = _load(self._path)
        return self._full

    def _fits(self, text: str) -> bool:
        return self._subset is not None and in_subset(self._subset.normalizer.normalize_str(text))

    def encode_batch(self, texts: list[str], add_special_tokens: bool) -> list[tuple[list[int], list[tuple[int, int]]]]:
        if self._subset is not None and all(self._fits(t) for t in texts):
            encs = self._subset.encode_batch(texts, add_special_tokens=add_special_tokens)
            return [(self._ids[e.ids].tolist(), e.offsets) for e in encs]
        encs = self._full_tokenizer().encode_batch(texts, add_special_tokens=add_special_tokens)
        return [(e.ids, e.offsets) for e in encs]

    def encode(self, text: str, add_special_tokens: bool) -> tuple[list[int], list[tuple[int, int]]]:
        return self.encode_batch([text], add_special_tokens)[0]

    def token_to_id(self, token: str) -> int | None:
        if self._subset is not None:
            found = self._subset.token_to_id(token)
            if found is not None:
                return int(self._ids[found])
        return self._full_tokenizer().token_to_id(token)


def _subset_ready(tokenizer_json: Path, folder: Path) -> bool:
    """``ensure_subset``, or False when the cache folder cannot be written (a model cache shared
    read-only): the full tokenizer then serves, as before the subset existed."""
    try:
        return ensure_subset(tokenizer_json, folder)
    except OSError as exc:
        log.warning("Tokenising with the whole vocabulary: cannot write its Latin-script subset in %s (%s)", folder, exc)
        return False


def _load(path: Path):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.no_truncation()
    return tok
