"""`diffusegae` command line: one subcommand per user-facing job."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from diffusegae.paths import SHIPPED_REPOSITORY


def _demo(args: argparse.Namespace) -> int:
    from diffusegae import demo

    if args.in_process:
        from diffusegae.engines.pipeline import load_pipeline

        pipe = load_pipeline(args.checkpoint, engine=args.engine)
        demo.run_demo(demo.InProcessOps(pipe), pipe.config, args.out, args.steps, args.count, args.seed)
    else:
        demo.served_demo(args.repository, args.out, args.steps, args.count, args.seed)
    return 0


def _export(args: argparse.Namespace) -> int:
    from diffusegae.export import export_checkpoint

    files = export_checkpoint(args.checkpoint, args.out, opset=args.opset, precision=args.precision)
    for name, path in files.items():
        print(f"{name:12s} {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0


def _train(args: argparse.Namespace) -> int:
    from diffusegae.train.cli import run

    run(args)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diffusegae", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo", help="start the server, edit dataset images over gRPC (4 ops) → a labelled PNG grid, stop"
    )
    demo.add_argument("--repository", default=str(SHIPPED_REPOSITORY), help="model repository to serve")
    demo.add_argument("--in-process", action="store_true", help="run the ops in-process instead of served")
    demo.add_argument("--checkpoint", default=None, help="with --in-process: checkpoint (default: shipped)")
    demo.add_argument("--engine", default="torch", help="with --in-process: torch | onnxruntime")
    demo.add_argument("--out", default="out/demo.png")
    demo.add_argument("--steps", type=int, default=20, help="DDIM steps for inversion and decoding")
    demo.add_argument("--count", type=int, default=4, help="number of source images")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)

    export = sub.add_parser("export", help="export a checkpoint's components to ONNX (cached)")
    export.add_argument("--checkpoint", required=True, help="checkpoint directory")
    export.add_argument("--out", default=None, help="output directory (default: CHECKPOINT/onnx)")
    export.add_argument("--opset", type=int, default=17)
    export.add_argument(
        "--precision", default="fp32", help="fp32 | fp16 (for GPU providers; inputs and outputs stay fp32)"
    )
    export.set_defaults(func=_export)

    from diffusegae.server.cli import (
        add_build_repo_arguments,
        add_serve_arguments,
        run_build_repo,
        run_serve,
    )

    build_repo = sub.add_parser("build-repo", help="write the Triton model repository for a checkpoint")
    add_build_repo_arguments(build_repo)
    build_repo.set_defaults(func=run_build_repo)

    serve = sub.add_parser("serve", help="run the bundled Triton Inference Server on a model repository")
    add_serve_arguments(serve)
    serve.set_defaults(func=run_serve)

    from diffusegae.client.batch import EDIT_HELP, add_edit_arguments, run_edit

    edit = sub.add_parser("edit", help=EDIT_HELP)
    add_edit_arguments(edit)
    edit.set_defaults(func=run_edit)

    from diffusegae.benchmark import cli as bench_cli

    bench = sub.add_parser("bench", help=bench_cli.HELP)
    bench_cli.add_arguments(bench)
    bench.set_defaults(func=bench_cli.run)

    from diffusegae.eval.cli import add_eval_arguments, run_eval

    evaluate = sub.add_parser(
        "eval", help="reconstruction (Table 2), probe (Table 1), edit-accuracy tables → eval.json, eval.md"
    )
    add_eval_arguments(evaluate)
    evaluate.set_defaults(func=run_eval)

    from diffusegae.diffae_import import IMPORT_HELP, add_import_arguments, run_import

    imp = sub.add_parser("import-diffae", help=IMPORT_HELP)
    add_import_arguments(imp)
    imp.set_defaults(func=run_import)

    from diffusegae.train.cli import add_arguments

    train = sub.add_parser("train", help="train a checkpoint: stage 1 Diff-AE, 2 GAE, 3 joint (resumable)")
    add_arguments(train)
    train.set_defaults(func=_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, NotImplementedError) as err:
        print(f"diffusegae {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
