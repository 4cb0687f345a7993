"""What the benchmark sends: one request of an op, built by the client's own request builders.

Images are held-out images of the procedural dataset at the served checkpoint's size; the checkpoint's
config (size, attribute names) is read from the server (the `prepare` model's parameters), so the same
requests work against any repository this project builds. The perf_analyzer input data is made from the
same requests (diffusegae.benchmark.perf_analyzer).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from diffusegae.client import calls
from diffusegae.client.calls import Call
from diffusegae.config import ModelConfig
from diffusegae.server.specs import (
    EDIT,
    EDIT_INVERTED,
    INTERPOLATE,
    INVERSION,
    MANIPULATE,
    PARAM_DIRECTIONS,
    PARAM_MODEL_CONFIG,
    PREPARE,
    RECOMBINE,
    RECONSTRUCT,
    code_inputs,
)

OPS = (EDIT, RECONSTRUCT, RECOMBINE, INTERPOLATE, MANIPULATE, INVERSION, EDIT_INVERTED)
GAE_OPS = (EDIT, RECOMBINE, EDIT_INVERTED)
MANIPULATE_AMP = 0.3


class BenchError(ValueError):
    """The benchmark cannot run as asked (nothing was measured): the message says what to change."""


def check_op(op: str, config: ModelConfig, directions: tuple[str, ...] = ()) -> None:
    if op not in OPS:
        raise BenchError(f"unknown op {op!r}; choose one of {', '.join(OPS)}")
    if op == MANIPULATE and not directions:
        raise BenchError(
            f"{op} needs a checkpoint with attribute directions (`diffusegae import-diffae --classifier`); "
            f"{config.name} has none"
        )
    if op in GAE_OPS and config.gae is None:
        raise BenchError(
            f"{op} needs a checkpoint with a GAE; {config.name} is a plain Diff-AE: "
            f"choose {RECONSTRUCT} or {INTERPOLATE}"
        )


def config_from_model_config(model_config: dict[str, Any]) -> tuple[ModelConfig, tuple[str, ...]]:
    """The checkpoint config and direction names that a served `prepare` model carries as parameters."""
    parameters = model_config.get("config", model_config).get("parameters", {})
    if PARAM_MODEL_CONFIG not in parameters:
        raise BenchError(
            f"the server's {PREPARE} model has no {PARAM_MODEL_CONFIG} parameter: is it a diffusegae "
            "repository?"
        )
    config = ModelConfig.from_dict(json.loads(parameters[PARAM_MODEL_CONFIG]["string_value"]))
    directions = json.loads(parameters.get(PARAM_DIRECTIONS, {}).get("string_value", "[]"))
    return config, tuple(directions)


def dataset_images(config: ModelConfig, count: int, seed: int = 0) -> np.ndarray:
    """`count` held-out dataset images, uint8 [count, size, size, 3], different attribute values."""
    from diffusegae.data import AttributeDataset

    ds = AttributeDataset(resolution=config.image_size, seed=0)
    test = ds.split("test")
    rng = np.random.default_rng(seed)
    picks = [test[int(i)] for i in rng.integers(len(test), size=count)]
    return ds.batch(picks, seeds=[seed * 1000 + i for i in range(count)])


def request(
    op: str,
    config: ModelConfig,
    batch: int = 1,
    steps: int = 20,
    seed: int = 0,
    directions: tuple[str, ...] = (),
    sampler: str | None = None,
) -> Call:
    """One request of `op` for `batch` images (edit: swap the second attribute, e.g. background;
    manipulate: the first direction by MANIPULATE_AMP); `sampler` None leaves it to the server (DDIM)."""
    check_op(op, config, directions)
    if batch < 1:
        raise BenchError(f"--batch must be at least 1, got {batch}")
    attributes = list(config.gae.attribute_names) if config.gae is not None else None
    n_images = len(attributes) if op == RECOMBINE else 2
    images = dataset_images(config, batch * n_images, seed).reshape(
        n_images, batch, config.image_size, config.image_size, 3
    )
    if op == RECONSTRUCT:
        return calls.reconstruct(images[0], steps, sampler)
    if op == MANIPULATE:
        return calls.manipulate(images[0], directions[0], MANIPULATE_AMP, steps, sampler)
    if op == EDIT:
        return calls.edit(images[0], images[1], attributes[1:2], steps, sampler)
    if op == RECOMBINE:
        return calls.recombine(dict(zip(attributes, images, strict=True)), steps, seed, sampler)
    if op == INVERSION:
        return calls.inversion(images[0], steps, sampler)
    if op == EDIT_INVERTED:  # a repeat edit: the source's inversion is what the application kept
        return calls.edit_inverted(
            _inversion(config, batch, steps, seed, sampler), images[1], attributes[1:2]
        )
    # every attribute named (what the server does when none are): the same tensors perf_analyzer sends
    return calls.interpolate(images[0], images[1], 0.5, attributes, steps, sampler)


def _inversion(
    config: ModelConfig, batch: int, steps: int, seed: int, sampler: str | None
) -> calls.Inversion:
    """A stand-in for what `inversion` answers (seeded, the right shapes): the edit's work does not depend
    on the values, so the benchmark need not run an inversion first."""
    rng = np.random.default_rng(seed)
    z_sem, x_T = (rng.standard_normal((batch, *t.shape[1:]), dtype=np.float32) for t in code_inputs(config))
    return calls.Inversion(z_sem, x_T, steps, sampler)
