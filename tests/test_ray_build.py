"""``rag index --ray``: a Ray cluster of two nodes on loopback (Ray's own test utility starts them in
a child process) embeds the build; the stored vectors and rows equal a build made in one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

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


def test_a_two_node_ray_cluster_builds_what_one_process_builds(fake, fake_settings, tmp_path):
    local = fake_settings.with_(store=str(tmp_path / "local.db"))
    # Ray rewrites a loopback address into the machine's own; this keeps the whole cluster on 127.0.0.1
    # and gives the head's GCS two minutes to start on busy cores (30 s by default)
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_DISABLE_USAGE_STATS": "1",
           "RAY_gcs_server_port_wait_time_s": "120"}
    for attempt in range(2):
        on_ray = fake_settings.with_(store=str(tmp_path / f"ray-{attempt}.db"))  # a fresh file if tried again
        child = subprocess.run([sys.executable, "-c", textwrap.dedent(RAY_BUILD), str(on_ray.seeds_dir),
                                str(on_ray.index_dir), on_ray.store], capture_output=True, text=True, cwd=REPO,
                               env=env, timeout=600)
        # Ray's GCS once left no log and never published its port within the two minutes in a full suite
        # run on these shared cores (the test alone, or with its neighbours, passed): its start is tried
        # once more; the build's own result is checked the same either way
        if not (child.returncode and "gcs_server_port" in child.stderr):
            break
    result = [json.loads(line[7:]) for line in child.stdout.splitlines() if line.startswith("RESULT ")]
    assert child.returncode == 0 and result, child.stdout[-2000:] + child.stderr[-3000:]
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
