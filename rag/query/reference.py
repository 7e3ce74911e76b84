"""Everyday sentences on other subjects, to tell off-topic questions from answerable ones.

multilingual-e5's cosines are compressed: "How do I bake sourdough bread at home?" still finds a
seed sentence at 0.80, as high as the best passage of some answerable questions. What differs is
that an everyday sentence on another subject matches an off-topic question *better* than any
passage does, while an answerable question's passage beats them all. ``closest`` returns the
question's best cosine to ``reference_sentences.txt`` (about 800 sentences, English and French,
on some 240 everyday subjects, none about customer service, shops or brands), and ``decide`` weighs it
against the best passage. The wider the subjects, the more off-topic questions find their own: going from
200 sentences on ~60 subjects to 800 declined 4 more of 40 off-topic and on-topic questions the seeds do
not answer (tests/data/decline_tune_qa.jsonl) and 1 more of the 25 in the other tuning sets, for one
more answerable question declined of 114 (tests/data/heldout_qa.jsonl).

The sentences' vectors depend only on the embedder, so they are computed once per embedder and
kept in memory and, for real models, in the user's cache (``~/.cache/rag/reference/``), never
in the index: a build does not pay for them."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import threading
from pathlib import Path

import numpy as np

from ..model.base import Embedder
from ..model.build import default_cache_root

log = logging.getLogger(__name__)
SENTENCES_FILE = Path(__file__).parent.parent / "data" / "reference_sentences.txt"

_memo: dict[str, np.ndarray] = {}
_lock = threading.Lock()


@functools.cache
def sentences() -> tuple[str, ...]:
    """The reference sentences, read once per process (the file ships with the package)."""
    text = SENTENCES_FILE.read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


@functools.cache
def _sentences_digest() -> str:
    return hashlib.sha256("\n".join(sentences()).encode("utf-8")).hexdigest()


def _key(embedder: Embedder) -> str:
    return hashlib.sha256(f"{embedder.fingerprint}\0{_sentences_digest()}".encode()).hexdigest()[:32]


def cache_dir() -> Path:
    return default_cache_root().parent / "reference"


def vectors(embedder: Embedder) -> np.ndarray:
    """The reference sentences' document vectors for ``embedder`` (rows L2-normalised)."""
    key = _key(embedder)
    with _lock:
        if key in _memo:
            return _memo[key]
        persistent = not embedder.fingerprint.startswith("fake:")
        path = cache_dir() / f"{key}.npy"
        vecs = _load(path, len(sentences()), embedder.dim) if persistent else None
        if vecs is None:
            vecs = np.ascontiguousarray(embedder.embed_documents(list(sentences())), dtype=np.float32)
            if persistent:
                _save(path, vecs)
        _memo[key] = vecs
        return vecs


def closest(embedder: Embedder, query_vec: np.ndarray) -> float:
    """The question's best cosine to any reference sentence."""
    return float(np.max(vectors(embedder) @ query_vec))


def _load(path: Path, rows: int, dim: int) -> np.ndarray | None:
    try:
        vecs = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if vecs.shape != (rows, dim) or vecs.dtype != np.float32 or not np.all(np.isfinite(vecs)):
        log.warning("Ignoring a damaged reference cache %s; computing it again.", path)
        return None
    return vecs


def _save(path: Path, vecs: np.ndarray) -> None:
    """Write atomically; a cache that cannot be written only costs the next process a recompute."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, vecs)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("Could not cache the reference vectors in %s: %s", path.parent, exc)
