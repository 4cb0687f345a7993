"""Every public op served by Triton equals the in-process Pipeline on the same checkpoint and inputs."""

from __future__ import annotations

import numpy as np
import pytest

from diffusegae.images import to_model, to_uint8

from .serving import assert_same_images, dataset_images

STEPS = 3


@pytest.fixture(scope="module")
def images():
    return dataset_images(6, seed=1)


def test_reconstruct(client, pipeline, images):
    want = to_uint8(pipeline.reconstruct(to_model(images[:2]), steps=STEPS))
    assert_same_images(client.reconstruct(images[:2], steps=STEPS), want)


@pytest.mark.parametrize("swap", [["background"], ["identity", "pose"]])
def test_edit(client, pipeline, images, swap):
    source, reference = images[:2], images[2:4]
    want = to_uint8(pipeline.edit(to_model(source), to_model(reference), swap=swap, steps=STEPS))
    assert_same_images(client.edit(source, reference, swap=swap, steps=STEPS), want)


def test_edit_with_one_reference_for_every_source(client, pipeline, images):
    source, reference = images[:3], images[5]
    want = to_uint8(pipeline.edit(to_model(source), to_model(reference), swap=["pose"], steps=STEPS))
    assert_same_images(client.edit(source, reference, swap="pose", steps=STEPS), want)


def test_an_inversion_is_edited_as_the_source_itself(client, pipeline, images):
    """invert once, edit from it with two references: each equals edit on the source image."""
    source = images[:2]
    inversion = client.invert(source, steps=STEPS)
    z_sem = pipeline.encode(to_model(source))
    np.testing.assert_allclose(inversion.z_sem, z_sem, atol=1e-4)
    np.testing.assert_allclose(inversion.x_T, pipeline.invert(to_model(source), z_sem, STEPS), atol=1e-3)
    for reference, swap in ((images[2:4], ["background"]), (images[5], ["identity", "pose"])):
        want = to_uint8(pipeline.edit(to_model(source), to_model(reference), swap=swap, steps=STEPS))
        assert_same_images(client.edit_inverted(inversion, reference, swap=swap), want)


@pytest.mark.parametrize("seed", [0, 7])
def test_recombine(client, pipeline, images, seed):
    parts = {"identity": images[:2], "background": images[2:4], "pose": images[4:6]}
    want = pipeline.recombine({k: to_model(v) for k, v in parts.items()}, steps=STEPS, seed=seed)
    assert_same_images(client.recombine(parts, steps=STEPS, seed=seed), to_uint8(want))


@pytest.mark.parametrize(("alpha", "attributes"), [(0.5, None), (0.25, ["background"]), (1.0, ["pose"])])
def test_interpolate(client, pipeline, images, alpha, attributes):
    a, b = images[:2], images[3:5]
    want = pipeline.interpolate(to_model(a), to_model(b), alpha, attributes=attributes, steps=STEPS)
    got = client.interpolate(a, b, alpha, attributes=attributes, steps=STEPS)
    assert_same_images(got, to_uint8(want))


OPS = ["reconstruct", "edit", "recombine", "interpolate"]
DPM_STEPS = 5  # at S = 3 every decode step of DPM-Solver++ is order 1 (the r >= 1/2 rule): DDIM exactly


def _op(target, op: str, images: np.ndarray, space, sampler: str):
    """The same op and inputs on the in-process pipeline (space=to_model) or the client (space=identity)."""
    a, b, c = (space(images[i : i + 2]) for i in (0, 2, 4))
    kw = {"steps": DPM_STEPS, "sampler": sampler}
    if op == "reconstruct":
        return target.reconstruct(a, **kw)
    if op == "edit":
        return target.edit(a, b, swap=["pose"], **kw)
    if op == "recombine":
        return target.recombine({"identity": a, "background": b, "pose": c}, seed=5, **kw)
    return target.interpolate(a, b, 0.5, attributes=["background"], **kw)


@pytest.mark.parametrize("op", OPS)
def test_every_op_serves_dpm_solver_as_the_pipeline_does(client, pipeline, images, op):
    want = to_uint8(_op(pipeline, op, images, to_model, "dpmpp2m"))
    got = _op(client, op, images, lambda x: x, "dpmpp2m")
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1  # ≤ 1 uint8 level
    ddim = _op(client, op, images, lambda x: x, "ddim")
    assert not np.array_equal(got, ddim)  # the sampler reached the loops


def test_outputs_depend_on_the_inputs(client, images):
    """Guards the parity tests against a server that returns the same picture whatever it is sent."""
    a = client.reconstruct(images[:1], steps=STEPS)
    b = client.reconstruct(images[1:2], steps=STEPS)
    assert not np.array_equal(a, b)
