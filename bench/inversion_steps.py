"""Fewer inversion steps than decoding steps: what a lossy edit saves, and what it costs in quality.

An edit is one DDIM inversion (S_inv network calls) and one decode (S_dec calls), so inverting with fewer
steps cuts the edit's work by (S_inv + S_dec) / (2·S_dec). For each S_inv, on the shipped checkpoint, with the
eval's 32 held-out pairs and oracle, and each attribute swapped in turn: the PSNR of the edit against the
exact path (S_inv = S_dec), the oracle's took / kept, and the edit's median time at batch 8.
    python bench/inversion_steps.py [--checkpoint checkpoints/tiny32] [--decode-steps 20] [--invert 20,10,5]
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
from common import measure, record, save

from diffusegae.data import AttributeDataset
from diffusegae.engines.pipeline import load_pipeline
from diffusegae.eval.edits import intended_values, sample_groups, swap_scores
from diffusegae.eval.metrics import psnr, to_unit
from diffusegae.eval.oracle import OracleSettings, load_or_train_oracle
from diffusegae.images import to_model, to_uint8
from diffusegae.paths import SHIPPED_CHECKPOINT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT))
    parser.add_argument("--decode-steps", type=int, default=20)
    parser.add_argument("--invert", default="20,10,5", help="inversion step counts; the first is exact")
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--oracle-dir", default=None, help="where the oracle is cached (default: a temp dir)")
    args = parser.parse_args()
    pipe = load_pipeline(args.checkpoint, engine="torch")
    dataset = AttributeDataset(pipe.config.image_size, 0)
    oracle, _ = load_or_train_oracle(args.oracle_dir or tempfile.mkdtemp(), dataset, OracleSettings())
    source, reference = sample_groups(dataset, args.pairs, 2, 0)  # the eval's edit pairs
    src, ref = to_model(source.images), to_model(reference.images)
    z_src, z_ref = pipe.encode(src), pipe.encode(ref)
    names = dataset.attribute_names
    codes = {name: pipe.swap_codes(z_src, z_ref, [name]) for name in names}
    s_dec = args.decode_steps
    counts = [int(s) for s in args.invert.split(",")]
    exact: dict[str, np.ndarray] = {}
    records = []
    for s_inv in counts:
        x_T = pipe.invert(src, z_src, s_inv)
        quality = {}
        for k, name in enumerate(names):
            out = pipe.decode(x_T, codes[name], s_dec)
            exact.setdefault(name, out)
            pred = oracle.predict(to_uint8(out))
            quality[name] = {
                **swap_scores(pred, intended_values(source, reference, k), k),
                "psnr": None
                if s_inv == counts[0]
                else float(np.mean(psnr(to_unit(out), to_unit(exact[name])))),
            }
        src8, z8, code8 = src[:8], z_src[:8], codes[names[0]][:8]
        timing = measure(
            lambda s_inv=s_inv, src8=src8, z8=z8, code8=code8: pipe.decode(
                pipe.invert(src8, z8, s_inv), code8, s_dec
            ),
            repeats=5,
        )
        calls = (s_inv + s_dec) / (2 * s_dec)
        psnrs = [q["psnr"] for q in quality.values() if q["psnr"] is not None]
        summary = ", ".join(f"{n} took {q['took']:.2f} kept {q['kept']:.2f}" for n, q in quality.items())
        psnr_text = f"{min(psnrs):.1f} dB" if psnrs else "exact"
        ms = timing["median"] * 1e3
        print(f"S_inv {s_inv:3d}: {ms:.0f} ms, calls {calls:.2f}×, PSNR {psnr_text}; {summary}")
        records.append(
            record(
                f"Fewer inversion steps (lossy opt-in): edit with decode S={s_dec}, shipped checkpoint",
                {"S_inv": s_inv, "engine": "torch"},
                timing,
                extra={
                    "network calls vs exact": f"{calls:.2f}×",
                    "PSNR vs exact (min over swaps)": psnr_text,
                    "took (id / bg / pose)": " / ".join(f"{q['took']:.2f}" for q in quality.values()),
                    "kept (id / bg / pose)": " / ".join(f"{q['kept']:.2f}" for q in quality.values()),
                },
                notes=f"time: batch 8, medians of 5; quality: the eval's {args.pairs} held-out edit pairs "
                "and oracle, each attribute swapped in turn",
            )
        )
    print(save(records))


if __name__ == "__main__":
    main()
