"""Shared helpers for the robustness tests: a synthetic French corpus, child processes that build
or load an index with the fake embedder, and comparable snapshots of an index's content."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent

_SUBJECTS = [
    "la Fnac", "Amazon", "le libraire du quartier", "la grande distribution", "le client fidèle",
    "la boulangerie", "le marché de Rungis", "la coopérative agricole", "le vendeur en ligne",
    "la mairie", "le transporteur", "la banque régionale", "le musée d'Orsay", "la SNCF",
    "l'épicerie solidaire", "le fromager", "la start-up nantaise", "le réseau de franchises",
]
_VERBS = [
    "améliore", "réduit", "explique", "renforce", "transforme", "défend", "critique", "mesure",
    "organise", "annonce", "prépare", "compare", "finance", "protège", "accompagne", "rassure",
]
_OBJECTS = [
    "la confiance des consommateurs", "les délais de livraison", "le service après-vente",
    "la qualité des produits", "les prix pratiqués", "la relation avec les fournisseurs",
    "la fidélité de sa clientèle", "l'expérience en magasin", "les retours de colis",
    "la traçabilité des aliments", "la sécurité des paiements", "le recrutement des saisonniers",
    "les avis publiés sur internet", "la gestion des stocks", "la formation des vendeurs",
]
_CONTEXTS = [
    "depuis la crise sanitaire", "à l'approche de Noël", "dans les villes moyennes",
    "selon une enquête récente", "malgré l'inflation", "pendant les soldes d'été",
    "en Bretagne comme en Provence", "d'après les syndicats", "sur le long terme",
    "au grand dam des concurrents", "pour la première fois", "après des mois de négociations",
]
_SYLLABLES = ["ra", "lo", "mi", "ven", "tor", "ché", "lu", "pan", "dé", "sil", "cor", "bé", "na", "vri", "gau"]


def french_word(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))


def french_article(rng: random.Random, n_paragraphs: int = 4, marker: str = "") -> str:
    """A French-looking article: a title, then paragraphs of varied sentences. ``marker`` is a
    unique word put in the first paragraph, so a question can find this article."""
    title = f"{rng.choice(_SUBJECTS).capitalize()} et {rng.choice(_OBJECTS)} : {french_word(rng)}"
    paragraphs = []
    for p in range(n_paragraphs):
        sentences = []
        for _ in range(rng.randint(3, 6)):
            s = f"{rng.choice(_SUBJECTS).capitalize()} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_CONTEXTS)}"
            if rng.random() < 0.5:
                s += f", explique {french_word(rng).capitalize()} {french_word(rng).capitalize()}"
            if rng.random() < 0.3:
                s += f", avec {rng.randint(2, 98)} % de {french_word(rng)}"
            sentences.append(s + rng.choice([".", ".", ".", " !", " ?"]))
        if p == 0 and marker:
            sentences.insert(1, f"Le mot {marker} désigne ici une pratique commerciale étonnante.")
        paragraphs.append(" ".join(sentences))
    return title + "\n\n" + "\n\n".join(paragraphs) + "\n"


def write_corpus(folder: Path, n: int, seed: int = 0, prefix: str = "article") -> dict[str, str]:
    """``n`` synthetic seeds in ``folder``; returns name -> text."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    out = {}
    for i in range(n):
        name = f"{prefix}_{seed}_{i:03d}.txt"
        text = french_article(rng, n_paragraphs=rng.randint(2, 5), marker=f"motclef{seed}x{i}")
        (folder / name).write_text(text, encoding="utf-8")
        out[name] = text
    return out


# ----------------------------------------------------------------------------- child processes


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


FAKE_PRELUDE = """
import os, sys, json, signal, time
from pathlib import Path
import rag
from rag.model import FakeEmbedder
FAKE = FakeEmbedder()
rag.register_embedder(FAKE)
def fake_settings(seeds, index, **kw):
    return rag.Settings(seeds_dir=seeds, index_dir=index, model=FAKE.model_id, **kw)
"""


def run_child(code: str, *args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", FAKE_PRELUDE + code, *args],
        capture_output=True, text=True, timeout=timeout, env=child_env(), cwd=str(REPO), **kw,
    )


def start_child(code: str, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", FAKE_PRELUDE + code, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(), cwd=str(REPO), **kw,
    )


# ----------------------------------------------------------------------------- snapshots


def index_snapshot(index_dir: Path, questions: list[str], embedder) -> dict:
    """Everything a reader of the live build can observe, in comparable form: the seeds and chunk
    ids of the manifest, every chunk row, a digest of every vector, and ranked results."""
    from rag.query import retrieve
    from rag.store import IndexReader

    reader = IndexReader.open(index_dir)
    try:
        chunks = list(reader.iter_chunks())
        ids = [c.id for c in chunks]
        sids = [c.id * 1024 + j for c in chunks for j in range(len(c.sentences))]
        vec = reader.vectors_for(ids)
        svec = reader.sentence_vectors_for(sids)
        results = {}
        for q in questions:
            ranked = retrieve.rank(reader, q, embedder.embed_query(q), 5)
            results[q] = [(s.chunk.source, s.chunk.start, s.chunk.end, round(s.dense, 5)) for s in ranked]
        return {
            "seeds": {s: (e.sha256, e.chunk_ids) for s, e in reader.manifest.seeds.items()},
            "rows": [(c.id, c.source, c.start, c.end, c.title, c.text, c.sentences) for c in chunks],
            "vectors": hashlib.sha256(np.ascontiguousarray(vec).tobytes()).hexdigest(),
            "sentences": hashlib.sha256(np.ascontiguousarray(svec).tobytes()).hexdigest(),
            "results": results,
        }
    finally:
        reader.close()


def content_view(snapshot: dict) -> dict:
    """A snapshot without chunk ids: what a full build and an incremental one must agree on."""
    return {
        "seeds": {s: sha for s, (sha, _) in snapshot["seeds"].items()},
        "rows": sorted(r[1:] for r in snapshot["rows"]),
        "results": snapshot["results"],
    }


def answer_view(ans) -> tuple:
    """An answer as a hashable, comparable value (everything the user sees)."""
    return (
        ans.text,
        ans.found,
        round(ans.confidence, 6),
        tuple((c.n, c.source, c.start, c.end, c.quote, c.quote_start, c.quote_end, round(c.score, 6)) for c in ans.citations),
        tuple((h.source, h.start, h.end, round(h.score, 6)) for h in ans.nearest),
    )


def citations_match_seeds(hits, seed_texts: dict[str, str]) -> bool:
    """Every hit quotes exactly the text at its offsets in the seed it names."""
    return all(h.source in seed_texts and seed_texts[h.source][h.start : h.end] == h.text for h in hits)


def json_line(prefix: str, text: str) -> list[dict]:
    return [json.loads(line[len(prefix):]) for line in text.splitlines() if line.startswith(prefix)]
