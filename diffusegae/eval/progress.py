"""A progress probe between training runs: the decoder's use of z_sem by timestep, in seconds.

    python -m diffusegae.eval.progress --checkpoint CK [--device cuda] [--json FILE] [--probe-images N]

prints the table of `diffusegae eval` (diffusegae.eval.conditioning) on the same held-out images: the same
--images and --seed give the same numbers. Edits and random-x_T decodes need the share at large t (t ≥ 800
is where DDIM lays an image out) well above 0, so this says when stage 1 has trained long enough.
--probe-images N adds linear probes of every attribute on z_sem and, on a DiffuseGAE, on each z_dis chunk
(the eval's probes on N images): an attribute the encoder does not carry cannot be edited, whatever the
decoder does, and a chunk that reads another attribute leaks it into every swap. --gae-pairs N adds the
eval's code error per swap on N held-out pairs (encoder and GAE only, no DDIM: seconds), the measure of a
GAE training run.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from diffusegae.data import AttributeDataset
from diffusegae.engines.pipeline import load_pipeline
from diffusegae.eval.conditioning import conditioning_use
from diffusegae.eval.edits import code_errors
from diffusegae.eval.probes import probe_matrix, sample_probe_images
from diffusegae.eval.report import conditioning_table
from diffusegae.eval.suite import checkpoint_dataset_seed, held_out_sample, latent_features
from diffusegae.images import to_model


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m diffusegae.eval.progress", description="the decoder's use of z_sem by timestep"
    )
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    parser.add_argument("--images", type=int, default=32, help="held-out images (default 32, as eval)")
    parser.add_argument("--seed", type=int, default=0, help="sample and noise seed (default 0, as eval)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this file")
    parser.add_argument(
        "--probe-images",
        type=int,
        default=0,
        help="also probe z_sem and each z_dis chunk for each attribute on N images (0: no)",
    )
    parser.add_argument(
        "--gae-pairs", type=int, default=0, help="also the GAE's code error per swap on N held-out pairs"
    )
    args = parser.parse_args(argv)

    pipe = load_pipeline(args.checkpoint, engine="torch", device=args.device)
    dataset = AttributeDataset(pipe.config.image_size, checkpoint_dataset_seed(args.checkpoint) or 0)
    _, images = held_out_sample(dataset, args.images, args.seed)
    result = conditioning_use(pipe, to_model(images), seed=args.seed)
    print("\n".join(conditioning_table(result)))
    if args.probe_images:
        values, probe_images = sample_probe_images(dataset, args.probe_images, args.seed)
        features = latent_features(pipe, to_model(probe_images), 256)
        features.pop("_z_sem_roundtrip", None)
        rows = probe_matrix(features, values, dataset.attributes)["rows"]
        result["probes_z_sem"] = rows.pop("z_sem")
        print(
            "linear probe on z_sem: " + ", ".join(f"{k} {v:.2f}" for k, v in result["probes_z_sem"].items())
        )
        if rows:
            result["probes_z_dis"] = rows
            for chunk, row in rows.items():
                values_read = ", ".join(f"{k} {v:.2f}" for k, v in row.items())
                print(f"linear probe on the {chunk} chunk: {values_read}")
    if args.gae_pairs and pipe.config.gae is not None:
        result["code_error"] = code_errors(pipe, dataset, args.gae_pairs, args.seed)
        print("code error per swap: " + ", ".join(f"{k} {v:.2f}" for k, v in result["code_error"].items()))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
