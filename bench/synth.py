"""Synthetic corpora of realistic French and English sentences, for the scale benchmarks.

Two sources are mixed, so the text looks like the seeds without copying them whole:

* sentence templates with slots (actors, actions, objects, places, times, figures), in French and
  in English, filled from word lists: millions of distinct, grammatical sentences;
* sentences of the real seeds (the repository's ``seeds/``), recombined across articles.

    .venv/bin/python -m bench.synth --chunks 10000 --out /tmp/corpus10k.jsonl   # one chunk a line
    .venv/bin/python -m bench.synth --seeds 30 --out-dir /tmp/seeds30            # seed files

A *chunk* here is a passage of consecutive sentences of one synthetic article, of about the size
the library's chunker makes (150 to 260 model tokens; ``chunk_tokens`` is 256), with its title and
sentence spans, i.e. what one row of the index's ``chunks`` table holds. Everything is
deterministic for a given ``seed``."""

from __future__ import annotations

import argparse
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds"

FR = {
    "actor": [
        "la Fnac", "Amazon", "le libraire du quartier", "la grande distribution", "la cliente fidèle",
        "la boulangerie de la rue Victor-Hugo", "le marché de Rungis", "la coopérative agricole",
        "le vendeur en ligne", "la mairie de Lyon", "le transporteur", "la banque régionale",
        "le musée d'Orsay", "la SNCF", "l'épicerie solidaire", "le fromager", "la start-up nantaise",
        "le réseau de franchises", "le ministère de l'Économie", "l'Insee", "la chambre de commerce",
        "le syndicat des commerçants", "la directrice des ventes", "le chef d'entreprise",
        "l'association de consommateurs", "le Conseil d'État", "la région Occitanie",
        "l'hôpital de Rennes", "le laboratoire du CNRS", "la plateforme de livraison",
    ],
    "action": [
        "améliore", "réduit", "explique", "renforce", "transforme", "défend", "critique", "mesure",
        "organise", "annonce", "prépare", "compare", "finance", "protège", "accompagne", "rassure",
        "remet en cause", "étudie", "simplifie", "négocie", "publie", "dénonce", "soutient", "évalue",
    ],
    "object": [
        "la confiance des consommateurs", "les délais de livraison", "le service après-vente",
        "la qualité des produits", "les prix pratiqués", "la relation avec les fournisseurs",
        "la fidélité de sa clientèle", "l'expérience en magasin", "les retours de colis",
        "la traçabilité des aliments", "la sécurité des paiements", "le recrutement des saisonniers",
        "les avis publiés sur internet", "la gestion des stocks", "la formation des vendeurs",
        "le pouvoir d'achat des ménages", "la transition énergétique", "les loyers commerciaux",
        "la vente en vrac", "le commerce de proximité", "les frais de port", "la carte de fidélité",
    ],
    "context": [
        "depuis la crise sanitaire", "à l'approche de Noël", "dans les villes moyennes",
        "selon une enquête récente", "malgré l'inflation", "pendant les soldes d'été",
        "en Bretagne comme en Provence", "d'après les syndicats", "sur le long terme",
        "au grand dam des concurrents", "pour la première fois", "après des mois de négociations",
        "dans les quartiers populaires", "à la rentrée", "depuis le début de l'année",
        "face à la concurrence des géants du web", "dans un contexte de hausse des taux",
    ],
    "place": ["Paris", "Lyon", "Marseille", "Lille", "Bordeaux", "Nantes", "Strasbourg", "Toulouse", "Rennes", "Grenoble"],
    "unit": ["des clients", "des Français", "des entreprises", "des magasins", "des salariés", "des ménages"],
    "firstname": ["Claire", "Julien", "Sophie", "Marc", "Nadia", "Thomas", "Élise", "Karim", "Anne", "Louis"],
    "lastname": ["Martin", "Bernard", "Dubois", "Laurent", "Moreau", "Lefèvre", "Garnier", "Rousseau", "Blanc", "Faure"],
    "role": ["économiste", "sociologue", "directeur du magasin", "porte-parole", "chercheuse", "élue locale"],
}
FR_TEMPLATES = [
    "{Actor} {action} {object} {context}.",
    "{Context}, {actor} {action} {object}.",
    "Selon {firstname} {lastname}, {role}, {actor} {action} {object} {context}.",
    "À {place}, {n} % {unit} estiment que {actor} {action} {object}.",
    "« Nous voulons que {actor} {action} {object} », explique {firstname} {lastname}, {role} à {place}.",
    "En {year}, {actor} a dépensé {m} millions d'euros pour {object}.",
    "Le chiffre a surpris : {n} % {unit} citent {object} comme leur première préoccupation.",
    "{Actor} ne {action} pas {object}, mais la question reste posée {context}.",
    "Pourquoi {actor} {action}-t-il {object} ? La réponse tient à {object2}.",
    "Pour {firstname} {lastname}, {object} et {object2} vont de pair {context}.",
    "Entre {year} et {year2}, la part {unit} concernés par {object} est passée de {n} à {n2} %.",
    "Le rapport publié à {place} recommande de lier {object} à {object2}.",
]
EN = {
    "actor": [
        "the local bookseller", "Amazon", "the supermarket chain", "the regional bank", "the city council",
        "the delivery platform", "the farmers' cooperative", "the online retailer", "the trade union",
        "the consumer association", "the ministry of the economy", "the national statistics office",
        "the start-up from Nantes", "the museum", "the railway company", "the sales director",
        "the research lab", "the franchise network", "the corner shop", "the hospital in Rennes",
    ],
    "action": [
        "improves", "reduces", "explains", "strengthens", "transforms", "defends", "criticises",
        "measures", "organises", "announces", "prepares", "compares", "funds", "protects", "supports",
        "questions", "studies", "simplifies", "negotiates", "publishes", "denounces", "assesses",
    ],
    "object": [
        "customer trust", "delivery times", "after-sales service", "product quality", "its prices",
        "relations with suppliers", "customer loyalty", "the in-store experience", "parcel returns",
        "food traceability", "payment security", "seasonal hiring", "online reviews",
        "stock management", "staff training", "household purchasing power", "the energy transition",
        "commercial rents", "bulk sales", "local commerce", "shipping costs", "the loyalty card",
    ],
    "context": [
        "since the health crisis", "in the run-up to Christmas", "in mid-sized towns",
        "according to a recent survey", "despite inflation", "during the summer sales",
        "in Brittany as in Provence", "according to the unions", "in the long run",
        "to the dismay of its rivals", "for the first time", "after months of talks",
        "in working-class neighbourhoods", "at the start of the school year", "since January",
        "in the face of competition from the web giants", "as interest rates rise",
    ],
    "place": ["Paris", "Lyon", "Marseille", "Lille", "Bordeaux", "Nantes", "Strasbourg", "Toulouse", "Rennes", "Grenoble"],
    "unit": ["of customers", "of French people", "of companies", "of shops", "of employees", "of households"],
    "firstname": ["Claire", "Julien", "Sophie", "Marc", "Nadia", "Thomas", "Elise", "Karim", "Anne", "Louis"],
    "lastname": ["Martin", "Bernard", "Dubois", "Laurent", "Moreau", "Lefevre", "Garnier", "Rousseau", "Blanc", "Faure"],
    "role": ["an economist", "a sociologist", "the store manager", "a spokesperson", "a researcher", "a local councillor"],
}
EN_TEMPLATES = [
    "{Actor} {action} {object} {context}.",
    "{Context}, {actor} {action} {object}.",
    "According to {firstname} {lastname}, {role}, {actor} {action} {object} {context}.",
    "In {place}, {n}% {unit} believe that {actor} {action} {object}.",
    "\"We want {actor} to improve {object},\" says {firstname} {lastname}, {role} in {place}.",
    "In {year}, {actor} spent {m} million euros on {object}.",
    "The figure came as a surprise: {n}% {unit} name {object} as their main concern.",
    "{Actor} does not only focus on {object}; {object2} matters too, {context}.",
    "Why does {actor} care about {object}? The answer lies in {object2}.",
    "For {firstname} {lastname}, {object} and {object2} go hand in hand {context}.",
    "Between {year} and {year2}, the share {unit} affected by {object} rose from {n} to {n2}%.",
    "The report published in {place} recommends linking {object} to {object2}.",
]
TITLE = {
    "fr": ["{Actor} et {object}", "{Object} : ce que {actor} prépare", "Enquête : {object} {context}"],
    "en": ["{Actor} and {object}", "{Object}: what {actor} is planning", "Inquiry: {object} {context}"],
}
_SENTENCE_END = re.compile(r"(?<=[.!?»])\s+(?=[A-ZÀ-ÖØ-Þ«\"])")


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _fill(rng: random.Random, template: str, words: dict) -> str:
    year = rng.randint(1995, 2024)
    values = {
        "n": rng.randint(3, 97), "n2": rng.randint(3, 97), "m": rng.randint(2, 900),
        "year": year, "year2": year + rng.randint(1, 10),
        "object2": rng.choice(words["object"]),
    }
    for key, options in words.items():
        choice = rng.choice(options)
        values[key] = choice
        values[_cap(key)] = _cap(choice)
    return template.format(**values)


