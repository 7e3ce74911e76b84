"""What the grounding check adds to an answer written by a language model, with the real embedding model.

    .venv/bin/python -m bench.grounding [--questions tests/data/own_qa.jsonl] [--repeats 3]

The seeds are indexed into a temporary folder (not timed). For each answerable French question of the set, the
language model is a scripted one that replies at once with three sentences of the cited passages, each
ending with its [n]: so the time measured is ours (the prompt, reading the reply, the check), not a
model's. Each round times the quoted answer (``generate=False``) and the written one, alternating, and
the check alone (``check_reply``: one query embedding per sentence, the facts, the cosines), and one
``embed_query`` per written sentence. Printed: p50/p95 of the check per answer and per sentence, the check
per sentence over ``embed_query``, and the written/quoted time ratio of the same run."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import rag  # noqa: E402
from bench.common import load_average, median, pct  # noqa: E402
from rag.documents.chunk import split_sentences  # noqa: E402
from rag.llm import ScriptedLLM  # noqa: E402
from rag.query import generate  # noqa: E402
from rag.query.prompt import parse_reply  # noqa: E402

SENTENCES = 3  # a short written answer


def written_reply(answer: rag.Answer) -> str:
    """Three sentences of the cited passages with their markers: the quotes first, then the passages' others."""
    picked: list[tuple[str, int]] = [(c.quote, c.n) for c in answer.citations]
    for c in answer.citations:
        picked += [(c.text[a:b], c.n) for a, b in split_sentences(c.text) if len(c.text[a:b].split()) >= 6]
    unique = list(dict.fromkeys(picked))[:SENTENCES]
    return " ".join(f"{' '.join(text.split())} [{n}]" for text, n in unique)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--questions", default=str(REPO / "tests" / "data" / "own_qa.jsonl"))
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    base = Path(tempfile.mkdtemp(prefix="rag-bench-grounding-"))
    try:
        shutil.copytree(REPO / "seeds", base / "seeds")
        settings = rag.Settings(seeds_dir=base / "seeds", index_dir=base / "index")
        rag.build_index(settings=settings)
        rows = [json.loads(line) for line in Path(args.questions).read_text(encoding="utf-8").splitlines() if line]
        # French questions: the scripted reply is made of the (French) passages' sentences, and a reply in
        # another language than the question's is not checked at all (it falls back at once)
        questions = [r["q"] for r in rows if r.get("keys") and r.get("lang") == "fr"]
        quoted = {q: rag.answer(q, settings=settings, generate=False) for q in questions}  # also warms up
        questions = [q for q in questions if quoted[q].found]

        check_ms: list[float] = []
        per_sentence_ms: list[float] = []
        original = generate.check_reply

        def timed_check(reply, *rest):
            started = time.perf_counter()
            out = original(reply, *rest)
            elapsed = (time.perf_counter() - started) * 1000
            check_ms.append(elapsed)
            per_sentence_ms.append(elapsed / max(1, reply.count("[")))
            return out

        generate.check_reply = timed_check
        quoted_s, written_s, embed_ms, kept, total = [], [], [], 0, 0
        embedder = rag.get_embedder(settings.model)
        for round_ in range(args.repeats):
            for i, q in enumerate(questions):
                reply = written_reply(quoted[q])
                order = (False, True) if (i + round_) % 2 == 0 else (True, False)
                for written in order:
                    started = time.perf_counter()
                    if written:
                        answer = rag.answer(q, settings=settings, llm=ScriptedLLM([reply]))
                        written_s.append(time.perf_counter() - started)
                        if round_ == 0:
                            kept += len(answer.sentences) if answer.generated else 0
                            total += reply.count("[")
                    else:
                        rag.answer(q, settings=settings, generate=False)
                        quoted_s.append(time.perf_counter() - started)
                # what the check costs at least: one query embedding per sentence, timed in the same round
                for sentence, _ in parse_reply(reply):
                    started = time.perf_counter()
                    embedder.embed_query(sentence)
                    embed_ms.append((time.perf_counter() - started) * 1000)
        generate.check_reply = original
    finally:
        shutil.rmtree(base, ignore_errors=True)

    print(f"{len(questions)} answered questions x {args.repeats} rounds, {SENTENCES} written sentences each "
          f"(load {load_average()})")
    print(f"grounding check per answer: p50 {median(check_ms):.0f} ms, p95 {pct(check_ms, 95):.0f} ms; "
          f"per sentence p50 {median(per_sentence_ms):.0f} ms")
    print(f"embed_query of one written sentence p50 {median(embed_ms):.0f} ms: the check per sentence is "
          f"{median(per_sentence_ms) / median(embed_ms):.2f}x that")
    print(f"quoted answer p50 {median(quoted_s) * 1000:.0f} ms; written answer with an instant model p50 "
          f"{median(written_s) * 1000:.0f} ms; ratio {median(written_s) / median(quoted_s):.2f}x")
    print(f"sentences of the passages kept by the check: {kept} of {total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
