"""The in-process demo: dataset images → reconstruct, edit, recombine, interpolate → one labelled PNG grid.

(The served demo — the same ops through the Triton server over gRPC — replaces this once the server lands.)
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from diffusegae.data import AttributeDataset
from diffusegae.engines.pipeline import Pipeline
from diffusegae.images import make_grid, save_png, to_model, to_uint8


def demo_images(pipe: Pipeline, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` held-out dataset images and one reference image, at the checkpoint's resolution."""
    ds = AttributeDataset(resolution=pipe.config.image_size, seed=0)
    test = ds.split("test")
    rng = np.random.default_rng(seed)
    picks = [test[i] for i in rng.choice(len(test), size=count + 1, replace=False)]
    images = ds.batch(picks, seeds=list(range(seed, seed + count + 1)))
    return images[:count], images[count:]


def run_demo(pipe: Pipeline, out: str | Path, steps: int = 20, count: int = 4, seed: int = 0) -> Path:
    sources_u8, reference_u8 = demo_images(pipe, count, seed)
    sources, reference = to_model(sources_u8), to_model(reference_u8)
    rows = {"source": sources_u8, "reference": np.repeat(reference_u8, count, axis=0)}
    started = time.perf_counter()
    rows["reconstruct"] = to_uint8(pipe.reconstruct(sources, steps=steps))
    if pipe.config.gae is not None:
        for name in pipe.config.gae.attribute_names:
            rows[f"swap {name}"] = to_uint8(pipe.edit(sources, reference, swap=[name], steps=steps))
        parts = {name: np.roll(sources, k, axis=0) for k, name in enumerate(pipe.config.gae.attribute_names)}
        rows["recombine"] = to_uint8(pipe.recombine(parts, steps=steps, seed=seed))
    rows["interp 0.5"] = to_uint8(pipe.interpolate(sources, np.roll(sources, 1, axis=0), 0.5, steps=steps))
    elapsed = time.perf_counter() - started
    grid = make_grid(list(rows.values()), row_labels=list(rows), scale=max(1, 96 // pipe.config.image_size))
    path = save_png(grid, out)
    print(
        f"demo: {pipe.config.name} ({pipe.config.kind}), {count} images, S={steps}: "
        f"{len(rows) - 2} ops in {elapsed:.1f} s → {path}"
    )
    return path
