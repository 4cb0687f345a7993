"""`diffusegae build-repo` and `diffusegae serve`: arguments and handlers for the main CLI to mount."""

from __future__ import annotations

import argparse

from diffusegae.engines.registry import LOOP_ENGINES
from diffusegae.paths import SHIPPED_CHECKPOINT, SHIPPED_REPOSITORY
from diffusegae.server.specs import LEAF_BACKENDS, LOOP_BATCHING, PYTHON_ORT


def add_build_repo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", default=str(SHIPPED_CHECKPOINT), help="checkpoint directory (default: %(default)s)"
    )
    parser.add_argument(
        "--out", default=str(SHIPPED_REPOSITORY), help="repository folder (default: %(default)s)"
    )
    parser.add_argument(
        "--leaf-backend",
        choices=LEAF_BACKENDS,
        default=PYTHON_ORT,
        help="leaf models as python models over onnxruntime (CPU, default), or native onnxruntime / "
        "tensorrt models for the NGC container",
    )
    parser.add_argument(
        "--checkpoint-ref",
        default=None,
        help="how config.pbtxt names the checkpoint (default: relative to --out inside one project, else "
        "absolute)",
    )
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads per model process")
    parser.add_argument(
        "--loop-engine",
        choices=list(LOOP_ENGINES),
        default=None,
        help="where invert / decode run the UNet: in-process onnxruntime (default for python-ort leaves) or "
        "BLS calls to the unet model (default for native leaves)",
    )
    add_loop_batching(parser)
    parser.add_argument(
        "--feature-reuse",
        type=int,
        default=1,
        metavar="N",
        help="opt-in, lossy: invert / decode run the whole UNet every N-th step only (default 1: off)",
    )
    parser.add_argument(
        "--invert-steps",
        type=int,
        default=None,
        metavar="N",
        help="opt-in, lossy: the inversion walks N steps whatever a request asks (default: as asked)",
    )
    parser.add_argument(
        "--deploy",
        metavar="DIR",
        default=None,
        help="also write Kubernetes manifests and a Dockerfile for this repository (the project's: deploy/)",
    )


def add_loop_batching(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--loop-batching",
        choices=LOOP_BATCHING,
        default="request",
        help="request: each dynamic batch runs its whole loop (default); step: requests join and leave the "
        "running batch at every step",
    )


def run_build_repo(args: argparse.Namespace) -> int:
    from diffusegae.engines.pipeline import Speedups
    from diffusegae.server.repository import build_repository

    options = {k: getattr(args, k) for k in ("checkpoint_ref", "threads", "loop_engine", "loop_batching")}
    speedups = Speedups(args.feature_reuse, args.invert_steps)
    out = build_repository(args.checkpoint, args.out, args.leaf_backend, speedups=speedups, **options)
    models = sorted(p.parent.name for p in out.glob("*/config.pbtxt"))
    print(f"{out}: {len(models)} models ({', '.join(models)})")
    if args.deploy is not None:
        from diffusegae.server.deploy import write_manifests

        files = write_manifests(args.deploy, out)
        print(f"{args.deploy}: {', '.join(p.name for p in files)}")
    return 0


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repository", default=str(SHIPPED_REPOSITORY), help="model repository (default: %(default)s)"
    )
    parser.add_argument(
        "--checkpoint", default=None, help="build the repository from this checkpoint first (default: as is)"
    )
    parser.add_argument("--leaf-backend", choices=LEAF_BACKENDS, default=PYTHON_ORT)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads per model process")
    add_loop_batching(parser)  # applies when --checkpoint rebuilds the repository
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="start N servers on free ports (each with its own shm prefix and watchdog); prints their list",
    )
    parser.add_argument(
        "--no-supervise",
        dest="supervise",
        action="store_false",
        help="do not restart a server whose backend process died or stopped (default: restart it)",
    )
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--startup-timeout", type=float, default=180.0, help="seconds to wait for readiness")
    parser.add_argument("--log-verbose", type=int, default=0)
    parser.add_argument(
        "--print-container-cmd",
        "--container",
        dest="container",
        action="store_true",
        help="print the docker command for the NGC tritonserver image (GPU machines) instead of serving",
    )


def run_serve(args: argparse.Namespace) -> int:
    from diffusegae.server.launcher import TritonServer, container_command, serve

    options = {name: getattr(args, name) for name in ("leaf_backend", "threads", "loop_batching")}
    if args.container:
        if args.checkpoint is not None:
            TritonServer(args.repository, args.checkpoint, **options).prepare_repository()
        ports = {"grpc": args.grpc_port, "http": args.http_port, "metrics": args.metrics_port}
        print(container_command(args.repository, ports=ports))
        return 0
    served = ("host", "grpc_port", "http_port", "metrics_port", "startup_timeout", "log_verbose")
    options |= {name: getattr(args, name) for name in served}
    return serve(
        args.repository, args.checkpoint, replicas=args.replicas, supervise=args.supervise, **options
    )
