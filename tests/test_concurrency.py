"""Issue 5, concurrency: many readers at once, readers while a rebuild swaps the index in, a process
that notices a newer build, and the lock that keeps two rebuilds from running at once."""

from __future__ import annotations

import random
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from filelock import FileLock

import rag
from rag import indexer
from rag.store import CURRENT, current_version
from tests.conftest import SEEDS
from tests.robust_helpers import answer_view, content_view, index_snapshot, run_child, start_child, write_corpus

QUESTIONS = [
    "why do French trust pure-players?",
    "Pourquoi les Français font-ils confiance aux pure-players ?",
    "service client Amazon",
    "Qui a écrit la biographie d'Amazon ?",
    "fidélité des clients de la Fnac",
    "What is the boiling point of mercury?",
    "motclef9x2 pratique commerciale",
    "livraison gratuite et délais",
]
THREADS = 50


def _settings(fake, base):
    return rag.Settings(seeds_dir=base / "seeds", index_dir=base / "index", model=fake.model_id)


@pytest.fixture
def corpus(fake, tmp_path):
    settings = _settings(fake, tmp_path)
    shutil.copytree(SEEDS, settings.seeds_dir)
    write_corpus(settings.seeds_dir, 4, seed=9)
    rag.build_index(settings=settings)
    return settings


def _ask_in_threads(settings, rounds: int, until=None, questions=None) -> tuple[list[tuple[str, tuple]], set[str]]:
    """THREADS threads, each asking every question ``rounds`` times in its own order (or until
    ``until`` is set); returns (question, answer) pairs and the index versions the answers came from."""
    start = threading.Barrier(THREADS)
    key = settings.index_dir.resolve()
    questions = questions or QUESTIONS

    def worker(n):
        rng = random.Random(n)
        out, versions = [], set()
        start.wait()
        done = 0
        while done < rounds or (until is not None and not until.is_set()):
            for q in rng.sample(questions, len(questions)):
                out.append((q, answer_view(rag.answer(q, settings=settings))))
                versions.add(rag.api._readers[key].version)
            done += 1
        return out, versions

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = list(pool.map(worker, range(THREADS)))
    return [pair for out, _ in results for pair in out], set().union(*(v for _, v in results))


def test_50_threads_get_exactly_the_answers_of_sequential_calls(corpus, monkeypatch):
    # The shipped confidence model is fitted on the real model's signals; the fake embedder's cosines are
    # on another scale and it would decline everything. A model that answers when the best sentence's
    # cosine passes 0.5 gives these questions both outcomes, which is what this test needs to compare.
    from rag.query import confidence

    split = confidence.ConfidenceModel(("best",), (0.5,), (0.05,), (1.0,), 0.0, 0.5)
    monkeypatch.setattr(confidence, "model", lambda: split)
    rag.api._readers.clear()
    sequential = {q: answer_view(rag.answer(q, settings=corpus)) for q in QUESTIONS}
    assert len(set(sequential.values())) == len(QUESTIONS)  # the questions really differ
    assert any(v[1] for v in sequential.values()) and not all(v[1] for v in sequential.values())
    rag.api._readers.clear()  # the threads race to load the index, too
    pairs, versions = _ask_in_threads(corpus, rounds=2)
    assert len(pairs) == THREADS * 2 * len(QUESTIONS) and len(versions) == 1
    wrong = [(q, a) for q, a in pairs if a != sequential[q]]
    assert wrong == []


def test_answers_stay_identical_while_rebuilds_swap_the_same_content_in(corpus):
    sequential = {q: answer_view(rag.answer(q, settings=corpus)) for q in QUESTIONS}
    first = current_version(corpus.index_dir).name
    stop = threading.Event()
    swapped: list[str] = []

    def rebuild():
        try:
            for _ in range(3):
                rag.build_index(settings=corpus, full=True)  # a new build, with the same content
                swapped.append(current_version(corpus.index_dir).name)
        finally:
            stop.set()

    rebuilder = threading.Thread(target=rebuild)
    rebuilder.start()
    pairs, versions = _ask_in_threads(corpus, rounds=1, until=stop, questions=QUESTIONS[::2])
    rebuilder.join()
    assert len(swapped) == 3 and len(set(swapped) | {first}) == 4
    assert len(versions) >= 3  # the askers really moved from build to build
    assert [(q, a) for q, a in pairs if a != sequential[q]] == []
    assert rag.api._readers[corpus.index_dir.resolve()].version == swapped[-1]


