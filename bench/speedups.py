"""The opt-in lossy speed-ups: what each saves, and what it costs in quality, on the shipped checkpoint.

Modes (`diffusegae.engines.Speedups`): feature reuse (`reuse=N`: the whole UNet every N-th DDIM step, its
outermost level alone in between) and fewer inversion steps (`invert=N`: the edit's inversion walks N
steps, its decode S_dec) and bfloat16 networks (`bf16`: the torch engine's dtype=bfloat16, on oneDNN's
AVX-512 BF16 / AMX kernels where the CPU has them) and Winograd convolutions (`winograd`: the torch
engine's winograd=True, exact up to rounding), alone or joined by '+'. For each mode, with the eval's
held-out pairs and oracle and each attribute swapped in turn: the PSNR of the edit against the exact path,
the oracle's took / kept, and the edit's median time at batch 8 (torch engine; ONNX Runtime runs the same
fp32 graphs to 1e-4).
    python bench/speedups.py [--checkpoint checkpoints/tiny32] [--steps 20]
                             [--modes exact,invert=10,reuse=2,reuse=2+invert=10,bf16,winograd]
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
from common import measure, parse_mode, record, save

from diffusegae.data import AttributeDataset
from diffusegae.engines.pipeline import Pipeline, load_pipeline
from diffusegae.eval.edits import intended_values, sample_groups, swap_scores
from diffusegae.eval.metrics import psnr, to_unit
from diffusegae.eval.oracle import OracleSettings, load_or_train_oracle
from diffusegae.images import to_model, to_uint8
from diffusegae.paths import SHIPPED_CHECKPOINT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT))
    parser.add_argument("--steps", type=int, default=20, help="decoding steps (and the exact inversion's)")
    parser.add_argument("--modes", default="exact,invert=10,reuse=2,reuse=2+invert=10")
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--oracle-dir", default=None, help="where the oracle is cached (default: a temp dir)")
    args = parser.parse_args()
    exact_pipe = load_pipeline(args.checkpoint, engine="torch")
    dataset = AttributeDataset(exact_pipe.config.image_size, 0)
    oracle, _ = load_or_train_oracle(args.oracle_dir or tempfile.mkdtemp(), dataset, OracleSettings())
    source, reference = sample_groups(dataset, args.pairs, 2, 0)  # the eval's edit pairs
    src, ref = to_model(source.images), to_model(reference.images)
    names = dataset.attribute_names
    exact: dict[str, np.ndarray] = {}
    records = []
    for mode in ["exact", *(m for m in args.modes.split(",") if m != "exact")]:
        speedups, torch_options = parse_mode(mode)
        engine = (
            load_pipeline(args.checkpoint, **torch_options).engine if torch_options else exact_pipe.engine
        )
        pipe = Pipeline(engine, speedups=speedups)
        quality = {}
        for k, name in enumerate(names):
            out = pipe.edit(src, ref, [name], args.steps)
            exact.setdefault(name, out)
            pred = oracle.predict(to_uint8(out))
            quality[name] = {
                **swap_scores(pred, intended_values(source, reference, k), k),
                "psnr": float(np.mean(psnr(to_unit(out), to_unit(exact[name])))),
            }
        timing = measure(lambda pipe=pipe: pipe.edit(src[:8], ref[:8], [names[0]], args.steps), repeats=5)
        psnr_text = "exact" if mode == "exact" else f"{min(q['psnr'] for q in quality.values()):.1f} dB"
        summary = ", ".join(f"{n} took {q['took']:.2f} kept {q['kept']:.2f}" for n, q in quality.items())
        print(f"{mode:20s} {timing['median'] * 1e3:.0f} ms, PSNR {psnr_text}; {summary}")
        records.append(
            record(
                f"Opt-in lossy speed-ups: edit S={args.steps}, shipped checkpoint",
                {"mode": mode, "engine": "torch"},
                timing,
                extra={
                    "speed-up vs exact": "",  # filled below, once the exact row is timed
                    "PSNR vs exact (min over swaps)": psnr_text,
                    "took (id / bg / pose)": " / ".join(f"{q['took']:.2f}" for q in quality.values()),
                    "kept (id / bg / pose)": " / ".join(f"{q['kept']:.2f}" for q in quality.values()),
                },
                notes=f"time: batch 8, medians of 5; quality: the eval's {args.pairs} held-out edit pairs "
                "and oracle, each attribute swapped in turn",
            )
        )
    for r in records:
        r.extra["speed-up vs exact"] = f"{records[0].median / r.median:.2f}×"
    print(save(records))


if __name__ == "__main__":
    main()