def seed_sentences(seeds_dir: Path = SEEDS) -> list[str]:
    """The sentences of the real seeds, one per item (titles and very short lines left out)."""
    out = []
    for path in sorted(seeds_dir.glob("*.txt")):
        for para in path.read_text(encoding="utf-8").split("\n"):
            for s in _SENTENCE_END.split(para.strip()):
                if 40 <= len(s) <= 400:
                    out.append(s.strip())
    return out


@dataclass(frozen=True)
class SynthChunk:
    id: int
    source: str
    title: str
    text: str
    sentences: list[tuple[int, int]]  # character spans of the sentences in text
    lang: str

    def row(self) -> tuple:
        """The values of one row of the index's chunks table (id, source, start, end, title, text, sentences)."""
        return (self.id, self.source, 0, len(self.text), self.title, self.text, json.dumps(self.sentences))


class Generator:
    """Deterministic synthetic articles and chunks. ``seed_share`` of the sentences are real seed
    sentences (French), the rest come from templates; ``english_share`` of the articles are English."""

    def __init__(self, seed: int = 0, english_share: float = 0.3, seed_share: float = 0.25, seeds_dir: Path = SEEDS):
        self.rng = random.Random(seed)
        self.english_share = english_share
        self.seed_share = seed_share
        self.real = seed_sentences(seeds_dir) if seeds_dir.is_dir() else []

    def sentence(self, lang: str) -> str:
        if lang == "fr" and self.real and self.rng.random() < self.seed_share:
            return self.rng.choice(self.real)
        words, templates = (FR, FR_TEMPLATES) if lang == "fr" else (EN, EN_TEMPLATES)
        return _fill(self.rng, self.rng.choice(templates), words)

    def title(self, lang: str) -> str:
        return _fill(self.rng, self.rng.choice(TITLE[lang]), FR if lang == "fr" else EN)

    def lang(self) -> str:
        return "en" if self.rng.random() < self.english_share else "fr"

    def article(self, n_paragraphs: int | None = None, lang: str | None = None) -> tuple[str, str, str]:
        """(language, title, text) of one article: a title line, then paragraphs."""
        lang = lang or self.lang()
        title = self.title(lang)
        n_paragraphs = n_paragraphs or self.rng.randint(3, 8)
        paras = [" ".join(self.sentence(lang) for _ in range(self.rng.randint(3, 7))) for _ in range(n_paragraphs)]
        return lang, title, title + "\n\n" + "\n\n".join(paras) + "\n"

    def chunks(self, n: int, min_chars: int = 700, max_chars: int = 1100) -> Iterator[SynthChunk]:
        """``n`` chunks: passages of consecutive sentences of ~150-260 tokens, a few per article."""
        made = 0
        doc = 0
        while made < n:
            lang = self.lang()
            title = self.title(lang)
            source = f"synth_{doc:07d}.txt"
            for _ in range(self.rng.randint(1, 6)):
                if made >= n:
                    break
                parts: list[str] = []
                spans: list[tuple[int, int]] = []
                pos = 0
                target = self.rng.randint(min_chars, max_chars)
                while pos < target:
                    s = self.sentence(lang)
                    if parts:
                        pos += 1
                    spans.append((pos, pos + len(s)))
                    parts.append(s)
                    pos += len(s)
                yield SynthChunk(made, source, title, " ".join(parts), spans, lang)
                made += 1
            doc += 1

    def write_seeds(self, folder: Path, n: int, prefix: str = "synth") -> list[Path]:
        """``n`` synthetic seed files (.txt) in ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i in range(n):
            _, _, text = self.article()
            p = folder / f"{prefix}_{i:04d}.txt"
            p.write_text(text, encoding="utf-8")
            paths.append(p)
        return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="write a synthetic French/English corpus")
    p.add_argument("--chunks", type=int, help="write this many chunks, one JSON object a line, to --out")
    p.add_argument("--out", type=Path)
    p.add_argument("--seeds", type=int, help="write this many seed files to --out-dir")
    p.add_argument("--out-dir", type=Path)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    gen = Generator(args.seed)
    if args.chunks:
        with open(args.out, "w", encoding="utf-8") as f:
            for c in gen.chunks(args.chunks):
                f.write(json.dumps({"id": c.id, "source": c.source, "title": c.title, "text": c.text,
                                    "sentences": c.sentences, "lang": c.lang}, ensure_ascii=False) + "\n")
    if args.seeds:
        gen.write_seeds(args.out_dir, args.seeds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
