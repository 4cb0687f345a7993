"""`diffusegae` command line: one subcommand per user-facing job."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _demo(args: argparse.Namespace) -> int:
    from diffusegae.demo import run_demo
    from diffusegae.engines.pipeline import load_pipeline

    pipe = load_pipeline(args.checkpoint, engine=args.engine)
    run_demo(pipe, args.out, steps=args.steps, count=args.count, seed=args.seed)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diffusegae", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo", help="reconstruct / edit / recombine / interpolate dataset images → a PNG grid"
    )
    demo.add_argument("--checkpoint", default=None, help="checkpoint directory (default: the shipped one)")
    demo.add_argument("--engine", default="torch")
    demo.add_argument("--out", default="out/demo.png")
    demo.add_argument("--steps", type=int, default=20, help="DDIM steps for inversion and decoding")
    demo.add_argument("--count", type=int, default=4, help="number of source images")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"diffusegae {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
