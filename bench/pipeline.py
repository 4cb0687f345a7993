"""In-process latency of the user ops on the torch engine (eager), batch 1 vs 8.

Speed only: random weights of the chosen preset are fine. Prints medians and spread, appends to BENCHMARKS.md.
    python bench/pipeline.py [--preset synth64] [--steps 20] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse

import torch
from common import append_section, measure
from engines import ops_for

from diffusegae import build_model, preset
from diffusegae.engines import Pipeline
from diffusegae.engines.torch_engine import TorchEngine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="synth64")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", default="1,8")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    pipe = Pipeline(TorchEngine(build_model(preset(args.preset))))
    rows, per_image = [], {}
    for batch in [int(b) for b in args.batches.split(",")]:
        for name, fn in ops_for(pipe, batch, args.steps).items():
            r = measure(fn, args.repeats)
            per_image[(name, batch)] = r["median"] / batch
            rows.append(
                [
                    name,
                    str(batch),
                    f"{r['median'] * 1e3:.1f}",
                    f"{r['min'] * 1e3:.1f}–{r['max'] * 1e3:.1f}",
                    f"{batch / r['median']:.2f}",
                    "",
                ]
            )
            print(f"{name:20s} batch {batch}: median {r['median'] * 1e3:8.1f} ms  ({r['n']} runs)")
    first = int(args.batches.split(",")[0])
    for row in rows:
        base = per_image[(row[0], first)]
        row[-1] = f"{base / per_image[(row[0], int(row[1]))]:.2f}×"
    print(
        append_section(
            f"In-process ops, torch eager, {args.preset} (random weights)",
            ["op", "batch", "median ms", "min–max ms", "images/s", f"per-image speed-up vs batch {first}"],
            rows,
            notes=f"{args.repeats} timed runs after 1 warm-up",
        )
    )


if __name__ == "__main__":
    main()
