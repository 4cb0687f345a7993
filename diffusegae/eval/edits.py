"""Edit accuracy: the attribute oracle reads edit and recombine outputs of held-out (test-split) images.

edit(source, reference, swap=[k]): the output should show the reference's value of k ("took") and the
source's values of every other attribute ("kept"). Sources and references differ in every attribute, so
each outcome is unambiguous. recombine({a: image_a, ...}): attribute a should take image_a's value; the
images differ pairwise in every attribute.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from diffusegae.data import AttributeDataset
from diffusegae.engines.pipeline import Pipeline
from diffusegae.eval.oracle import AttributeOracle
from diffusegae.eval.reconstruction import batches
from diffusegae.images import to_model, to_uint8

_MAX_TRIES = 10_000


def _differing(rng: np.random.Generator, combos: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
    """A random combination that differs from every row of `others` in every attribute."""
    for _ in range(_MAX_TRIES):
        pick = combos[rng.integers(len(combos))]
        if all((pick != o).all() for o in others):
            return pick
    raise ValueError("the test split has no combination differing in every attribute from the others")


def sample_groups(
    dataset: AttributeDataset, n: int, size: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """`size` lists of n test-split (values [n,A], uint8 images [n,H,W,3]); row i of each list differs from
    row i of the others in every attribute."""
    combos = dataset.split_array("test")
    rng = np.random.default_rng([seed, 0xED175])
    rows: list[list[np.ndarray]] = []
    for _ in range(n):
        group: list[np.ndarray] = []
        for _ in range(size):
            group.append(_differing(rng, combos, group))
        rows.append(group)
    out = []
    for g in range(size):
        values = np.stack([row[g] for row in rows])
        out.append((values, dataset.batch(values, rng.integers(0, 2**31 - 1, size=n).tolist())))
    return out


def edit_accuracy(
    pipe: Pipeline,
    oracle: AttributeOracle,
    dataset: AttributeDataset,
    n: int,
    steps: int,
    seed: int = 0,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Per swapped attribute k: took (k shows the reference's value), kept (mean over the other attributes of
    showing the source's value), kept_per_attribute, all_correct, unchanged (k still shows the source's)."""
    names = dataset.attribute_names
    (src_vals, src_imgs), (ref_vals, ref_imgs) = sample_groups(dataset, n, 2, seed)
    src, ref = to_model(src_imgs), to_model(ref_imgs)
    results: dict[str, Any] = {}
    for k, name in enumerate(names):
        start = time.perf_counter()
        out = np.concatenate(
            [pipe.edit(src[p], ref[p], swap=[name], steps=steps) for p in batches(n, batch_size)]
        )
        pred = oracle.predict(to_uint8(out))
        intended = src_vals.copy()
        intended[:, k] = ref_vals[:, k]
        correct = pred == intended
        others = [j for j in range(len(names)) if j != k]
        results[name] = {
            "took": float(correct[:, k].mean()),
            "kept": float(correct[:, others].mean()),
            "kept_per_attribute": {names[j]: float(correct[:, j].mean()) for j in others},
            "all_correct": float(correct.all(axis=1).mean()),
            "unchanged": float((pred[:, k] == src_vals[:, k]).mean()),
            "seconds": round(time.perf_counter() - start, 2),
        }
    return {"images": n, "steps": steps, "swap": results}


def recombine_accuracy(
    pipe: Pipeline,
    oracle: AttributeOracle,
    dataset: AttributeDataset,
    n: int,
    steps: int,
    seed: int = 0,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Per attribute: the fraction of recombined outputs showing that attribute's donor value; all_correct."""
    names = dataset.attribute_names
    groups = sample_groups(dataset, n, len(names), seed + 1)
    donors = {name: to_model(images) for name, (_, images) in zip(names, groups, strict=True)}
    intended = np.stack([values[:, j] for j, (values, _) in enumerate(groups)], axis=1)
    start = time.perf_counter()
    out = np.concatenate(
        [
            pipe.recombine({a: x[p] for a, x in donors.items()}, steps=steps, seed=seed + b)
            for b, p in enumerate(batches(n, batch_size))
        ]
    )
    correct = oracle.predict(to_uint8(out)) == intended
    return {
        "images": n,
        "steps": steps,
        "accuracy": {name: float(correct[:, j].mean()) for j, name in enumerate(names)},
        "all_correct": float(correct.all(axis=1).mean()),
        "seconds": round(time.perf_counter() - start, 2),
    }


def reconstruction_accuracy(
    oracle: AttributeOracle, values: np.ndarray, outputs: dict[str, np.ndarray], names: tuple[str, ...]
) -> dict[str, Any]:
    """The oracle on plain reconstructions (no GAE) of images with known values, per x_T mode: the ceiling
    for "kept" (inferred x_T, like edit) and for recombine (random x_T)."""
    out = {}
    for mode, recon in outputs.items():
        correct = oracle.predict(to_uint8(recon)) == values
        out[mode] = {
            "accuracy": {name: float(correct[:, j].mean()) for j, name in enumerate(names)},
            "all_correct": float(correct.all(axis=1).mean()),
        }
    return out
