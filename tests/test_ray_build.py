"""``rag index --ray``: a Ray cluster of two nodes on loopback (Ray's own test utility starts them in
a child process) embeds the build; the stored vectors and rows equal a build made in one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import rag
from rag.store.backend import open_store
from tests.conftest import REPO
from tests.milvus_helpers import forget_store

pytest.importorskip("ray")
pytest.importorskip("pymilvus")
pytestmark = pytest.mark.slow

RAY_BUILD = """
import json, sys
import ray
from ray.cluster_utils import Cluster
from rag import indexer
from rag.model import FakeEmbedder
import rag
from rag.store.backend import open_store

settings = rag.Settings(seeds_dir=sys.argv[1], index_dir=sys.argv[2], store=sys.argv[3], model="fake-sha256-64")
open_store(settings)  # opened before Ray's nodes start in this process: opened after them, Lite was unreachable here
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1",
                                                        "include_dashboard": False})
try:
    cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    report = indexer.build_index(settings, FakeEmbedder(), ray_address=cluster.address)
    nodes = len([n for n in cluster.global_state.node_table() if n["Alive"]])
    print("RESULT " + json.dumps({"nodes": nodes, "embedded": report.chunks_embedded, "total": report.total_chunks}))
finally:
    ray.shutdown()
    cluster.shutdown()
"""


_RAY_START_FAILED = ("timed out during startup", "gcs_server_port")  # what Ray prints when its own start fails


def _busiest_processes() -> str:
    """What else ran on the machine when Ray could not start (for the failure message)."""
    ps = subprocess.run(["ps", "-eo", "pid,etime,pcpu,rss,args", "--sort=-pcpu"], capture_output=True, text=True)
    return "\nbusiest processes:\n" + "\n".join(line[:200] for line in ps.stdout.splitlines()[:15])


def test_a_two_node_ray_cluster_builds_what_one_process_builds(fake, fake_settings, tmp_path):
    local = fake_settings.with_(store=str(tmp_path / "local.db"))
    # Ray rewrites a loopback address into the machine's own; this keeps the whole cluster on 127.0.0.1
    # and gives the head's GCS two minutes to start on busy cores (30 s by default)
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_DISABLE_USAGE_STATS": "1",
           "RAY_gcs_server_port_wait_time_s": "120"}
    for attempt in range(3):
        on_ray = fake_settings.with_(store=str(tmp_path / f"ray-{attempt}.db"))  # a fresh file if tried again
        child = subprocess.run([sys.executable, "-c", textwrap.dedent(RAY_BUILD), str(on_ray.seeds_dir),
                                str(on_ray.index_dir), on_ray.store], capture_output=True, text=True, cwd=REPO,
                               env=env, timeout=600)
        # In full suite runs on these shared cores Ray's own start has failed before our code ran: its GCS
        # never published its port (once), or its raylet never registered within Ray's fixed 30 s and left
        # no log (twice, on a new machine); alone, or with its neighbour files, the test passed every time.
        # Such a start is tried again; the build's own result is checked the same either way.
        if not child.returncode or not any(sign in child.stderr for sign in _RAY_START_FAILED):
            break
        time.sleep(5)
    result = [json.loads(line[7:]) for line in child.stdout.splitlines() if line.startswith("RESULT ")]
    assert child.returncode == 0 and result, child.stdout[-2000:] + child.stderr[-3000:] + _busiest_processes()
    assert result[0]["nodes"] == 2 and result[0]["embedded"] == result[0]["total"] > 0
    try:
        rag.build_index(settings=local)
        a, b = open_store(on_ray).open_reader(), open_store(local).open_reader()
        rows_a, rows_b = list(a.iter_chunks()), list(b.iter_chunks())
        assert rows_a == rows_b
        ids = [c.id for c in rows_a]
        sentence_ids = [c.id * 1024 + j for c in rows_a for j in range(len(c.sentences))]
        assert np.array_equal(a.vectors_for(ids), b.vectors_for(ids))
        assert np.array_equal(a.sentence_vectors_for(sentence_ids), b.sentence_vectors_for(sentence_ids))
    finally:
        forget_store(on_ray)
        forget_store(local)
