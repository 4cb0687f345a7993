"""Engines compared in one run on the same weights: torch eager vs torch.compile vs ONNX Runtime.

Ops: a single UNet call and the whole edit (encode two images, invert S steps, GAE swap, decode S steps),
at batch 1 and 8. Speed only, so random weights of the preset are used (saved once, loaded by every engine).
Prints medians, spread and ratios against eager; records them in bench/results/engines.jsonl (BENCHMARKS.md).
    python bench/engines.py [--preset synth64] [--steps 20] [--repeats 5] [--threads 2] [--no-compile]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch
from common import measure, record, save

from diffusegae import build_model, preset, save_checkpoint
from diffusegae.checkpoint import load_checkpoint
from diffusegae.engines import Pipeline
from diffusegae.engines.onnxruntime_engine import OnnxRuntimeEngine
from diffusegae.engines.torch_engine import TorchEngine


def build_engines(checkpoint: str, threads: int, compile_: bool, batches: list[int]) -> dict[str, object]:
    engines: dict[str, object] = {"eager": TorchEngine(load_checkpoint(checkpoint))}
    if compile_:
        engine = TorchEngine(load_checkpoint(checkpoint), compile=True)
        start = time.perf_counter()
        engine.warmup(batches)
        print(f"torch.compile warm-up (compile time, not counted below): {time.perf_counter() - start:.0f} s")
        engines["compiled"] = engine
    for level in ("all", "basic"):
        engines[f"ort-{level}"] = OnnxRuntimeEngine(checkpoint, threads=threads, graph_optimization=level)
    return engines


def ops_for(pipe: Pipeline, batch: int, steps: int) -> dict[str, Callable[[], object]]:
    s = pipe.config.image_size
    x = np.random.default_rng(batch).uniform(-1, 1, (batch, 3, s, s)).astype(np.float32)
    z = np.random.default_rng(batch).standard_normal((batch, 512)).astype(np.float32)
    t = np.full(batch, 500, np.int64)
    if pipe.config.gae is None:  # a plain Diff-AE: the edit's work without the GAE's swap
        edit = lambda: pipe.reconstruct(x, steps)  # noqa: E731
    else:
        edit = lambda: pipe.edit(x, x[:1], swap=["background"], steps=steps)  # noqa: E731
    return {"unet call": lambda: pipe.engine.eps(x, t, z), f"edit S={steps}": edit}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="synth64")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (slow to compile)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("XDG_CACHE_HOME", os.path.join(tmp, "cache"))
        torch.manual_seed(0)
        save_checkpoint(build_model(preset(args.preset)), tmp)
        engines = build_engines(tmp, args.threads, not args.no_compile, batches)
        results: dict[tuple[str, int, str], dict[str, float]] = {}
        for batch in batches:
            for engine_name, engine in engines.items():
                for op, fn in ops_for(Pipeline(engine), batch, args.steps).items():
                    r = measure(fn, args.repeats if "unet" in op else max(3, args.repeats // 2))
                    results[(op, batch, engine_name)] = r
                    print(f"{op:10s} batch {batch} {engine_name:9s} median {r['median'] * 1e3:9.1f} ms")
    section = f"Engines, {args.preset} (random weights), {args.threads} threads"
    notes = "same weights for every engine; 1 untimed warm-up per cell; torch.compile time excluded"
    records = [
        record(
            section,
            {"op": op, "batch": batch, "engine": engine_name},
            r,
            extra={
                "images/s": f"{batch / r['median']:.2f}",
                "speed-up vs eager": f"{results[(op, batch, 'eager')]['median'] / r['median']:.2f}×",
            },
            notes=notes,
        )
        for (op, batch, engine_name), r in results.items()
    ]
    print(save(records))


if __name__ == "__main__":
    main()
