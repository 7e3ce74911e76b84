"""Milvus for the tests: settings pointing at a Milvus Lite file or a server, their clean-up, and the
standalone server (PyPI's ``milvus`` package) started on a loopback port."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import rag

TOKEN = "root:Milvus"  # the standalone server's default account (authorization on)


def forget_store(settings: rag.Settings) -> None:
    """Drop this process's readers and client of a Milvus store (a Milvus Lite file is then released)."""
    from rag.store.milvus import connect, store

    for key in [k for k in rag.api._readers if isinstance(k, tuple) and k[1] == settings.store]:
        del rag.api._readers[key]
    with store._stores_lock:
        for key in [k for k in store._stores if k[0] == settings.store]:
            del store._stores[key]
    connect.forget(settings.store)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """The server goes when the test run goes, even when it is killed (PR_SET_PDEATHSIG)."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class MilvusServerProcess:
    """PyPI's ``milvus`` standalone server (2.3.5) in ``data_dir``, on loopback ports, authorization on."""

    def __init__(self, data_dir: Path) -> None:
        from milvus import MilvusServerConfig, _initialize_data_files

        self.data_dir = Path(data_dir)
        config = MilvusServerConfig(data_dir=str(self.data_dir))
        config.set("proxy_port", free_port())
        config.set("authorization_enabled", True)
        config.resolve()  # free ports for the other roles; writes configs/milvus.yaml
        _initialize_data_files(config.base_data_dir)  # the server's binaries, unpacked once per data folder
        self.port = int(config.get("proxy_port"))
        self.web_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> None:
        env = {**os.environ, "DEPLOY_MODE": "STANDALONE", "METRICS_PORT": str(self.web_port),
               "MILVUS_RUN_DIR": str(self.data_dir / "run"),
               "LD_LIBRARY_PATH": f"{self.data_dir / 'bin'}:{os.environ.get('LD_LIBRARY_PATH', '')}"}
        log = open(self.data_dir / "logs" / "server.log", "ab")  # noqa: SIM115 - kept open by the child
        self.proc = subprocess.Popen([str(self.data_dir / "bin" / "milvus"), "run", "standalone"], cwd=self.data_dir,
                                     env=env, stdout=log, stderr=log, preexec_fn=_die_with_parent)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the Milvus server exited with {self.proc.returncode}; see {self.data_dir}/logs")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/healthz", timeout=2) as resp:
                    if b"OK" in resp.read():
                        return
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"the Milvus server did not start within {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None
