"""In-process latency of the user ops on the torch engine (eager), batch 1 vs 8.

Speed only: random weights of the chosen preset are fine. Prints medians and spread, records them in
bench/results/pipeline.jsonl (BENCHMARKS.md).
    python bench/pipeline.py [--preset synth64] [--steps 20] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse

import torch
from common import measure, record, save
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
    batches = [int(b) for b in args.batches.split(",")]
    timings = {}
    for batch in batches:
        for name, fn in ops_for(pipe, batch, args.steps).items():
            timings[(name, batch)] = r = measure(fn, args.repeats)
            print(f"{name:20s} batch {batch}: median {r['median'] * 1e3:8.1f} ms  ({r['n']} runs)")
    first = batches[0]
    records = []
    for (name, batch), r in timings.items():
        per_image = timings[(name, first)]["median"] / first / (r["median"] / batch)
        extra = {
            "images/s": f"{batch / r['median']:.2f}",
            f"per-image speed-up vs batch {first}": f"{per_image:.2f}×",
        }
        records.append(
            record(
                f"In-process ops, torch eager, {args.preset} (random weights)",
                {"op": name, "batch": batch},
                r,
                extra=extra,
                notes=f"{args.repeats} timed runs after 1 warm-up",
                runs=False,
            )
        )
    print(save(records))


if __name__ == "__main__":
    main()
