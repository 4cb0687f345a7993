"""Command line of `train()`: one flag per argument, so `diffusegae train` can reuse it.

    parser = argparse.ArgumentParser(); add_arguments(parser); run(parser.parse_args())

Flags left out are not passed, so `train()` decides their defaults (and a resumed run keeps its settings).
No torch import happens until `run`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from diffusegae.config import TIMESTEP_SAMPLERS, WEIGHTINGS


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the training flags to `parser` (a top-level parser or a subcommand's)."""
    a = parser.add_argument
    a("--checkpoint", required=True, help="checkpoint directory; created from --preset if it does not exist")
    a("--preset", help="model preset for a new checkpoint (tiny32, synth64, ilab128, ...)")
    a(
        "--stage",
        type=int,
        choices=(1, 2, 3, 4),
        default=1,
        help="1: Diff-AE pretraining, 2: GAE on frozen z_sem, 3: joint fine-tuning, 4: GAE refit on the "
        "encoder stage 3 tuned (default 1)",
    )
    a("--steps", type=int, help="optimizer steps to run now, on top of those already done (default 1000)")
    a("--batch-size", type=int, help="images (stage 1) or groups of 1+K images (stages 2, 3)")
    a("--lr", type=float, help="learning rate (defaults: 1e-4 / 4e-5 / 1e-5 for stages 1 / 2 / 3)")
    a("--seed", type=int, help="seed of the initial weights and of the data and noise streams (default 0)")
    a("--threads", type=int, help="torch.set_num_threads")
    a("--log-every", type=int, help="log every N steps to train_log.jsonl and stdout (default 50)")
    a("--save-every", type=int, help="also save every N steps")
    a("--save-every-s", type=float, help="save every N seconds (default 600)")
    a("--time-limit-s", type=float, help="stop (and save) after this many seconds")
    a("--device", help="auto (default), cpu, cuda, cuda:1, ...")
    a("--amp", action="store_true", default=None, help="bf16 autocast (CUDA only)")
    a("--ema-decay", type=float, help="EMA decay, warmed up as min(decay, (1+n)/(10+n)) (default 0.999)")
    a("--grad-clip", type=float, help="gradient norm clip (default 1.0)")
    a("--lambda-ss", type=float, help="weight of the supervised swap loss L_ss (1.0 in stage 2, 0.5 in 3)")
    a("--lambda-ur", type=float, help="weight of the unsupervised reassembly loss L_ur (default 0.5)")
    a(
        "--lambda-sc",
        type=float,
        help="weight of the shared-chunk loss L_sc (not in Eq. 11; default 0): chunk k of two images sharing "
        "attribute k should match",
    )
    a("--gamma", type=float, help="weight of L_dis in stage 3 (default 1.0)")
    a("--stats-images", type=int, help="images for the z_sem statistics at the start of stage 2 (4096)")
    a("--dataset-seed", type=int, help="seed of the dataset's train/test split (default 0)")
    a("--quiet", action="store_true", default=None, help="no progress lines on stdout")
    a(
        "--data-workers",
        type=int,
        help="processes rendering batches ahead of the loop (default: 0 on CPU, half the cores up to 8 on a "
        "GPU); the images are the same whatever the number",
    )
    a(
        "--weighting",
        choices=WEIGHTINGS,
        help="weight of each timestep's eps error: auto (default: the MSE of what the model predicts), "
        "simple (L_simple), v (1/ᾱ), x0 (1/SNR), min_snr (min(SNR, γ)/SNR)",
    )
    a("--weight-cap", type=float, help="cap on the per-timestep loss weight (default: none)")
    a("--min-snr-gamma", type=float, help="γ of --weighting min_snr (default 5)")
    a("--timesteps", choices=TIMESTEP_SAMPLERS, help="timestep sampling (default uniform)")
    a("--high-t-share", type=float, help="--timesteps high: share of each batch drawn from high t (0.5)")
    a("--high-t-from", type=int, help="--timesteps high: the lowest 'high' timestep (700)")
    a("--logit-mean", type=float, help="--timesteps logit_normal: mean m (default 0; > 0 leans to noise)")
    a("--logit-std", type=float, help="--timesteps logit_normal: standard deviation s (default 1)")
    a(
        "--learned-norm",
        action="store_true",
        default=None,
        help="EDM2's learned per-timestep loss normalisation L/e^u(t) + u(t) (training only)",
    )
    return parser


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Call train() with the flags that were given; returns the stage summary."""
    from diffusegae.train.loop import train

    # every flag's dest (its name with dashes turned into underscores) is the train() keyword
    keywords = [action.dest for action in add_arguments(argparse.ArgumentParser(add_help=False))._actions]
    kwargs = {k: getattr(args, k) for k in keywords if getattr(args, k, None) is not None}
    return train(kwargs.pop("checkpoint"), **kwargs)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m diffusegae.train", description=__doc__.split("\n")[0])
    summary = run(add_arguments(parser).parse_args(argv))
    print(json.dumps(summary, indent=2))
