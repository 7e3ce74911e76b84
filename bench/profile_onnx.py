"""Where the ONNX runtimes spend their time, by operator (onnxruntime's profiler).

    .venv/bin/python -m bench.profile_onnx [--quant int8 fp32] [--repeats 2]

Runs the seed chunks the indexer embeds (256-token passages) through ``OnnxEmbedder``'s session
with profiling on and prints each operator's share of the kernel time. This is what bounds the
int8 speed-up: the quantised matrix products run ~2.2x faster than fp32 on this AVX2 CPU, while
layer norms, GELU and the attention core (softmax(QK^T)V) stay in fp32."""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path

from .common import REPO


def profile(quant: str, repeats: int) -> dict[str, float]:
    """Kernel milliseconds by operator type for the seed chunks' batches."""
    import onnxruntime as ort

    import rag
    from rag import fast_embed

    emb = fast_embed.OnnxEmbedder(quant=quant)
    settings = rag.Settings(seeds_dir=REPO / "seeds")
    from rag.chunk import chunk_document
    from rag.ingest import discover, read_seed

    texts = []
    for path in discover(settings.seeds_dir, settings.extensions)[0]:
        doc = read_seed(path, settings.max_file_bytes)[0]
        chunks = chunk_document(doc, chunk_tokens=settings.chunk_tokens, overlap_tokens=settings.chunk_overlap_tokens,
                                count_tokens=emb.count_tokens, first_id=0)
        texts += [emb.prompts.get("document", "") + c.text for c in chunks]
    batches = list(emb._batches(texts, emb.batch_size))
    with tempfile.TemporaryDirectory(prefix="rag-prof-") as tmp:
        opts = ort.SessionOptions()
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / quant)
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(emb.onnx_path), opts, providers=["CPUExecutionProvider"])
        for _ in range(repeats):
            for _, ids, mask in batches:
                session.run(None, {"input_ids": ids, "attention_mask": mask})
        events = json.loads(Path(session.end_profiling()).read_text())
    by_op: collections.Counter = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            by_op[e["args"]["op_name"]] += e["dur"] / 1000
    return dict(by_op.most_common())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quant", nargs="+", default=["int8", "fp32"], choices=["int8", "fp32"])
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)
    for quant in args.quant:
        ms = profile(quant, args.repeats)
        total = sum(ms.values())
        print(f"onnx-{quant}: {total:,.0f} ms of kernel time")
        for op, t in ms.items():
            if t / total >= 0.001:
                print(f"  {op:28s} {t:9,.0f} ms  {t / total:6.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
