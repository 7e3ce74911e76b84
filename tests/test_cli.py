"""``rag index`` and ``rag ask`` as a user runs them, in a temporary folder."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import SEEDS


def _rag(args, cwd, env_extra=None, timeout=600):
    env = {**os.environ, **(env_extra or {})}
    env.pop("RAG_SEEDS_DIR", None)
    env.pop("RAG_INDEX_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "rag.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.model
def test_index_then_ask_in_a_fresh_folder(tmp_path):
    shutil.copytree(SEEDS, tmp_path / "seeds")
    r = _rag(["index"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "5 added" in r.stdout
    r = _rag(["index", "--json"], tmp_path)
    report = json.loads(r.stdout)
    assert report["unchanged"] == 5 and report["chunks_embedded"] == 0
    r = _rag(["ask", "why do French trust pure-players?"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "[1] 000_7e6f9a2e3c46846f.txt" in r.stdout and "pure-players" in r.stdout
    r = _rag(["ask", "why do French trust pure-players?", "--json"], tmp_path)
    ans = json.loads(r.stdout)
    assert ans["found"] and ans["citations"][0]["source"] == "000_7e6f9a2e3c46846f.txt"


def test_user_mistakes_print_one_line_without_traceback(tmp_path):
    r = _rag(["index", "--seeds", str(tmp_path / "missing")], tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith("rag: error: ") and "Traceback" not in r.stderr
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "empty.txt").write_text("")
    r = _rag(["index"], tmp_path)
    assert r.returncode == 2 and "no readable" in r.stderr and "Traceback" not in r.stderr
    r = _rag(["ask", "   "], tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_bad_environment_setting_is_reported(tmp_path):
    r = _rag(["status"], tmp_path, {"RAG_MAX_FILE_BYTES": "lots"})
    assert r.returncode == 2 and "RAG_MAX_FILE_BYTES" in r.stderr and "'lots'" in r.stderr
