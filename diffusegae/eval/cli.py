"""`diffusegae eval`: reconstruction, z_sem use, probe and edit tables for a checkpoint → eval.json + eval.md.

Mount with `add_eval_arguments(sub.add_parser("eval"))` and `set_defaults(func=run_eval)`.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from diffusegae.dpm_solver import SAMPLERS
from diffusegae.eval.report import JSON_FILE, MARKDOWN_FILE, write_report
from diffusegae.eval.suite import EvalSettings, evaluate, quick_settings


def _steps(text: str) -> tuple[int, ...]:
    try:
        steps = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--steps takes comma-separated integers, got {text!r}") from None
    if not steps or min(steps) < 1:
        raise argparse.ArgumentTypeError(f"--steps needs positive step counts, got {text!r}")
    return steps


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    default = EvalSettings()
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory")
    parser.add_argument("--engine", default="torch", choices=("torch", "onnxruntime"))
    parser.add_argument("--device", default="cpu", help="torch engine device (cpu, cuda)")
    parser.add_argument("--out", default=None, help="output directory (default: the checkpoint directory)")
    parser.add_argument(
        "--images", type=int, default=None, help=f"held-out images per table (default {default.images})"
    )
    parser.add_argument(
        "--steps", type=_steps, default=None, help="DDIM step counts S, comma-separated (default 20,100)"
    )
    parser.add_argument("--seed", type=int, default=None, help="sampling and x_T seed (default 0)")
    parser.add_argument("--sampler", choices=SAMPLERS, default=None, help="every decode and inversion (ddim)")
    parser.add_argument(
        "--probe-images", type=int, default=None, help=f"probe images (default {default.probe_images})"
    )
    parser.add_argument(
        "--edit-images", type=int, default=None, help="edit pairs / triples (default: --images)"
    )
    parser.add_argument(
        "--edit-steps", type=int, default=None, help="S for edits (default: smallest --steps)"
    )
    parser.add_argument("--batch-size", type=int, default=None, help=f"default {default.batch_size}")
    parser.add_argument("--threads", type=int, default=None, help="torch / onnxruntime intra-op threads")
    parser.add_argument("--dataset-seed", type=int, default=None, help="default: the checkpoint's split")
    parser.add_argument("--oracle-dir", default=None, help="where the oracle is cached (default: --out)")
    parser.add_argument("--oracle-steps", type=int, default=None, help="oracle training steps")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small samples, S=5, short training: a smoke test, not for quoting",
    )


def settings_from_args(args: argparse.Namespace) -> EvalSettings:
    base = quick_settings() if args.quick else EvalSettings()
    given = {
        "images": args.images,
        "steps": args.steps,
        "seed": args.seed,
        "engine": args.engine,
        "device": args.device,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "probe_images": args.probe_images,
        "edit_images": args.edit_images,
        "edit_steps": args.edit_steps,
        "dataset_seed": args.dataset_seed,
        "sampler": args.sampler,
    }
    settings = dataclasses.replace(base, **{k: v for k, v in given.items() if v is not None})
    if args.oracle_steps is not None:
        settings = dataclasses.replace(
            settings, oracle=dataclasses.replace(settings.oracle, steps=args.oracle_steps)
        )
    for name in ("images", "probe_images", "batch_size", "edit_images", "edit_steps", "threads"):
        value = getattr(settings, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if settings.probe_images < 10:
        raise ValueError(f"--probe-images must be at least 10 (80/20 split), got {settings.probe_images}")
    return settings


def run_eval(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    out = Path(args.out) if args.out is not None else Path(args.checkpoint)
    oracle_dir = Path(args.oracle_dir) if args.oracle_dir is not None else out
    results = evaluate(args.checkpoint, settings, oracle_dir)
    print(write_report(results, out))
    print(f"wrote {out / JSON_FILE} and {out / MARKDOWN_FILE}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="diffusegae eval", description=__doc__)
    add_eval_arguments(parser)
    return run_eval(parser.parse_args(argv))
