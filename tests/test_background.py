"""Issue 20: indexing in a separate, lowest-priority process (``rag.background`` and ``rag.worker``), and
the limit on what one added document may cost per MB."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import rag
from rag import background, indexer
from rag.documents import cost
from tests.conftest import SEEDS
from tests.robust_helpers import child_env, content_view, index_snapshot

QUESTIONS = ["pourquoi les Français font-ils confiance aux pure-players ?", "service client Amazon"]
TATIN = "# La tarte Tatin\n\nLa tarte Tatin fut inventée par les sœurs Tatin, à Lamotte-Beuvron, en Sologne.\n"


def test_a_build_in_a_child_process_equals_one_in_this_process(fake, fake_settings, tmp_path):
    progress: list[tuple[int, int]] = []
    report = rag.build_index(settings=fake_settings, separate_process=True, on_progress=lambda d, t: progress.append((d, t)))
    assert report.added == 5 and report.total_chunks > 0 and report.files
    assert progress and progress[-1][0] == progress[-1][1] and progress == sorted(progress)
    here = fake_settings.with_(index_dir=tmp_path / "index-here")
    assert rag.build_index(settings=here).total_chunks == report.total_chunks
    child_view = content_view(index_snapshot(fake_settings.index_dir, QUESTIONS, fake))
    assert child_view == content_view(index_snapshot(here.index_dir, QUESTIONS, fake))


def test_the_child_reports_the_same_error_class_and_message(fake_settings):
    for seed in fake_settings.seeds_dir.iterdir():
        seed.write_bytes(b"")
    with pytest.raises(rag.EmptyCorpusError, match="no readable"):
        rag.build_index(settings=fake_settings, separate_process=True)


def test_add_document_in_a_child_process_saves_and_indexes_it(fake_settings):
    rag.build_index(settings=fake_settings)
    source, report = rag.add_document("tatin.md", TATIN.encode(), settings=fake_settings, separate_process=True)
    assert source == "tatin.md" and report.added == 1
    assert (fake_settings.seeds_dir / "tatin.md").read_text(encoding="utf-8") == TATIN
    assert rag.search("tarte Tatin Sologne", k=1, settings=fake_settings)[0].source == "tatin.md"
    # cheap refusals happen before any process starts; the rest come back from the child
    with pytest.raises(rag.InvalidDocumentError, match="already exists"):
        rag.add_document("tatin.md", TATIN.encode(), settings=fake_settings, separate_process=True)


def test_a_document_costing_too_much_per_mb_is_refused_and_nothing_changes(fake_settings):
    rag.build_index(settings=fake_settings)
    seeds_before = sorted(p.name for p in fake_settings.seeds_dir.iterdir())
    current = (fake_settings.index_dir / "CURRENT").read_text()
    repeated = b"a " * 100_000  # one word repeated: to the fake, a token every 2 bytes, no sentence end
    for separate in (False, True):
        with pytest.raises(rag.InvalidDocumentError, match=r"passages \([\d,]+ per MB\).*repeated or generated"):
            rag.add_document("mots.txt", repeated, settings=fake_settings, separate_process=separate)
    assert sorted(p.name for p in fake_settings.seeds_dir.iterdir()) == seeds_before
    assert (fake_settings.index_dir / "CURRENT").read_text() == current


def test_ordinary_text_stays_well_under_the_limit(fake, seeds_copy):
    for path in sorted(seeds_copy.iterdir()):
        raw = path.read_bytes()
        doc, _ = rag.documents.text.parse_seed_bytes(path.name, raw)
        chunks = indexer.check_document_cost(doc, len(raw), rag.Settings(model=fake.model_id), fake)
        assert chunks <= cost.MAX_CHUNKS_PER_MB * max(len(raw), cost.COST_FLOOR_BYTES) / 1e6 / 2


@pytest.mark.model
def test_with_the_real_model_repeated_words_are_refused_and_the_seeds_are_not(real_embedder):
    settings = rag.Settings()
    with pytest.raises(rag.InvalidDocumentError, match="per MB"):
        doc, _ = rag.documents.text.parse_seed_bytes("mots.txt", b"mot " * 50_000)
        indexer.check_document_cost(doc, 200_000, settings, real_embedder)
    for path in sorted(SEEDS.iterdir()):
        raw = path.read_bytes()
        doc, _ = rag.documents.text.parse_seed_bytes(path.name, raw)
        assert indexer.check_document_cost(doc, len(raw), settings, real_embedder) > 0


def test_a_child_that_dies_is_a_rag_error_and_the_index_is_untouched(fake_settings, monkeypatch):
    rag.build_index(settings=fake_settings)
    current = (fake_settings.index_dir / "CURRENT").read_text()
    # a request the worker cannot even parse: it dies with a traceback on its standard error
    with pytest.raises(rag.RagError, match=r"stopped \(exit code 1\) before it finished; nothing was changed"):
        background.run({"action": "build_index"})
    assert (fake_settings.index_dir / "CURRENT").read_text() == current


def test_the_worker_runs_at_the_lowest_priority_and_keeps_stdout_for_the_protocol():
    # every thread of the child, those numpy starts on import included, runs at niceness 19
    code = "import os, rag; print(sorted({os.getpriority(os.PRIO_PROCESS, int(t)) for t in os.listdir('/proc/self/task')}))"
    command = [*background.low_priority_prefix(), sys.executable, "-c", code]
    result = subprocess.run(command, capture_output=True, text=True, env=child_env(), timeout=60)
    assert result.stdout.strip() == "[19]", result.stderr
    # then the worker lowers itself to SCHED_IDLE (niceness 19 without `nice`), and the threads it starts
    # (the model's) inherit both
    code = (
        "import os, threading\n"
        "from rag.worker import lower_priority\n"
        "print(lower_priority())\n"
        "def thread(): print(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), "
        "os.sched_getscheduler(0) == os.SCHED_IDLE)\n"
        "t = threading.Thread(target=thread)\n"
        "t.start(); t.join()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env(), timeout=60)
    assert result.stdout.split() == ["idle", "19", "True"], result.stderr
    request = '{"action": "nothing", "settings": {}}'
    result = subprocess.run(
        [sys.executable, "-m", "rag.worker"], input=request, capture_output=True, text=True, env=child_env(), timeout=60
    )
    assert result.returncode == 2
    assert result.stdout.strip() == '{"error": {"type": "RagError", "message": "unknown request \'nothing\'"}}'


def test_settings_and_reports_cross_the_process_boundary_intact(fake_settings):
    assert background.settings_from_json(background.settings_to_json(fake_settings)) == fake_settings.with_(
        seeds_dir=fake_settings.seeds_dir.absolute(), index_dir=fake_settings.index_dir.absolute()
    )
    relative = rag.Settings(seeds_dir="seeds")
    assert background.settings_to_json(relative)["seeds_dir"] == os.path.join(os.getcwd(), "seeds")
    report = rag.build_index(settings=fake_settings)
    from dataclasses import asdict

    assert background.report_from_json(asdict(report)) == report
