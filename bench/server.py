"""Server overhead: `edit` through the Triton server (gRPC client → ensemble) vs the in-process pipeline.

Same checkpoint, same engine underneath (ONNX Runtime, the threads the server's models use), same inputs,
runs interleaved in one process. Also checks the two outputs are identical.
    python bench/server.py [--checkpoint checkpoints/tiny32] [--steps 20] [--repeats 9] [--batch 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before any OpenMP runtime loads

import numpy as np
from common import measure, record, save

from diffusegae.checkpoint import read_config
from diffusegae.client import Client
from diffusegae.data import AttributeDataset
from diffusegae.engines import Pipeline
from diffusegae.engines.onnxruntime_engine import load_onnxruntime_engine
from diffusegae.images import to_model, to_uint8
from diffusegae.paths import SHIPPED_CHECKPOINT
from diffusegae.server.launcher import TritonServer, free_port
from diffusegae.server.repository import build_repository


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads, server and in-process")
    args = parser.parse_args()
    config = read_config(args.checkpoint)
    ds = AttributeDataset(resolution=config.image_size, seed=0)
    test = ds.split("test")
    source = ds.batch(test[: args.batch], seeds=list(range(args.batch)))
    reference = ds.batch(test[-1:], seeds=[99])
    swap = [config.gae.attribute_names[1]]
    with tempfile.TemporaryDirectory() as tmp:
        repo = build_repository(args.checkpoint, Path(tmp) / "repo", threads=args.threads)
        ports = {name: free_port() for name in ("grpc_port", "http_port", "metrics_port")}
        with TritonServer(repo, **ports) as server:
            client = Client(server.url)
            pipe = Pipeline(load_onnxruntime_engine(args.checkpoint, threads=args.threads))

            def served() -> np.ndarray:
                return client.edit(source, reference, swap=swap, steps=args.steps)

            def in_process() -> np.ndarray:
                return to_uint8(pipe.edit(to_model(source), to_model(reference), swap=swap, steps=args.steps))

            identical = np.array_equal(served(), in_process())
            results = {"in-process pipeline": measure(in_process, args.repeats)}
            results["server (gRPC → ensemble)"] = measure(served, args.repeats)
    base = results["in-process pipeline"]["median"]
    section = f"Server overhead: edit, {config.name}, batch {args.batch}, S={args.steps}"
    notes = f"onnxruntime with {args.threads} thread(s) in both; outputs identical: {identical}"
    records = [
        record(
            section,
            {"path": name},
            r,
            extra={
                "vs in-process": f"{r['median'] / base:.2f}×",
                "overhead ms": f"{(r['median'] - base) * 1e3:+.1f}",
            },
            notes=notes,
        )
        for name, r in results.items()
    ]
    print(save(records))


if __name__ == "__main__":
    main()