def test_no_request_ever_sees_a_mix_of_two_builds(fake, corpus, tmp_path):
    """The content alternates between two seed sets X and Y; every answer is X's or Y's."""
    extra = tmp_path / "extra"
    texts = write_corpus(extra, 2, seed=10)
    question = "motclef10x0 pratique commerciale"
    QUESTIONS.append(question)
    try:
        seeds = corpus.seeds_dir
        expected = {}
        for label in ("Y", "X"):
            if label == "Y":
                for name in texts:
                    shutil.copy(extra / name, seeds / name)
            else:
                for name in texts:
                    (seeds / name).unlink()
            rag.build_index(settings=corpus, full=True)
            expected[label] = {q: answer_view(rag.answer(q, settings=corpus)) for q in QUESTIONS}
        assert expected["X"][question] != expected["Y"][question]
        stop = threading.Event()

        def alternate():
            try:
                for i in range(4):
                    for name in texts:
                        if i % 2 == 0:
                            shutil.copy(extra / name, seeds / name)
                        else:
                            (seeds / name).unlink()
                    rag.build_index(settings=corpus, full=True)
            finally:
                stop.set()

        rebuilder = threading.Thread(target=alternate)
        rebuilder.start()
        pairs, _ = _ask_in_threads(corpus, rounds=1, until=stop, questions=[question, *QUESTIONS[1:4]])
        rebuilder.join()
        seen = {"X": 0, "Y": 0}
        for q, a in pairs:
            label = next((x for x in ("X", "Y") if a == expected[x][q]), None)
            assert label is not None, f"an answer to {q!r} is neither X's nor Y's"
            if expected["X"][q] != expected["Y"][q]:
                seen[label] += 1
        assert seen["X"] > 0 and seen["Y"] > 0
    finally:
        QUESTIONS.remove(question)


