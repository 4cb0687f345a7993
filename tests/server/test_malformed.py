"""Malformed requests get a clear INVALID_ARG error; good requests batched with them still succeed.

Triton rejects wrong dtypes, ranks, batch sizes and missing inputs before a model runs (its messages name
the expected form); the models reject wrong values, each request on its own.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from diffusegae.client import Client, ServerError
from diffusegae.images import to_model, to_uint8
from diffusegae.server.specs import (
    ALPHA,
    ATTRIBUTES,
    IMAGE,
    IMAGE_A,
    IMAGE_B,
    REFERENCE,
    SEED,
    SOURCE,
    STEPS,
    named,
)

from .serving import assert_same_images, dataset_images

IMG = dataset_images(2, seed=3)


def u8(*shape):
    return np.zeros(shape, np.uint8)


def steps(s, n=1, dtype=np.int32):
    return np.full((n, 1), s, dtype)


def names(*items, n=1):
    return np.array([list(items)] * n, dtype=object).reshape(n, len(items))


def alpha(value, n=1, dtype=np.float32):
    return np.full((n, 1), value, dtype)


def reconstruct(**changes):
    return "reconstruct", {IMAGE: IMG[:1], STEPS: steps(2)} | changes


def edit_inverted(**changes):
    rows = len(changes.get("x_t", [0]))
    return "edit_inverted", {
        "z_sem": np.zeros((rows, 512), np.float32),
        "x_t": np.zeros((rows, 3, 32, 32), np.float32),
        REFERENCE: np.repeat(IMG[1:], rows, axis=0),
        ATTRIBUTES: names(b"pose", n=rows),
        STEPS: steps(2, rows),
    } | changes


def _nan_row(x):
    x[-1, 0, 0, 0] = np.nan
    return x


def edit(**changes):
    return "edit", {
        SOURCE: IMG[:1],
        REFERENCE: IMG[1:],
        ATTRIBUTES: names(b"pose"),
        STEPS: steps(2),
    } | changes


def recombine(**changes):
    parts = {named(IMAGE, a): IMG[:1] for a in ("identity", "background", "pose")}
    return "recombine", parts | {SEED: steps(0, dtype=np.int64), STEPS: steps(2)} | changes


def interpolate(**changes):
    return "interpolate", {IMAGE_A: IMG[:1], IMAGE_B: IMG[1:], ALPHA: alpha(0.5), STEPS: steps(2)} | changes


def without(call, name):
    model, inputs = call
    return model, {k: v for k, v in inputs.items() if k != name}


MALFORMED = {
    # images
    "float image": (reconstruct(image=IMG[:1].astype(np.float32)), "expects 'UINT8'"),
    "int8 image": (reconstruct(image=IMG[:1].astype(np.int8)), "expects 'UINT8'"),
    "image 64x64": (reconstruct(image=u8(1, 64, 64, 3)), "resize to 32×32"),
    "image 16x32": (reconstruct(image=u8(1, 16, 32, 3)), "resize to 32×32"),
    "RGBA image": (reconstruct(image=u8(1, 32, 32, 4)), "convert to RGB"),
    "NCHW image": (reconstruct(image=u8(1, 3, 32, 32)), "convert to RGB, batch first"),
    "2-D image": (reconstruct(image=u8(32, 32), steps=steps(2, 32)), "unexpected shape for input 'image'"),
    "5-D image": (reconstruct(image=u8(1, 1, 32, 32, 3)), "unexpected shape for input 'image'"),
    "batch over 64": (reconstruct(image=u8(65, 32, 32, 3), steps=steps(2, 65)), "batch-size must be <= 64"),
    "reference wrong size": (edit(reference=u8(1, 16, 16, 3)), "reference must be uint8 [B,32,32,3] RGB"),
    # steps
    "steps 0": (reconstruct(steps=steps(0)), "steps must be in 1..1000, got 0"),
    "steps 1001": (reconstruct(steps=steps(1001)), "steps must be in 1..1000, got 1001"),
    "steps -5": (reconstruct(steps=steps(-5)), "steps must be in 1..1000, got -5"),
    "steps 700 (no stride)": (reconstruct(steps=steps(700)), "cannot be spaced with an integer stride"),
    "steps as float": (reconstruct(steps=steps(2, dtype=np.float32)), "expects 'INT32'"),
    "steps as int64": (reconstruct(steps=steps(2, dtype=np.int64)), "expects 'INT32'"),
    "steps two per row": (
        reconstruct(steps=np.full((1, 2), 2, np.int32)),
        "unexpected shape for input 'steps'",
    ),
    "steps rows differ": (reconstruct(steps=steps(2, n=2)), "batch size does not match"),
    "missing steps": (without(reconstruct(), STEPS), "missing required input"),
    # edit
    "unknown attribute": (edit(attributes=names(b"hair")), "unknown attribute 'hair'; choose from"),
    "empty attribute list": (edit(attributes=names()), "name at least one attribute"),
    "duplicate attributes": (edit(attributes=names(b"pose", b"pose")), "'pose' is named twice"),
    "attribute not UTF-8": (edit(attributes=names(b"\xffpose")), "must be UTF-8 text"),
    "source/reference batch mismatch": (edit(reference=IMG), "batch size does not match"),
    "missing attributes": (without(edit(), ATTRIBUTES), "missing required input"),
    "attributes as int": (edit(attributes=np.zeros((1, 1), np.int32)), "expects 'BYTES'"),
    # recombine
    "negative seed": (recombine(seed=steps(-1, dtype=np.int64)), "seed must be an integer in 0.."),
    "seed as float": (recombine(seed=alpha(1.0)), "expects 'INT64'"),
    "missing attribute image": (without(recombine(), named(IMAGE, "pose")), "missing required input"),
    # interpolate
    "NaN alpha": (interpolate(alpha=alpha(np.nan)), "alpha must be a finite number"),
    "inf alpha": (interpolate(alpha=alpha(np.inf)), "alpha must be a finite number"),
    "-inf alpha": (interpolate(alpha=alpha(-np.inf)), "alpha must be a finite number"),
    "alpha as float64": (interpolate(alpha=alpha(0.5, dtype=np.float64)), "expects 'FP32'"),
    "interpolate unknown attribute": (interpolate(attributes=names(b"color")), "unknown attribute 'color'"),
    "interpolate empty attributes": (interpolate(attributes=names()), "name at least one attribute"),
    # anything else
    "unknown input": (reconstruct(color=u8(1, 1)), "unexpected inference input 'color'"),
    "unknown model": (("rotate", {IMAGE: IMG[:1]}), "'rotate'"),
    "NaN in x_t (decode)": (
        (
            "decode",
            {
                "x_t": np.full((1, 3, 32, 32), np.nan, np.float32),
                "z_sem": np.zeros((1, 512), np.float32),
                STEPS: steps(2),
            },
        ),
        "x_t contains NaN or infinity",
    ),
    "inf in z_sem (invert)": (
        (
            "invert",
            {
                "x0": np.zeros((1, 3, 32, 32), np.float32),
                "z_sem": np.full((1, 512), np.inf, np.float32),
                STEPS: steps(2),
            },
        ),
        "z_sem contains NaN or infinity",
    ),
    "unknown sampler": (
        reconstruct(sampler=names(b"euler")),
        "unknown sampler 'euler'; choose from ddim, dpmpp2m",
    ),
    "two samplers per image": (edit(sampler=names(b"ddim", b"ddim")), "unexpected shape for input 'sampler'"),
    "unknown sampler (decode)": (
        (
            "decode",
            {
                "x_t": np.zeros((1, 3, 32, 32), np.float32),
                "z_sem": np.zeros((1, 512), np.float32),
                STEPS: steps(2),
                "sampler": names(b"plms"),
            },
        ),
        "unknown sampler 'plms'",
    ),
    "NaN in an inversion's x_T": (
        edit_inverted(x_t=_nan_row(np.zeros((2, 3, 32, 32), np.float32))),
        "x_t contains NaN",
    ),
    "z_sem of another width": (
        edit_inverted(z_sem=np.zeros((1, 100), np.float32)),
        "unexpected shape for input 'z_sem'",
    ),
    "timestep 1000 (unet)": (
        (
            "unet",
            {
                "x_t": np.zeros((1, 3, 32, 32), np.float32),
                "t": np.array([[1000]]),
                "z_sem": np.zeros((1, 512), np.float32),
            },
        ),
        "t must be in 0..999",
    ),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_malformed_request_gets_a_clear_error(client, case):
    (model, inputs), phrase = MALFORMED[case]
    output = {"decode": "x0", "invert": "x_t", "unet": "eps"}.get(model, "output")
    with pytest.raises(ServerError) as info:
        client.infer(model, inputs, output)
    assert info.value.status in ("INVALID_ARGUMENT", "NOT_FOUND" if model == "rotate" else "-"), info.value
    assert phrase in info.value.message


def test_good_requests_in_a_batch_with_bad_ones_succeed(server, pipeline):
    """Concurrent good and bad requests share the loop models' batches; only the bad ones fail."""
    images = dataset_images(4, seed=4)
    jobs = [("good", 0), ("bad", 700), ("good", 1), ("bad", 0), ("good", 2), ("bad", 1001), ("good", 3)]

    def send(job):
        kind, value = job
        with Client(server.url, timeout=120) as c:
            try:
                if kind == "good":
                    return c.reconstruct(images[value], steps=3)
                return c.reconstruct(images[0], steps=value)
            except ServerError as err:
                return err

    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(send, jobs))
    want = to_uint8(pipeline.reconstruct(to_model(images), steps=3))
    for (kind, value), result in zip(jobs, results, strict=True):
        if kind == "good":
            assert_same_images(result, want[value : value + 1])
        else:
            assert isinstance(result, ServerError) and result.status == "INVALID_ARGUMENT", result
            assert "steps" in result.message


def test_the_server_still_answers_after_the_bad_requests(client, pipeline):
    assert client.is_ready()
    assert_same_images(
        client.reconstruct(IMG, steps=2), to_uint8(pipeline.reconstruct(to_model(IMG), steps=2))
    )
