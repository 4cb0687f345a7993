"""One source, several references: what the served inversion cache saves on repeated edits of a source.

Two servers over the same checkpoint, one with the x_T cache (the default) and one without
(`xt_cache_mb` 0), get the same sequence, one request at a time: for each of --sources sources, an edit
with each of --references references. Records the first edit of a source and the repeats (medians over
sources) per server, and the repeat's speed-up over the first, in bench/results/xt_cache.jsonl.
    python bench/xt_cache.py [--checkpoint checkpoints/tiny32] [--sources 4] [--references 5] [--steps 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from common import record, save

from diffusegae.client import Client
from diffusegae.data import AttributeDataset
from diffusegae.paths import SHIPPED_CHECKPOINT
from diffusegae.server.launcher import TritonServer, free_port
from diffusegae.server.repository import build_repository
from diffusegae.server.specs import INVERT, PARAM_XT_CACHE_MB


def without_cache(repository: Path) -> Path:
    config = repository / INVERT / "config.pbtxt"
    config.write_text(
        config.read_text() + f'parameters {{ key: "{PARAM_XT_CACHE_MB}" value: {{ string_value: "0" }} }}\n'
    )
    return repository


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT))
    parser.add_argument("--sources", type=int, default=4)
    parser.add_argument("--references", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="diffusegae-xt-bench-"))
    dataset = AttributeDataset(resolution=32, seed=0)
    _, images = dataset.sample(np.random.default_rng(0), "test", args.sources + args.references)
    sources, references = images[: args.sources], images[args.sources :]
    records = []
    for mode in ("cache", "no cache"):
        repository = build_repository(args.checkpoint, work / mode.replace(" ", "-"))
        if mode == "no cache":
            without_cache(repository)
        ports = {f"{k}_port": free_port() for k in ("grpc", "http", "metrics")}
        with TritonServer(
            repository, None, work_dir=work / f"triton-{mode.replace(' ', '-')}", **ports
        ) as server:
            first, repeat = [], []
            with Client(server.url, timeout=300) as client:
                client.edit(references[:1], references[1:2], ["pose"], steps=args.steps)  # warm-up
                for source in sources:
                    for i, reference in enumerate(references):
                        start = time.perf_counter()
                        client.edit(source[None], reference[None], ["pose"], steps=args.steps)
                        (first if i == 0 else repeat).append(time.perf_counter() - start)
        f, r = statistics.median(first), statistics.median(repeat)
        print(f"{mode:8s}: first edit {f * 1e3:.0f} ms, repeat {r * 1e3:.0f} ms, {f / r:.2f}×")
        for which, seconds in (("first edit of a source", first), ("repeat (another reference)", repeat)):
            timing = {"median": statistics.median(seconds), "min": min(seconds), "max": max(seconds),
                      "n": len(seconds)}  # fmt: skip
            records.append(
                record(
                    f"Inversion cache: one source, {args.references} references, edit S={args.steps}",
                    {"server": mode, "edit": which},
                    timing,
                    extra={"first / repeat": f"{f / r:.2f}×"},
                    notes="one request at a time over gRPC from the same machine, batch 1; medians over "
                    f"{args.sources} sources",
                )
            )
    print(save(records))


if __name__ == "__main__":
    main()
