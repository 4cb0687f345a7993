"""One source, several references: what the served inversion cache saves on repeated edits of a source.

Two servers over the same checkpoint, one with the x_T cache (the default) and one without
(`xt_cache_mb` 0), get the same sequence, one request at a time: for each of --sources sources, an edit
with each of --references references. Records the first edit of a source and the repeats (medians over
sources) per server, and the repeat's speed-up over the first, in bench/results/xt_cache.jsonl. The server
without the cache also runs the explicit pair: `client.invert` once per source, then `edit_inverted` for each
reference (the first edit counts both calls).
    python bench/xt_cache.py [--checkpoint checkpoints/tiny32] [--sources 4] [--references 5] [--steps 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
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

    def edit(client: Client, source: np.ndarray) -> Callable[[np.ndarray], object]:
        return lambda reference: client.edit(source[None], reference[None], ["pose"], steps=args.steps)

    def explicit(client: Client, source: np.ndarray) -> Callable[[np.ndarray], object]:
        inversion = client.invert(source[None], steps=args.steps)
        return lambda reference: client.edit_inverted(inversion, reference[None], ["pose"])

    records = []
    servers = {"cache": {"": edit}, "no cache": {"": edit, ", invert + edit_inverted": explicit}}
    for server_mode, ways in servers.items():
        repository = build_repository(args.checkpoint, work / server_mode.replace(" ", "-"))
        if server_mode == "no cache":
            without_cache(repository)
        ports = {f"{k}_port": free_port() for k in ("grpc", "http", "metrics")}
        work_dir = work / f"triton-{server_mode.replace(' ', '-')}"
        with (
            TritonServer(repository, None, work_dir=work_dir, **ports) as server,
            Client(server.url) as client,
        ):
            client.edit(references[:1], references[1:2], ["pose"], steps=args.steps)  # warm-up
            for suffix, way in ways.items():
                mode, first, repeat = server_mode + suffix, [], []
                for source in sources:
                    start = time.perf_counter()
                    send = way(client, source)  # the explicit pair inverts here: part of the first edit
                    for i, reference in enumerate(references):
                        send(reference)
                        (first if i == 0 else repeat).append(time.perf_counter() - start)
                        start = time.perf_counter()
                records += _records(mode, first, repeat, args)
    print(save(records))


def _records(mode: str, first: list[float], repeat: list[float], args: argparse.Namespace) -> list:
    f, r = statistics.median(first), statistics.median(repeat)
    print(f"{mode}: first edit {f * 1e3:.0f} ms, repeat {r * 1e3:.0f} ms, {f / r:.2f}×")
    return [
        record(
            f"Inversion cache: one source, {args.references} references, edit S={args.steps}",
            {"server": mode, "edit": which},
            {
                "median": statistics.median(seconds),
                "min": min(seconds),
                "max": max(seconds),
                "n": len(seconds),
            },
            extra={"first / repeat": f"{f / r:.2f}×"},
            notes="one request at a time over gRPC from the same machine, batch 1; medians over "
            f"{args.sources} sources",
        )
        for which, seconds in (("first edit of a source", first), ("repeat (another reference)", repeat))
    ]


if __name__ == "__main__":
    main()
