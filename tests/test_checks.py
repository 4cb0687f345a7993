"""The shared request checks and the mixed-step DDIM loop, without a server."""

from __future__ import annotations

import numpy as np
import pytest

from diffusegae import checks, preset
from diffusegae.checks import RequestError
from diffusegae.diffusion import valid_step_counts
from diffusegae.engines import Pipeline, ddim_loop

from .conftest import OracleEngine

GAE = preset("tiny32").gae


@pytest.mark.parametrize(
    ("value", "phrase"),
    [
        (0, "steps must be in 1..1000, got 0"),
        (1001, "steps must be in 1..1000, got 1001"),
        (-3, "steps must be in 1..1000"),
        (700, "cannot be spaced with an integer stride"),
        (999, "use 500 or 1000 instead"),
    ],
)
def test_bad_step_counts_say_what_to_send(value, phrase):
    with pytest.raises(RequestError, match=phrase):
        checks.steps(np.array([[20], [value]], np.int32), 1000)


def test_every_valid_step_count_passes():
    counts = np.array(valid_step_counts(), np.int32)[:, None]
    np.testing.assert_array_equal(checks.steps(counts, 1000), counts[:, 0])


@pytest.mark.parametrize(
    ("names", "phrase"),
    [
        ([b"hair"], "unknown attribute 'hair'; choose from identity, background, pose"),
        ([], "name at least one attribute of identity, background, pose"),
        ([b"pose", b"pose"], "'pose' is named twice"),
        ([b"\xff"], "UTF-8"),
    ],
)
def test_bad_attribute_names(names, phrase):
    with pytest.raises(RequestError, match=phrase):
        checks.attribute_mask(np.array([names], dtype=object).reshape(1, len(names)), GAE)


def test_attribute_mask_marks_the_named_chunks():
    mask = checks.attribute_mask(np.array([[b"background"], [b"identity"]], dtype=object), GAE)
    assert mask.shape == (2, 100)
    assert mask[0, 60:80].all() and mask[0].sum() == 20
    assert mask[1, :60].all() and mask[1].sum() == 60


@pytest.mark.parametrize("alpha", [np.nan, np.inf, -np.inf])
def test_alpha_must_be_finite(alpha):
    with pytest.raises(RequestError, match="alpha must be a finite number"):
        checks.alphas(np.array([[0.5], [alpha]], np.float32))


def test_seed_must_not_be_negative():
    with pytest.raises(RequestError, match=r"seed must be an integer in 0\.\.9223372036854775807, got -1"):
        checks.seeds(np.array([[0], [-1]], np.int64))


@pytest.mark.parametrize(
    ("shape", "phrase"),
    [((1, 64, 64, 3), "resize to 32×32"), ((1, 32, 32, 4), "convert to RGB"), ((1, 3, 32, 32), "got shape")],
)
def test_images_for_the_checkpoint(shape, phrase):
    with pytest.raises(RequestError, match=phrase):
        checks.images("image", np.zeros(shape, np.uint8), 32, "tiny32")


def test_finite_names_the_rows():
    x = np.zeros((7, 4), np.float32)
    x[[1, 6], 0] = np.inf
    with pytest.raises(RequestError, match=r"x_t contains NaN or infinity \(rows 1, 6\)"):
        checks.finite("x_t", x)


@pytest.fixture(scope="module")
def oracle():
    x0 = np.random.default_rng(0).uniform(-1, 1, (4, 3, 32, 32)).astype(np.float32)
    return OracleEngine(preset("tiny32"), x0), x0


def test_loop_with_one_step_count_is_the_pipeline_loop(oracle):
    engine, x0 = oracle
    pipe, z = Pipeline(engine), np.zeros((4, 512), np.float32)
    x_T = ddim_loop.run(engine, x0, z, np.full(4, 10), inverse=True)
    np.testing.assert_array_equal(x_T, pipe.invert(x0, z, 10))
    np.testing.assert_array_equal(
        ddim_loop.run(engine, x_T, z, np.full(4, 10), inverse=False), pipe.decode(x_T, z, 10)
    )


def test_each_sample_follows_its_own_step_count(oracle):
    engine, x0 = oracle
    steps = np.array([2, 10, 5, 10])
    z = np.zeros((4, 512), np.float32)
    seen = []

    class Recording(OracleEngine):
        def eps(self, x_t, t, z_sem):
            rows = np.flatnonzero(steps > len(seen))  # the samples still stepping at this iteration
            seen.append(len(x_t))
            return OracleEngine(engine.config, engine.x0[rows]).eps(x_t, t, z_sem)

    x_T = ddim_loop.run(Recording(engine.config, x0), x0, z, steps, inverse=True)
    assert seen == [4, 4, 3, 3, 3, 2, 2, 2, 2, 2]  # 10 eps calls; finished samples drop out
    for i, s in enumerate(steps):
        want = Pipeline(OracleEngine(engine.config, x0[i : i + 1])).invert(x0[i : i + 1], z[:1], int(s))
        np.testing.assert_allclose(x_T[i : i + 1], want, rtol=0, atol=1e-6)
