"""DDIM vs DPM-Solver++(2M) on a trained checkpoint: quality per step count, and the edit's time at equal
quality, in one run.

Quality, on held-out images (their own z_sem):
  - reconstruction: invert then decode with the same sampler and S, PSNR / SSIM against the image;
  - solver error: decode one seeded x_T with S steps, PSNR / SSIM against DDIM at S = 250 of the same x_T.
Speed: pipe.edit of a batch (swap background), DPM-Solver++ at S = 10 and DDIM at S = 20, interleaved
repeats, medians. Records go to bench/results/samplers.jsonl (BENCHMARKS.md).
    python bench/samplers.py [--checkpoint checkpoints/tiny32] [--images 32] [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from common import record, save

from diffusegae import load_pipeline
from diffusegae.data import AttributeDataset
from diffusegae.eval.metrics import image_metrics
from diffusegae.eval.suite import checkpoint_dataset_seed, held_out_sample
from diffusegae.images import to_model
from diffusegae.paths import SHIPPED_CHECKPOINT

STEPS = (5, 10, 20, 50)
REFERENCE_STEPS = 250


def _quality(reference: np.ndarray, output: np.ndarray) -> dict[str, float]:
    m = image_metrics(reference, output)
    return {"psnr": round(m["psnr"]["mean"], 2), "ssim": round(m["ssim"]["mean"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT))
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--edit-batch", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipe = load_pipeline(args.checkpoint, engine="torch")
    dataset = AttributeDataset(pipe.config.image_size, checkpoint_dataset_seed(args.checkpoint) or 0)
    x0 = to_model(held_out_sample(dataset, args.images, 0)[1])
    z = pipe.encode(x0)
    x_T = pipe.noise(len(x0), 0)
    reference = pipe.decode(x_T, z, REFERENCE_STEPS, "ddim")
    name = pipe.config.name
    records = []
    for sampler in ("ddim", "dpmpp2m"):
        for steps in STEPS:
            recon = pipe.decode(pipe.invert(x0, z, steps, sampler), z, steps, sampler)
            vs_image, vs_ref = _quality(x0, recon), _quality(reference, pipe.decode(x_T, z, steps, sampler))
            print(f"{sampler:8s} S={steps:3d}  recon {vs_image}  vs DDIM-{REFERENCE_STEPS} {vs_ref}")
            records.append(
                record(
                    f"Samplers: quality by step count, {name}",
                    {"sampler": sampler, "S": steps},
                    extra={
                        "recon PSNR dB": vs_image["psnr"],
                        "recon SSIM": vs_image["ssim"],
                        f"vs DDIM-{REFERENCE_STEPS} PSNR dB": vs_ref["psnr"],
                        f"vs DDIM-{REFERENCE_STEPS} SSIM": vs_ref["ssim"],
                    },
                    notes=f"{args.images} held-out images; recon: inverted and decoded with the same sampler "
                    f"and S; vs DDIM-{REFERENCE_STEPS}: decodes of one seeded x_T",
                )
            )
    source, ref = x0[: args.edit_batch], x0[args.edit_batch : args.edit_batch + 1]
    runs = {("dpmpp2m", 10): [], ("ddim", 20): []}
    for _ in range(args.repeats + 1):  # interleaved; the first round is the warm-up
        for (sampler, steps), times in runs.items():
            start = time.perf_counter()
            pipe.edit(source, ref, swap=["background"], steps=steps, sampler=sampler)
            times.append(time.perf_counter() - start)
    base = statistics.median(runs[("ddim", 20)][1:])
    for (sampler, steps), times in runs.items():
        timed = times[1:]
        timing = {"median": statistics.median(timed), "min": min(timed), "max": max(timed), "n": len(timed)}
        print(f"edit {sampler} S={steps}: median {timing['median'] * 1e3:.0f} ms")
        records.append(
            record(
                f"Samplers: edit time, {name}, batch {args.edit_batch}",
                {"sampler": sampler, "S": steps},
                timing,
                extra={"speed-up vs DDIM S=20": f"{base / timing['median']:.2f}×"},
                notes=f"torch eager, {args.threads} threads; {args.repeats} interleaved runs after 1 warm-up",
            )
        )
    print(save(records))


if __name__ == "__main__":
    main()
