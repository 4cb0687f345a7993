"""The demo: held-out dataset images → reconstruct, edit, recombine, interpolate → one labelled PNG grid.

By default every op goes through the real Triton server (started on free loopback ports over the checked-in
model repository, stopped at the end) and the gRPC client. `--in-process` runs the same ops through the
pipeline instead, with the same uint8 interface, for a machine without the server.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from diffusegae.config import ModelConfig
from diffusegae.data import AttributeDataset
from diffusegae.images import make_grid, save_png, to_model, to_uint8


class InProcessOps:
    """The client's ops (uint8 NHWC in and out) over an in-process pipeline."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe

    def reconstruct(self, images: np.ndarray, steps: int = 20) -> np.ndarray:
        return to_uint8(self.pipe.reconstruct(to_model(images), steps=steps))

    def edit(
        self, source: np.ndarray, reference: np.ndarray, swap: Sequence[str], steps: int = 20
    ) -> np.ndarray:
        return to_uint8(self.pipe.edit(to_model(source), to_model(reference), swap=swap, steps=steps))

    def recombine(self, parts: Mapping[str, np.ndarray], steps: int = 20, seed: int = 0) -> np.ndarray:
        model_parts = {name: to_model(img) for name, img in parts.items()}
        return to_uint8(self.pipe.recombine(model_parts, steps=steps, seed=seed))

    def interpolate(
        self,
        a: np.ndarray,
        b: np.ndarray,
        alpha: float,
        attributes: Sequence[str] | None = None,
        steps: int = 20,
    ) -> np.ndarray:
        return to_uint8(self.pipe.interpolate(to_model(a), to_model(b), alpha, attributes, steps=steps))


def demo_images(config: ModelConfig, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` held-out dataset images and one reference image, at the checkpoint's resolution."""
    ds = AttributeDataset(resolution=config.image_size, seed=0)
    test = ds.split("test")
    rng = np.random.default_rng(seed)
    picks = [test[i] for i in rng.choice(len(test), size=count + 1, replace=False)]
    images = ds.batch(picks, seeds=list(range(seed, seed + count + 1)))
    return images[:count], images[count:]


def run_demo(
    ops: Any, config: ModelConfig, out: str | Path, steps: int = 20, count: int = 4, seed: int = 0
) -> Path:
    """Run every op through `ops` (a Client or InProcessOps) and write the labelled grid to `out`."""
    sources, reference = demo_images(config, count, seed)
    rows = {"source": sources, "reference": np.repeat(reference, count, axis=0)}
    started = time.perf_counter()
    rows["reconstruct"] = ops.reconstruct(sources, steps=steps)
    if config.gae is not None:
        for name in config.gae.attribute_names:
            rows[f"swap {name}"] = ops.edit(sources, reference, swap=[name], steps=steps)
        parts = {name: np.roll(sources, k, axis=0) for k, name in enumerate(config.gae.attribute_names)}
        rows["recombine"] = ops.recombine(parts, steps=steps, seed=seed)
    rows["interp 0.5"] = ops.interpolate(sources, np.roll(sources, 1, axis=0), 0.5, steps=steps)
    elapsed = time.perf_counter() - started
    grid = make_grid(list(rows.values()), row_labels=list(rows), scale=max(1, 96 // config.image_size))
    path = save_png(grid, out)
    print(
        f"demo: {config.name} ({config.kind}), {count} images, S={steps}: "
        f"{len(rows) - 2} ops in {elapsed:.1f} s via {type(ops).__name__} → {path}"
    )
    return path


def served_demo(repository: str | Path, out: str | Path, steps: int, count: int, seed: int) -> Path:
    """Start the bundled server on free loopback ports, run the demo over gRPC, stop the server."""
    from diffusegae.client import Client
    from diffusegae.server.launcher import TritonServer, free_port
    from diffusegae.server.repository import repository_checkpoint

    checkpoint = repository_checkpoint(repository)
    if checkpoint is None:
        raise FileNotFoundError(f"{repository} names no checkpoint: build it with `diffusegae build-repo`")
    from diffusegae.checkpoint import read_config

    config = read_config(checkpoint)
    ports = {name: free_port() for name in ("grpc_port", "http_port", "metrics_port")}
    started = time.perf_counter()
    with TritonServer(repository, **ports) as server:
        print(
            f"demo: tritonserver {server.pid} ready at {server.url} in {time.perf_counter() - started:.1f} s"
        )
        return run_demo(Client(server.url), config, out, steps=steps, count=count, seed=seed)
