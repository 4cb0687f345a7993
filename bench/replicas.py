"""One server vs two replicas behind one client, in one run, on one checkpoint.

Starts two local servers over one repository (as `diffusegae serve --replicas 2` does), then runs the same
closed loop of edits (`diffusegae bench --concurrency C --steps S --requests N`) against the first alone
and against both (`--server a,b`: each request goes to the replica with the fewest in flight). Records
throughput, p50 / p99 and the requests each replica answered (Triton's own statistics) in
bench/results/replicas.jsonl (BENCHMARKS.md). On a machine whose cores one server already keeps busy, a
second replica adds no compute: the table shows how the load splits, not a speed-up.
    python bench/replicas.py [--checkpoint checkpoints/tiny32] [--requests 40] [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from common import record, save, served_bench

from diffusegae.paths import SHIPPED_CHECKPOINT
from diffusegae.server.launcher import TritonServer, free_port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT))
    parser.add_argument("--requests", type=int, default=40, help="answers per level")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="diffusegae-replicas-bench-"))
    repository = work / "repository"
    TritonServer(repository, args.checkpoint).prepare_repository()
    servers: list[TritonServer] = []
    try:
        for i in range(2):
            ports = {f"{k}_port": free_port() for k in ("grpc", "http", "metrics")}
            servers.append(TritonServer(repository, None, work_dir=work / f"triton{i}", **ports).start())
        flags = ["--concurrency", str(args.concurrency), "--steps", str(args.steps)]
        flags += ["--requests", str(args.requests)]
        records = []
        for count in (1, 2):
            url = ",".join(s.url for s in servers[:count])
            level = served_bench(url, work / f"x{count}", *flags)
            lat = level["latency_ms"]
            shares = level["server"].get("replicas") or {url: level["server"]["requests"]}
            print(f"{count} replica(s): {level['images_per_s']:.2f} img/s, p50 {lat['p50']:.0f} ms, "
                  f"p99 {lat['p99']:.0f} ms, per replica {list(shares.values())}")  # fmt: skip
            extra = {
                "img/s": f"{level['images_per_s']:.2f}",
                "p50 ms": round(lat["p50"]),
                "p99 ms": round(lat["p99"]),
                "errors": level["errors"],
                "per replica": "/".join(str(n) for n in shares.values()),
            }
            records.append(
                record(
                    f"Replicas: edit S={args.steps}, closed loop of {args.concurrency}",
                    {"replicas": count},
                    extra=extra,
                    notes=f"{os.cpu_count()} cores shared by every replica; {args.requests} answers per "
                    "level after 2 warm-up; `diffusegae bench` over gRPC from the same machine; per replica: "
                    "the requests each server answered (Triton's statistics)",
                )
            )
        print(save(records))
    finally:
        for server in servers:
            server.stop()


if __name__ == "__main__":
    main()
