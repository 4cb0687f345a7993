"""How fast could a CPU engine possibly be? Each op's FLOPs against the machine's measured matmul peak.

A UNet call is almost all convolution, so its floor on a CPU is its FLOP count divided by the best
sustained fp32 rate of the cores: here the median rate of a large square matmul (torch, same threads), the
fastest dense kernel the machine runs. The floor row divides each op's FLOPs (counted by torch's
FlopCounterMode over the eager op: encoder, GAE and every UNet call of the DDIM loops) by that peak; its
"speed-up vs eager" is the most any fp32 engine could gain over eager on this machine. The engine rows show
where eager and ONNX Runtime stand against it (GFLOP/s, share of the peak). Random weights of the preset.

    python bench/roofline.py [--preset synth64] [--batches 1,8] [--steps 20] [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
from common import measure, record, save
from engines import ops_for
from torch.utils.flop_counter import FlopCounterMode

from diffusegae import build_model, preset, save_checkpoint
from diffusegae.checkpoint import load_checkpoint
from diffusegae.engines import Pipeline
from diffusegae.engines.onnxruntime_engine import OnnxRuntimeEngine
from diffusegae.engines.torch_engine import TorchEngine

MATMUL_SIZE = 2048  # large enough that the matmul runs at its sustained rate, small enough to be quick


def matmul_peak(threads: int, repeats: int = 10) -> float:
    """Median sustained fp32 GFLOP/s of an N×N matmul on `threads` threads."""
    torch.set_num_threads(threads)
    a, b = torch.randn(MATMUL_SIZE, MATMUL_SIZE), torch.randn(MATMUL_SIZE, MATMUL_SIZE)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * MATMUL_SIZE**3 / statistics.median(times) / 1e9


def count_gflop(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--preset", default="synth64")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    peak = matmul_peak(args.threads)
    print(f"fp32 matmul peak on {args.threads} threads: {peak:.1f} GFLOP/s")
    section = f"Compute ceiling, {args.preset} (random weights), {args.threads} threads"
    notes = (
        f"peak = median fp32 rate of a {MATMUL_SIZE}² torch matmul on the same threads: {peak:.0f} GFLOP/s; "
        "FLOPs counted on the eager op (torch FlopCounterMode); floor = FLOPs / peak"
    )
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("XDG_CACHE_HOME", os.path.join(tmp, "cache"))
        torch.manual_seed(0)
        save_checkpoint(build_model(preset(args.preset)), tmp)
        engines = {
            "eager": TorchEngine(load_checkpoint(tmp)),
            "ort-all": OnnxRuntimeEngine(tmp, threads=args.threads, graph_optimization="all"),
        }
        for batch in [int(b) for b in args.batches.split(",")]:
            eager_ops = ops_for(Pipeline(engines["eager"]), batch, args.steps)
            gflop = {op: count_gflop(fn) for op, fn in eager_ops.items()}
            eager: dict[str, float] = {}
            for name, engine in engines.items():
                for op, fn in ops_for(Pipeline(engine), batch, args.steps).items():
                    r = measure(fn, args.repeats if "unet" in op else max(3, args.repeats // 2))
                    eager.setdefault(op, r["median"])
                    rate = gflop[op] / r["median"]
                    records.append(_row(section, op, batch, name, r, gflop[op], rate, peak, eager[op], notes))
                    print(f"{op:10s} batch {batch} {name:8s} {r['median'] * 1e3:8.1f} ms {rate:6.1f} GFLOP/s")
            for op, flops in gflop.items():
                floor = {"median": flops / peak, "min": None, "max": None, "n": 0}
                records.append(_row(section, op, batch, "floor", floor, flops, peak, peak, eager[op], notes))
    print(save(records))


def _row(section, op, batch, engine, timing, gflop, rate, peak, eager_s, notes):
    return record(
        section,
        {"op": op, "batch": batch, "engine": engine},
        timing,
        extra={
            "GFLOP": f"{gflop:.2f}",
            "GFLOP/s": f"{rate:.0f}",
            "share of peak": f"{rate / peak:.0%}",
            "speed-up vs eager": f"{eager_s / timing['median']:.2f}×",
        },
        notes=notes,
        runs=engine != "floor",
    )


if __name__ == "__main__":
    main()