def test_a_process_that_loaded_the_index_switches_to_a_newer_build(fake, corpus):
    question = "Que font les zorglubs quintessentiels dans la boutique ?"
    before = rag.answer(question, settings=corpus)
    old_version = rag.api._readers[corpus.index_dir.resolve()].version
    assert all(h.source != "nouveaux/zorglub.txt" for h in rag.search(question, k=50, settings=corpus))
    # another process adds a seed and rebuilds while this one keeps its index loaded
    child = run_child(
        "(Path(sys.argv[1]) / 'nouveaux').mkdir()\n"
        "(Path(sys.argv[1]) / 'nouveaux' / 'zorglub.txt').write_text("
        "'Que font les zorglubs quintessentiels dans la boutique ? Ils la rangent chaque matin.')\n"
        "r = rag.build_index(settings=fake_settings(sys.argv[1], sys.argv[2]))\n"
        "print(r.added, r.chunks_embedded)\n",
        str(corpus.seeds_dir), str(corpus.index_dir),
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == ["1", "1"]
    after = rag.answer(question, settings=corpus)
    new_version = rag.api._readers[corpus.index_dir.resolve()].version
    assert new_version != old_version and new_version == current_version(corpus.index_dir).name
    # the passage the answer shows first (cited, or nearest when the fitted confidence, which means
    # nothing over the fake embedder's vectors, declines) is the new seed's
    shown = after.citations if after.found else after.nearest
    assert after != before and shown[0].source == "nouveaux/zorglub.txt"
    assert rag.search(question, k=1, settings=corpus)[0].source == "nouveaux/zorglub.txt"


# ----------------------------------------------------------------------------- the rebuild lock


def test_a_second_rebuild_fails_at_once_with_no_wait(corpus):
    before = current_version(corpus.index_dir)
    (corpus.seeds_dir / "ajout.txt").write_text("Un ajout sur le service client de la Fnac.")
    holder = FileLock(str(corpus.index_dir / indexer.LOCK_FILE))
    with holder:
        started = time.perf_counter()
        with pytest.raises(rag.IndexBusyError, match=r"another rebuild of .* is running; try again when it ends"):
            rag.build_index(settings=corpus, wait=False)
        assert time.perf_counter() - started < 2
    assert current_version(corpus.index_dir) == before
    assert rag.build_index(settings=corpus, wait=False).added == 1  # free again


def test_a_second_rebuild_waits_for_the_first(corpus, caplog):
    (corpus.seeds_dir / "ajout.txt").write_text("Un ajout sur le service client de la Fnac.")
    holder = FileLock(str(corpus.index_dir / indexer.LOCK_FILE))
    holder.acquire()
    result = {}
    waiter = threading.Thread(target=lambda: result.update(report=rag.build_index(settings=corpus)))
    try:
        waiter.start()
        time.sleep(1.0)
        assert waiter.is_alive() and "report" not in result  # still waiting
        assert "Another rebuild of" in caplog.text and "waiting for it to end" in caplog.text
    finally:
        holder.release()
    waiter.join(60)
    assert not waiter.is_alive() and result["report"].added == 1


def test_two_rebuilds_started_together_run_one_after_the_other(fake, corpus, tmp_path):
    write_corpus(corpus.seeds_dir / "lot", 8, seed=12)
    spans: list[tuple[str, float]] = []

    def hook(point):
        if point in ("locked", "garbage-collected"):
            spans.append((point, time.perf_counter()))
        if point == "embedded":
            time.sleep(0.5)  # make the first build last, so that the second must wait for it

    go = threading.Barrier(2)

    def build(_):
        go.wait()
        return indexer.build_index(corpus, fake, crash_hook=hook)

    with ThreadPoolExecutor(max_workers=2) as pool:
        reports = list(pool.map(build, range(2)))
    assert sorted(r.added for r in reports) == [0, 8]  # the second found nothing left to do
    points = [p for p, _ in sorted(spans, key=lambda s: s[1])]
    assert points[:3] == ["locked", "garbage-collected", "locked"]  # never two inside the lock at once
    full = tmp_path / "full"
    shutil.copytree(corpus.seeds_dir, full / "seeds")
    rag.build_index(settings=_settings(fake, full))
    qs = QUESTIONS[:3]
    assert content_view(index_snapshot(corpus.index_dir, qs, fake)) == content_view(index_snapshot(full / "index", qs, fake))


SLOW_BUILD = """
from rag import indexer
settings = fake_settings(sys.argv[1], sys.argv[2])
def hook(point):
    if point == "locked":
        print("LOCKED", flush=True)
        time.sleep(float(sys.argv[3]))
r = indexer.build_index(settings, FAKE, crash_hook=hook)
print("DONE", r.added, flush=True)
"""

CLI = """
from rag.cli import main
sys.exit(main(["--model", FAKE.model_id, "index", *sys.argv[1:]]))
"""


def test_a_rebuild_in_another_process_holds_the_lock(fake, corpus):
    (corpus.seeds_dir / "ajout.txt").write_text("Un ajout sur le service client de la Fnac.")
    other = start_child(SLOW_BUILD, str(corpus.seeds_dir), str(corpus.index_dir), "2.0")
    try:
        assert other.stdout.readline().strip() == "LOCKED"
        with pytest.raises(rag.IndexBusyError):
            rag.build_index(settings=corpus, wait=False)
        started = time.perf_counter()
        report = rag.build_index(settings=corpus)  # waits for the other process, then has nothing to do
        assert time.perf_counter() - started > 0.5
        assert (report.added, report.chunks_embedded) == (0, 0)
        out, err = other.communicate(timeout=60)
        assert other.returncode == 0 and out.strip() == "DONE 1", err
    finally:
        if other.poll() is None:
            other.kill()


def test_cli_no_wait_exits_2_with_one_clear_line_and_waits_without_it(corpus):
    args = ["--seeds", str(corpus.seeds_dir), "--index", str(corpus.index_dir)]
    (corpus.seeds_dir / "ajout.txt").write_text("Un ajout sur le service client de la Fnac.")
    before = (corpus.index_dir / CURRENT).read_text()
    holder = FileLock(str(corpus.index_dir / indexer.LOCK_FILE))
    holder.acquire()
    waiting = None
    try:
        r = run_child(CLI, *args, "--no-wait")
        assert r.returncode == 2 and r.stdout == ""
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("rag: error: another rebuild of ")
        assert "--no-wait" in lines[0] and "Traceback" not in r.stderr
        assert (corpus.index_dir / CURRENT).read_text() == before
        waiting = start_child(CLI, *args)
        err_lines: list[str] = []
        said_so = threading.Event()

        def read_stderr():
            for line in waiting.stderr:
                err_lines.append(line)
                if "waiting for it to end" in line:
                    said_so.set()

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        assert said_so.wait(120), "".join(err_lines)  # it says that it waits for the lock...
        time.sleep(0.5)
        assert waiting.poll() is None  # ...and does
    finally:
        holder.release()
    out = waiting.stdout.read()
    assert waiting.wait(120) == 0, "".join(err_lines)
    reader.join(10)
    assert "1 added" in out and (corpus.index_dir / CURRENT).read_text() != before
