"""What adding one seed costs, next to a full build, with the real embedding model (issue 5).

    .venv/bin/python -m bench.add_one [--seeds 200] [--keep DIR]

Writes ``--seeds`` synthetic French articles to a temporary folder, loads the model (not timed),
times a full build, then adds one article and times the incremental build. The goal is
add-one / full <= 0.05. Takes several minutes on two CPUs."""

from __future__ import annotations

import argparse
import logging
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import rag  # noqa: E402
from rag import indexer  # noqa: E402
from tests.robust_helpers import french_article, write_corpus  # noqa: E402

GOAL = 0.05


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=200, help="synthetic seeds in the index (default 200)")
    p.add_argument("--model", default=None, help="embedding model (default: the library's)")
    p.add_argument("--keep", metavar="DIR", help="build in DIR and keep it (default: a temporary folder)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")

    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="rag-bench-"))
    try:
        settings = rag.Settings.from_env(seeds_dir=base / "seeds", index_dir=base / "index", model=args.model)
        started = time.perf_counter()
        embedder = rag.get_embedder(settings.model)
        embedder.embed_documents(["Un texte pour chauffer le modèle.", "Et un autre."])
        load = time.perf_counter() - started
        write_corpus(settings.seeds_dir, args.seeds, seed=2026)

        started = time.perf_counter()
        full = indexer.build_index(settings, embedder)
        t_full = time.perf_counter() - started

        (settings.seeds_dir / "zz_added.txt").write_text(
            french_article(random.Random(4242), 4, marker="motajoute"), encoding="utf-8"
        )
        started = time.perf_counter()
        add = indexer.build_index(settings, embedder)
        t_add = time.perf_counter() - started

        started = time.perf_counter()
        indexer.build_index(settings, embedder)
        t_noop = time.perf_counter() - started
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)

    ratio = t_add / t_full
    print(f"model          {embedder.model_id} (loaded and warmed in {load:.1f} s, not counted)")
    print(f"full build     {args.seeds} seeds, {full.total_chunks} chunks embedded with their sentences: {t_full:.2f} s")
    print(f"add one seed   {add.added} added, {add.unchanged} unchanged, {add.chunks_embedded} chunk(s) embedded: {t_add:.2f} s")
    print(f"nothing to do  {t_noop:.2f} s")
    print(f"add-one / full = {ratio:.4f} (goal <= {GOAL}): {'OK' if ratio <= GOAL else 'TOO SLOW'}")
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
