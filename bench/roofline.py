"""How fast could a CPU engine possibly be? Each op's FLOPs against the machine's measured matmul peak.

A UNet call is almost all convolution, so its floor on a CPU is its FLOP count divided by the best
sustained fp32 rate of the cores: here the faster of two dense kernels (torch, same threads), a large square
matmul (MKL, which on some AMD hosts stays on AVX2) and a large 3×3 convolution (oneDNN, which dispatches
on the ISA: 2.8× the matmul on the AVX-512 EPYC of 2026-12-03). The floor row divides each op's FLOPs
(counted by torch's FlopCounterMode over the eager op: encoder, GAE and every UNet call of the DDIM loops)
by that peak; its "speed-up vs eager" is the most any fp32 engine could gain over eager on this machine.
The engine rows show where eager and ONNX Runtime stand against it (GFLOP/s, share of the peak). Random
weights of the preset.

    python bench/roofline.py [--preset synth64] [--batches 1,8] [--steps 20] [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import tempfile

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
# batch, channels, height, width: a deep UNet level's 3×3 convolution at batch 8
CONV_SHAPE = (8, 256, 32, 32)


def _median_rate(fn, gflop: float, repeats: int) -> float:
    return gflop / measure(fn, repeats, warmup=3)["median"]


@torch.no_grad()
def dense_peak(threads: int, repeats: int = 10) -> dict[str, float]:
    """Median sustained fp32 GFLOP/s of an N×N matmul and of a 3×3 convolution on `threads` threads."""
    torch.set_num_threads(threads)
    a, b = torch.randn(MATMUL_SIZE, MATMUL_SIZE), torch.randn(MATMUL_SIZE, MATMUL_SIZE)
    n, c, h, w = CONV_SHAPE
    x, conv = torch.randn(CONV_SHAPE), torch.nn.Conv2d(c, c, 3, padding=1)
    return {
        "matmul": _median_rate(lambda: a @ b, 2 * MATMUL_SIZE**3 / 1e9, repeats),
        "conv": _median_rate(lambda: conv(x), 2 * n * c * c * 9 * h * w / 1e9, repeats),
    }


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
    # A shared host's rate drifts over a run (conv 194–481 GFLOP/s within minutes on 2026-12-03), so the
    # peak is measured again after every op and the best of all is the ceiling each row is read against.
    rates = dense_peak(args.threads)
    measured = []  # (op, batch, engine, timing, gflop, eager seconds)
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
                    measured.append((op, batch, name, r, gflop[op], eager[op]))
                    rate = gflop[op] / r["median"]
                    print(f"{op:10s} batch {batch} {name:8s} {r['median'] * 1e3:8.1f} ms {rate:6.1f} GFLOP/s")
                    rates = {k: max(v, rates[k]) for k, v in dense_peak(args.threads).items()}
            for op, flops in gflop.items():
                measured.append((op, batch, "floor", None, flops, eager[op]))
    peak = max(rates.values())
    print(f"best fp32 GFLOP/s: matmul {rates['matmul']:.1f}, conv {rates['conv']:.1f}")
    section = f"Compute ceiling, {args.preset} (random weights), {args.threads} threads"
    notes = (
        f"peak = the faster fp32 rate on the same threads of a {MATMUL_SIZE}² torch matmul "
        f"({rates['matmul']:.0f} GFLOP/s) and a 3×3 convolution on {list(CONV_SHAPE)} ({rates['conv']:.0f}), "
        "each the best of its medians measured after every op; FLOPs counted on the eager op (torch "
        "FlopCounterMode); floor = FLOPs / peak"
    )
    records = []
    for op, batch, name, r, flops, eager_s in measured:
        if r is None:  # the floor row
            r = {"median": flops / peak, "min": None, "max": None, "n": 0}
        records.append(_row(section, op, batch, name, r, flops, flops / r["median"], peak, eager_s, notes))
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
