"""``python -m bench.formats``: the document formats on this machine (issue 19).

Per format: the five seeds converted (a web page with its chrome around the article, a PDF printed with
header and footer, a Word file), files read, reading time per MB (median of repeats), recall@1 of the dev
questions over the converted seeds against the .txt seeds (real model; a question counts for the
converted file of its seed), the PDF citations on the page their quote is printed on; then every bad
file tried and what the person sees (the reason `rag index` prints, the error `rag add` and the upload give).

    .venv/bin/python -m bench.formats [--repeats 5] [--no-recall]"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import rag  # noqa: E402
from rag import evaluate  # noqa: E402
from rag.documents.formats import read_document  # noqa: E402
from tests import doc_factory as make  # noqa: E402

SEEDS = REPO / "seeds"
DEV_QA = REPO.parent / "shared" / "eval" / "dev_qa.jsonl"


def corpus(kind: str, dest: Path) -> dict[str, str]:
    if kind in ("text", "markdown"):
        dest.mkdir(parents=True)
        ext = ".txt" if kind == "text" else ".md"
        for seed in SEEDS.glob("*.txt"):
            shutil.copyfile(seed, dest / (seed.stem + ext))
        return {s.name: s.stem + ext for s in SEEDS.glob("*.txt")}
    return make.convert_seeds(SEEDS, dest, kind)


def read_speeds(folders: dict[str, Path], repeats: int) -> dict[str, tuple[int, float, float]]:
    """{kind: (files, MB, median seconds per MB)} of reading every file with its reader; the formats take
    turns within each round, so that a busy machine slows them alike."""
    raws = {kind: [(f.name, f.read_bytes()) for f in sorted(folder.iterdir())] for kind, folder in folders.items()}
    runs: dict[str, list[float]] = {kind: [] for kind in folders}
    for _ in range(repeats):
        for kind, files in raws.items():
            started = time.perf_counter()
            for name, raw in files:
                doc, reason = read_document(name, raw)
                assert doc is not None, (name, reason)
            runs[kind].append(time.perf_counter() - started)
    out = {}
    for kind, files in raws.items():
        mb = sum(len(raw) for _, raw in files) / 1e6
        out[kind] = (len(files), mb, statistics.median(runs[kind]) / mb)
    return out


def recall(folder: Path, names: dict[str, str], work: Path) -> tuple[float, int, int, str]:
    """(recall@1, questions, citations on the right page / PDF citations, misses) over one converted corpus."""
    settings = rag.Settings(seeds_dir=folder, index_dir=work / "index")
    rag.build_index(settings=settings)
    questions = [q if q.source is None else replace(q, source=names[q.source]) for q in evaluate.load_questions(DEV_QA)]
    searches = [rag.search(q.q, k=10, settings=settings) for q in questions]
    answers = [rag.answer(q.q, settings=settings) for q in questions]
    result = evaluate.score(questions, searches, answers)
    pages_right = pages = 0
    for a in answers:
        for c in a.citations:
            if c.page is None:
                continue
            pages += 1
            printed = make.pdf_pages_of((folder / c.source).read_bytes())[c.page - 1]
            pages_right += _folded(c.quote[:60]) in _folded(printed)
    misses = "; ".join(m["q"] for m in result.misses if "top" in m and m["rank"] != 1)  # answerable ones
    return result.recall_at[1], result.answerable, (pages_right, pages), misses


def _folded(text: str) -> str:
    return "".join(text.split()).casefold()


def bad_files() -> list[tuple[str, str, bytes]]:
    text = (SEEDS / "000_7e6f9a2e3c46846f.txt").read_text(encoding="utf-8")
    paragraphs = make.paragraphs_of(text)
    pdf = make.pdf_document(paragraphs[:20], title="Les leçons d'Amazon")
    docx = make.word_document(paragraphs[:20], title="Les leçons d'Amazon")
    return [
        ("PDF, encrypted with a password", "lecons-protege.pdf", make.encrypted_pdf(paragraphs[:8], "secret")),
        ("PDF, cut to a third (damaged)", "lecons-coupe.pdf", make.damaged(pdf)),
        ("PDF, scanned pages (no text layer)", "scan.pdf", make.scanned_pdf()),
        ("PDF, renamed .txt", "lecons.txt", pdf),
        ("HTML error page saved as .pdf", "rapport.pdf", b"<!DOCTYPE html><html><body><h1>404 Not Found</h1></body></html>"),
        ("HTML, only scripts and menus", "vide.html", b"<html><body><nav><a href=/>Accueil</a></nav><script>x()</script></body></html>"),
        ("Word, cut to a third (damaged)", "lecons-coupe.docx", make.damaged(docx)),
        ("Word, unpacking to 100 MB (zip bomb)", "bombe.docx", make.word_bomb(docx, 100 << 20)),
        ("ZIP archive renamed .docx", "archive.docx", make.plain_zip()),
        ("old Word .doc renamed .docx", "ancien.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(2000)),
        ("PNG image renamed .txt", "image.txt", b"\x89PNG\r\n\x1a\n" + bytes(100)),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.formats")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-recall", action="store_true", help="reading only (no model)")
    parser.add_argument("--kinds", default="text,html,pdf,docx", help="formats to measure (default: all)")
    parser.add_argument("--no-bad-files", action="store_true")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-formats-"))
    try:
        kinds = args.kinds.split(",")
        names = {kind: corpus(kind, work / kind / "seeds") for kind in kinds}
        speeds = read_speeds({kind: work / kind / "seeds" for kind in kinds}, args.repeats)
        base = speeds.get("text", speeds[kinds[0]])[2]
        print("| format | files read | MB | reading time per MB (x text) | recall@1 (dev, 12 answerable) | PDF page of citations |")
        print("|---|---|---|---|---|---|")
        for kind in kinds:
            files, mb, per_mb = speeds[kind]
            r1 = pages = ""
            if not args.no_recall:
                value, n, (right, total), misses = recall(work / kind / "seeds", names[kind], work / kind)
                r1 = f"{value:.3f} ({round(value * n)}/{n})" + (f"; missed: {misses}" if misses else "")
                pages = f"{right}/{total}" if total else "n/a"
            print(f"| {kind} | {files} | {mb:.3f} | {per_mb * 1000:.0f} ms ({per_mb / base:.2f}x) | {r1} | {pages} |")
        if args.no_bad_files:
            return 0
        print("\n| bad file | `rag index` skips it with | `rag add` / upload says |")
        print("|---|---|---|")
        for label, name, raw in bad_files():
            doc, reason = read_document(name, raw)
            seeds = work / "add" / "seeds"
            seeds.mkdir(parents=True, exist_ok=True)
            try:
                rag.add_document(name, raw, settings=rag.Settings(seeds_dir=seeds, index_dir=work / "add" / "index"),
                                 max_bytes=10_000_000)
                said = "added"
            except rag.RagError as exc:
                said = str(exc)
            shown = f"read as {doc.kind}" if doc is not None else reason
            print(f"| {label} | {shown} | {said} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
