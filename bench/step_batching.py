"""Request-level vs step-level batching of the served loops, both in one run, on one checkpoint.

For each mode a server is started on free loopback ports with a repository built for that mode. The
capacity (images/s of edits at S = 20 under a closed loop of --capacity-concurrency clients) is measured on
the request-level server; then both servers get the same open-loop Poisson arrivals at 50 %, 80 % and 95 %
of it (`diffusegae bench --rate R --poisson --requests N`), and a mixed workload (S = 10 and S = 50 in turn)
at 80 % of its own capacity. Records p50 / p99 latency and throughput per mode and load, and the p99 ratio
step / request, in bench/results/step_batching.jsonl (BENCHMARKS.md).
    python bench/step_batching.py [--checkpoint checkpoints/tiny32] [--requests 60] [--steps 20]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import record, save, served_bench

from diffusegae.paths import SHIPPED_CHECKPOINT
from diffusegae.server.launcher import TritonServer, free_port
from diffusegae.server.repository import build_repository

LOADS = (0.5, 0.8, 0.95)
MIX = "10,50"  # the mixed workload: requests alternate between these step counts


def bench(server: TritonServer, out: Path, *flags: str) -> dict:
    """One `diffusegae bench` run against `server`, with its step scheduler's figures → the level."""
    return served_bench(
        server.url, out, *flags, metrics_url=f"http://127.0.0.1:{server.ports['metrics']}/metrics"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT))
    parser.add_argument("--requests", type=int, default=60, help="answers per load level")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--capacity-concurrency", type=int, default=8)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="diffusegae-step-bench-"))
    servers = {}
    try:
        for mode in ("request", "step"):
            repo = build_repository(args.checkpoint, work / f"repo-{mode}", loop_batching=mode)
            ports = {f"{k}_port": free_port() for k in ("grpc", "http", "metrics")}
            servers[mode] = TritonServer(repo, None, work_dir=work / f"triton-{mode}", **ports).start()
        steps = ["--steps", str(args.steps), "--requests", str(args.requests)]
        clients = ["--concurrency", str(args.capacity_concurrency)]
        closed = bench(servers["request"], work / "capacity", *clients, *steps)
        capacity = closed["images_per_s"]
        print(f"capacity (request-level, closed loop of {args.capacity_concurrency}): {capacity:.2f} img/s")
        rows, p99 = [], {}
        for load in LOADS:
            rate = f"{load * capacity:.3f}"
            for mode, server in servers.items():
                level = bench(server, work / f"{mode}-{load}", "--rate", rate, "--poisson", *steps)
                lat = level["latency_ms"]
                p99[(mode, load)] = lat["p99"]
                scheduler = (level.get("server") or {}).get("scheduler", {}).get("decode", {})
                print(f"{mode:7s} {load:.0%}: p50 {lat['p50']:.0f} ms, p99 {lat['p99']:.0f} ms, "
                      f"{level['images_per_s']:.2f} img/s, errors {level['errors']}")  # fmt: skip
                rows.append((mode, load, rate, level, scheduler))
        # the mixed workload at 80 % of its own capacity: short requests behind long ones
        mixed_flags = ["--mix-steps", MIX, "--requests", str(args.requests)]
        mixed_capacity = bench(servers["request"], work / "mix-capacity", *clients, *mixed_flags)[
            "images_per_s"
        ]
        rate = f"{0.8 * mixed_capacity:.3f}"
        for mode, server in servers.items():
            level = bench(server, work / f"mix-{mode}", "--rate", rate, "--poisson", *mixed_flags)
            p99[(mode, "mix")] = level["latency_ms"]["p99"]
            scheduler = (level.get("server") or {}).get("scheduler", {}).get("decode", {})
            print(f"{mode:7s} mixed S={MIX} at 80%: p50 {level['latency_ms']['p50']:.0f} ms, "
                  f"p99 {level['latency_ms']['p99']:.0f} ms, {level['images_per_s']:.2f} img/s")  # fmt: skip
            rows.append((mode, "mix", rate, level, scheduler))
        notes = (
            f"capacity {capacity:.2f} img/s at S={args.steps}, {mixed_capacity:.2f} img/s mixed "
            f"(request-level, closed loop of {args.capacity_concurrency}); {args.requests} answers per "
            "level after 2 warm-up; `diffusegae bench` over gRPC from the same machine"
        )
        records = []
        for mode, load, rate, level, scheduler in rows:
            lat = level["latency_ms"]
            extra = {
                "offered req/s": rate,
                "p50 ms": round(lat["p50"]),
                "p99 ms": round(lat["p99"]),
                "img/s": f"{level['images_per_s']:.2f}",
                "errors": level["errors"],
                "p99 vs request-level": f"{lat['p99'] / p99[('request', load)]:.2f}×",
                "decode samples/tick": scheduler.get("samples_per_tick", "-"),
            }
            records.append(
                record(
                    f"Step vs request batching: edit S={args.steps}, Poisson arrivals",
                    {
                        "mode": mode,
                        "load": f"S={MIX} mixed, 80 % of its capacity"
                        if load == "mix"
                        else f"{load:.0%} of capacity",
                    },
                    extra=extra,
                    notes=notes,
                )
            )
        print(save(records))
    finally:
        for server in servers.values():
            server.stop()


if __name__ == "__main__":
    main()
