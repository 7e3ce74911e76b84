"""Measure each answer-quality lever on question sets: the textbook baseline, then ablations.

    .venv/bin/python scripts/levers.py tests/data/own_qa.jsonl ../shared/eval/dev_qa.jsonl [--only=NAME ...]

Embeddings are cached by text, so variants that embed the same texts share the cost."""

from __future__ import annotations

import hashlib
import importlib
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rag  # noqa: E402
from rag import api, evaluate
from rag.query import answer_type, retrieve, token_match  # noqa: E402
from rag.types import Answer, Hit  # noqa: E402

decide_mod = importlib.import_module("rag.query.decide")
answer_mod = importlib.import_module("rag.query.compose")
NO_LEXICAL_SUPPORT = {"fr": 0.0, "en": 0.0, "unknown": 0.0}
SEEDS = Path(__file__).resolve().parent.parent / "seeds"


class CachingEmbedder:
    """The real embedder, with document vectors cached by text across variants."""

    def __init__(self, inner):
        self.inner = inner
        self.model_id, self.fingerprint, self.dim = inner.model_id, inner.fingerprint, inner.dim
        self.max_tokens, self.content_tokens = inner.max_tokens, inner.content_tokens
        self.cache: dict[str, np.ndarray] = {}

    def count_tokens(self, text):
        return self.inner.count_tokens(text)

    def truncate(self, text, n):
        return self.inner.truncate(text, n)

    def embed_query(self, text):
        key = "q:" + text
        if key not in self.cache:
            self.cache[key] = self.inner.embed_query(text)
        return self.cache[key]

    def embed_tokens(self, texts, query=False, layer=8):
        keys = [f"t{int(query)}{layer}:" + hashlib.sha1(t.encode()).hexdigest() for t in texts]
        missing = [(k, t) for k, t in dict(zip(keys, texts)).items() if k not in self.cache]
        if missing:
            for (k, _), v in zip(missing, self.inner.embed_tokens([t for _, t in missing], query=query, layer=layer)):
                self.cache[k] = v
        return [self.cache[k] for k in keys]

    def embed_query_tokens(self, text, layer=8):
        return self.embed_query(text), self.embed_tokens([text], query=True, layer=layer)[0]

    def embed_documents(self, texts, show_progress=False):
        missing = [t for t in dict.fromkeys(texts) if hashlib.sha1(t.encode()).hexdigest() not in self.cache]
        if missing:
            for t, v in zip(missing, self.inner.embed_documents(missing)):
                self.cache[hashlib.sha1(t.encode()).hexdigest()] = v
        return np.stack([self.cache[hashlib.sha1(t.encode()).hexdigest()] for t in texts])


