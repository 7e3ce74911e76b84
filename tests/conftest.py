"""Shared fixtures: a fake embedder for fast tests, the real model and index once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import rag
from rag.model import FakeEmbedder

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds"
DEV_QA = REPO.parent / "shared" / "eval" / "dev_qa.jsonl"
EXAMPLE_QUESTION = "why do French trust pure-players?"


@pytest.fixture
def fake():
    embedder = FakeEmbedder()
    rag.register_embedder(embedder)
    return embedder


@pytest.fixture
def seeds_copy(tmp_path) -> Path:
    dest = tmp_path / "seeds"
    shutil.copytree(SEEDS, dest)
    return dest


@pytest.fixture
def fake_settings(fake, seeds_copy, tmp_path) -> rag.Settings:
    return rag.Settings(seeds_dir=seeds_copy, index_dir=tmp_path / "index", model=fake.model_id)


@pytest.fixture(scope="session")
def real_embedder():
    """The real multilingual model (its default runtime, onnxruntime), loaded once for the whole test session."""
    return rag.get_embedder(rag.Settings().model)


@pytest.fixture(scope="session")
def reference_embedder():
    """The default model through sentence-transformers (PyTorch), the reference runtime, loaded once."""
    return rag.get_embedder(rag.Settings().model + "#torch")


@pytest.fixture(scope="session")
def real_settings(real_embedder, tmp_path_factory) -> rag.Settings:
    """The five seeds indexed once with the real model, in a private folder."""
    base = tmp_path_factory.mktemp("real")
    shutil.copytree(SEEDS, base / "seeds")
    settings = rag.Settings(seeds_dir=base / "seeds", index_dir=base / "index")
    rag.build_index(settings=settings)
    return settings


def fake_indexed_copy(base: Path) -> rag.Settings:
    """The seeds copied to ``base`` (writable) and indexed with the fake embedder, found by its name: a
    child process (a server's indexing worker) finds it too."""
    shutil.copytree(SEEDS, base / "seeds")
    for path in (base / "seeds").iterdir():
        path.chmod(0o644)
    settings = rag.Settings(seeds_dir=base / "seeds", index_dir=base / "index", model=FakeEmbedder().model_id)
    rag.build_index(settings=settings)
    return settings
