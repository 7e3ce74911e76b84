"""Embedding on a Ray cluster (``rag index --ray ADDRESS``; the optional ``ray`` extra).

One actor per CPU the cluster offers loads the model once and embeds the batches of texts it is
sent; batches go out as actors free up, at most two per actor in flight, and come back in the order
they were sent, so the build writes each batch to the store as soon as it and those before it are
done (and a build interrupted midway resumes from what the store holds). The driver ships its own
copy of the ``rag`` package to the workers (``runtime_env``'s ``py_modules``), so every node
embeds with the code that plans the build; the nodes need the project's dependencies and the model
cache (or the network to build it) as the driver does.

Ray Core actors rather than Ray Data: the same spreading and streaming, without Ray Data's
pyarrow/pandas stack on every node."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .fake import FakeEmbedder

IN_FLIGHT_PER_ACTOR = 2


class _Worker:
    """A Ray actor: the model loaded once, then batches of texts embedded (longest first, as a local build)."""

    def __init__(self, source) -> None:
        if isinstance(source, str):
            from .registry import get_embedder

            self.embedder = get_embedder(source)
        else:
            self.embedder = source

    def embed(self, texts: list[str]) -> np.ndarray:
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        vectors = np.zeros((len(texts), self.embedder.dim), dtype=np.float32)
        if texts:
            vectors[order] = self.embedder.embed_documents([texts[i] for i in order])
        return vectors


def worker_source(model: str, embedder):
    """What a worker loads: the model by its name; a test double (plain data) travels as it is."""
    return embedder if isinstance(embedder, FakeEmbedder) else model


def embed_on_ray(address: str, jobs: Iterable[list[str]], model: str, embedder) -> Iterator[np.ndarray]:
    """The vectors of each list of texts in ``jobs``, in order, embedded on the cluster at ``address``."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray: pip install 'rag-seeds[ray]'") from None
    import rag

    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING,
                 runtime_env={"py_modules": [str(Path(rag.__file__).parent)]})
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"cannot join the Ray cluster at {address}: {str(exc).splitlines()[0][:200]}") from None
    try:
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        actor = ray.remote(num_cpus=1)(_Worker)
        source = worker_source(model, embedder)
        workers = [actor.remote(source) for _ in range(cpus)]
        pending: deque = deque()
        job_iter = iter(jobs)
        turn = 0
        while True:
            while len(pending) < IN_FLIGHT_PER_ACTOR * len(workers):
                texts = next(job_iter, None)
                if texts is None:
                    break
                pending.append(workers[turn % len(workers)].embed.remote(texts))
                turn += 1
            if not pending:
                return
            yield ray.get(pending.popleft())
    finally:
        ray.shutdown()