def textbook(questions, emb):
    """Recursive character splitter 1000/200 on the raw files, one flat FAISS index, dense only."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200, add_start_index=True)
    chunks = []
    for path in sorted(SEEDS.glob("*.txt")):
        for d in splitter.create_documents([path.read_text()]):
            chunks.append((path.name, d.page_content, d.metadata["start_index"]))
    vecs = emb.embed_documents([c[1] for c in chunks])
    searches, answers = [], []
    for q in questions:
        s = vecs @ emb.embed_query(q.q)
        order = np.argsort(-s)[:10]
        hits = [Hit(chunks[i][0], chunks[i][1], chunks[i][2], chunks[i][2] + len(chunks[i][1]), float(s[i])) for i in order]
        searches.append(hits)
        answers.append(Answer(q.q, "", True, []))
    return evaluate.score(questions, searches, answers)


def variant(questions, emb, workdir: Path, name: str, settings_changes=None, module_changes=None):
    settings = rag.Settings(seeds_dir=SEEDS, index_dir=workdir / name, model=emb.model_id, **(settings_changes or {}))
    saved = {}
    for (mod, attr), value in (module_changes or {}).items():
        saved[(mod, attr)] = getattr(mod, attr)
        setattr(mod, attr, value)
    try:
        rag.build_index(settings=settings)
        searches = [rag.search(q.q, k=10, settings=settings) for q in questions]
        answers = [rag.answer(q.q, settings=settings) for q in questions]
    finally:
        for (mod, attr), value in saved.items():
            setattr(mod, attr, value)
    return evaluate.score(questions, searches, answers)


VARIANTS = {
    "final pipeline": ({}, {}),
    "- token match": ({}, {(retrieve, "TOKEN_WEIGHT"): 0.0}),
    "token match at layer 10": ({}, {(token_match, "TOKEN_LAYER"): 10}),
    "token match at layer 12 (the last)": ({}, {(token_match, "TOKEN_LAYER"): 12}),
    "decline - token support": ({}, {(decide_mod, "TOKEN_SUPPORT_WEIGHT"): 0.0}),
    "decline: best sentence of the 3 top candidates (as before)": ({}, {(decide_mod, "BEST_DEPTH"): 3}),
    "- token match, best sentence of the 3 top candidates (the last round)": (
        {},
        {(retrieve, "TOKEN_WEIGHT"): 0.0, (decide_mod, "BEST_DEPTH"): 3, (decide_mod, "TOKEN_SUPPORT_WEIGHT"): 0.0},
    ),
    "token match weight 0.5": ({}, {(retrieve, "TOKEN_WEIGHT"): 0.5}),
    "token match with the question's stop words": ({}, {(token_match, "CONTENT_WORDS_ONLY"): False}),
    "- BM25 fusion": ({}, {(retrieve, "LEXICAL_WEIGHT"): {"fr": 0.0, "en": 0.0, "unknown": 0.0}}),
    "BM25 same weight for every language": ({}, {(retrieve, "LEXICAL_WEIGHT"): {"fr": 1.0, "en": 1.0, "unknown": 1.0}}),
    "- sentence vectors": ({}, {(retrieve, "SENTENCE_WEIGHT"): 0.0}),
    "sentence vectors only": ({}, {(retrieve, "SENTENCE_WEIGHT"): 1.0}),
    "+ title context (decline as fitted for it)": (
        {"title_context": True},
        {(decide_mod, "THRESHOLD"): {"fr": 0.055, "en": 0.010, "unknown": 0.030}},
    ),
    "- boilerplate cleaning (and post split)": ({"clean_boilerplate": False}, {}),
    "chunks 256/48 tokens": ({"chunk_tokens": 256, "chunk_overlap_tokens": 48}, {}),
    "chunks 96/16 tokens": ({"chunk_tokens": 96, "chunk_overlap_tokens": 16}, {}),
    "- short-sentence shrink": ({}, {(retrieve, "SHORT_SENTENCE_WORDS"): 0}),
    "short-sentence shrink below 10 words": ({}, {(retrieve, "SHORT_SENTENCE_WORDS"): 10}),
    "- question-sentence shrink": ({}, {(retrieve, "QUESTION_SENTENCE_SHARE"): 1.0}),
    "question sentences by their chunk only": ({}, {(retrieve, "QUESTION_SENTENCE_SHARE"): 0.0}),
    "decline as before (one threshold 0.022, no lexical support)": (
        {},
        {
            (decide_mod, "THRESHOLD"): {"fr": 0.022, "en": 0.022, "unknown": 0.022},
            (decide_mod, "LEXICAL_SUPPORT"): NO_LEXICAL_SUPPORT,
        },
    ),
    "decline - lexical support": ({}, {(decide_mod, "LEXICAL_SUPPORT"): NO_LEXICAL_SUPPORT}),
    "decline - reference sentences": ({}, {(decide_mod, "REFERENCE_WEIGHT"): 0.0}),
    "decline - quantity check": ({}, {(decide_mod, "QUANTITY_CHECK"): False}),
    "reference gap as before (-0.005)": ({}, {(decide_mod, "REFERENCE_GAP"): -0.005}),
    "quantity check: a date or a rank states an amount": ({}, {(answer_type, "AMOUNT"): False}),
    "quantity check: any number answers (untyped)": ({}, {(answer_type, "TYPED"): False}),
    "quantity check: a date, an amount or a rank counts things": ({}, {(answer_type, "COUNT"): False}),
    "- quoting the sentence with a number for quantity questions": ({}, {(answer_mod, "QUANTITY_QUOTE_WINDOW"): 0.0}),
    "- continuation of the first quote": ({}, {(answer_mod, "CONTINUATION_WINDOW"): 0.0}),
    "sentences that ask quoted too": ({}, {(answer_mod, "QUOTE_QUESTIONS"): True}),
    "titles quoted too": ({}, {(answer_mod, "QUOTE_TITLES"): True}),
}


def row(name, r):
    return (
        f"| {name} | {r.recall_at[1]:.3f} | {r.recall_at[5]:.3f} | {r.mrr:.3f} | {r.cited_right:.3f} | {r.quoted_right:.3f} | "
        f"{r.declined}/{r.unanswerable} | {r.wrongly_declined}/{r.answerable} |"
    )


def main(argv):
    paths = [a for a in argv if not a.startswith("--only=")]
    only = {a.split("=", 1)[1] for a in argv if a.startswith("--only=")} or None
    inner = rag.get_embedder()
    emb = CachingEmbedder(inner)
    api.register_embedder(emb)
    workdir = Path(tempfile.mkdtemp(prefix="levers-"))
    try:
        for path in paths:
            questions = evaluate.load_questions(Path(path))
            print(f"\n{path}\n")
            print("| pipeline | recall@1 | recall@5 | MRR@10 | cited right | quoted right | declined | wrongly declined |")
            print("|---|---|---|---|---|---|---|---|")
            if not only or "textbook" in only:
                print(row("textbook (1000/200 chars, flat dense)", textbook(questions, emb)), flush=True)
            for name, (sc, mc) in VARIANTS.items():
                if only and name not in only:
                    continue
                print(row(name, variant(questions, emb, workdir, name.replace(" ", "_"), sc, mc)), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
