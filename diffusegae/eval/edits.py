"""Edit accuracy: the attribute oracle reads edit and recombine outputs of held-out (test-split) images.

edit(source, reference, swap=[k]): the output should show the reference's value of k ("took") and the
source's values of every other attribute ("kept"). Sources and references differ in every attribute, so
each outcome is unambiguous. recombine({a: image_a, ...}): attribute a should take image_a's value; the
images differ pairwise in every attribute. interpolate(a, b, 0.5, attributes=[k]): every attribute but k
should keep a's value ("kept").

Where an edit fails, two diagnostics say which half of the model to blame. The dataset renders the true
edited image (the source's values with k from the reference, the source's nuisance), so its z_sem is the
code a perfect GAE swap would produce: "code error" is how far the GAE's swapped code lands from it
(‖z_edit − z_true‖ / ‖z_source − z_true‖: 0 = the true code, 1 = no closer than the unedited source), and
"took (true code)" decodes the source's x_T with z_true — the most any GAE could make the decoder show.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

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


class HeldOut(NamedTuple):
    """n held-out images with the values and nuisance seeds that rendered them."""

    values: np.ndarray  # int64 [n, A]
    images: np.ndarray  # uint8 [n, H, W, 3]
    seeds: list[int]  # the nuisance seed of each image


def sample_groups(dataset: AttributeDataset, n: int, size: int, seed: int) -> list[HeldOut]:
    """`size` groups of n test-split images; row i of each group differs from row i of the others in every
    attribute."""
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
        seeds = rng.integers(0, 2**31 - 1, size=n).tolist()
        out.append(HeldOut(values, dataset.batch(values, seeds), seeds))
    return out


def intended_values(source: HeldOut, reference: HeldOut, k: int) -> np.ndarray:
    """int [n, A]: what swapping attribute k from the references into the sources should show."""
    intended = source.values.copy()
    intended[:, k] = reference.values[:, k]
    return intended


def swap_scores(predicted: np.ndarray, intended: np.ndarray, k: int) -> dict[str, float]:
    """took (attribute k reads as intended) and kept (mean over the other attributes) of a swap of k."""
    others = [j for j in range(intended.shape[1]) if j != k]
    correct = predicted == intended
    return {"took": float(correct[:, k].mean()), "kept": float(correct[:, others].mean())}


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
    showing the source's value), kept_per_attribute, all_correct, unchanged (k still shows the source's),
    and the diagnostics of the module docstring: code_error and took_true_code."""
    names = dataset.attribute_names
    source, reference = sample_groups(dataset, n, 2, seed)
    src, ref = to_model(source.images), to_model(reference.images)
    parts = list(batches(n, batch_size))
    # pipe.edit taken apart, batch by batch, so that the three swaps share one encoding and one inversion:
    # the same calls edit makes (tests/engines/test_pipeline.py checks that edit is exactly this).
    z_src, z_ref, x_T = [], [], []
    for p in parts:
        z = pipe.encode(np.concatenate([src[p], ref[p]]))
        z_src.append(z[: len(z) // 2])
        z_ref.append(z[len(z) // 2 :])
        x_T.append(pipe.invert(src[p], z_src[-1], steps))
    results: dict[str, Any] = {}
    for k, name in enumerate(names):
        start = time.perf_counter()
        intended = intended_values(source, reference, k)
        # the true edited image, for the diagnostics: rendered with the source's nuisance
        true_images = to_model(dataset.batch(intended, source.seeds))
        z_edit, out, z_true, from_true = [], [], [], []
        for i, p in enumerate(parts):
            z_edit.append(pipe.swap_codes(z_src[i], z_ref[i], [name]))
            out.append(pipe.decode(x_T[i], z_edit[-1], steps))
            z_true.append(pipe.encode(true_images[p]))
            from_true.append(pipe.decode(x_T[i], z_true[-1], steps))
        pred = oracle.predict(to_uint8(np.concatenate(out)))
        correct = pred == intended
        others = [j for j in range(len(names)) if j != k]
        true_took = oracle.predict(to_uint8(np.concatenate(from_true)))[:, k] == intended[:, k]
        results[name] = {
            **swap_scores(pred, intended, k),
            "kept_per_attribute": {names[j]: float(correct[:, j].mean()) for j in others},
            "all_correct": float(correct.all(axis=1).mean()),
            "unchanged": float((pred[:, k] == source.values[:, k]).mean()),
            "code_error": _relative_distance(
                np.concatenate(z_edit), np.concatenate(z_true), np.concatenate(z_src)
            ),
            "took_true_code": float(true_took.mean()),
            "seconds": round(time.perf_counter() - start, 2),
        }
    return {"images": n, "steps": steps, "swap": results}


def code_errors(pipe: Pipeline, dataset: AttributeDataset, n: int, seed: int = 0) -> dict[str, float | None]:
    """The GAE half of edit accuracy without a single DDIM step: per swapped attribute, the code error of
    the module docstring on the eval's n held-out pairs (the same pairs as `edit_accuracy` for one seed)."""
    source, reference = sample_groups(dataset, n, 2, seed)
    z_src, z_ref = pipe.encode(to_model(source.images)), pipe.encode(to_model(reference.images))
    out: dict[str, float | None] = {}
    for k, name in enumerate(dataset.attribute_names):
        intended = intended_values(source, reference, k)
        z_true = pipe.encode(to_model(dataset.batch(intended, source.seeds)))
        out[name] = _relative_distance(pipe.swap_codes(z_src, z_ref, [name]), z_true, z_src)
    return out


def _relative_distance(z: np.ndarray, target: np.ndarray, baseline: np.ndarray) -> float | None:
    """mean ‖z − target‖ / mean ‖baseline − target‖ over rows; None when the baseline is the target."""
    miss = float(np.linalg.norm(z - target, axis=1).mean())
    base = float(np.linalg.norm(baseline - target, axis=1).mean())
    return miss / base if base > 0 else None


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
    donors = {name: to_model(group.images) for name, group in zip(names, groups, strict=True)}
    intended = np.stack([group.values[:, j] for j, group in enumerate(groups)], axis=1)
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


def interpolation_accuracy(
    pipe: Pipeline,
    oracle: AttributeOracle,
    dataset: AttributeDataset,
    n: int,
    steps: int,
    seed: int = 0,
    batch_size: int = 32,
    alpha: float = 0.5,
) -> dict[str, Any]:
    """Per attribute k: interpolate only k from a toward b by alpha (inferred x_T, slerped); "kept" is the
    fraction of the other attributes that still show a's value (a and b differ in every attribute), and
    kept_per_attribute says which of them moved."""
    names = dataset.attribute_names
    a, b = sample_groups(dataset, n, 2, seed + 2)
    xa, xb = to_model(a.images), to_model(b.images)
    start = time.perf_counter()
    results = {}
    for j, name in enumerate(names):
        out = np.concatenate(
            [
                pipe.interpolate(xa[p], xb[p], alpha, attributes=[name], steps=steps)
                for p in batches(n, batch_size)
            ]
        )
        predicted = oracle.predict(to_uint8(out))
        others = [i for i in range(len(names)) if i != j]
        kept = predicted == a.values
        results[name] = {
            "kept": float(kept[:, others].mean()),
            "kept_per_attribute": {names[i]: float(kept[:, i].mean()) for i in others},
            "at_a": float((predicted[:, j] == a.values[:, j]).mean()),
            "at_b": float((predicted[:, j] == b.values[:, j]).mean()),
        }
    return {
        "images": n,
        "steps": steps,
        "alpha": alpha,
        "attribute": results,
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
