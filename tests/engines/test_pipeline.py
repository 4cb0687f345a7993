import numpy as np
import pytest

from diffusegae import load_pipeline, preset, save_checkpoint
from diffusegae.data import AttributeDataset
from diffusegae.engines import NoGAEError, Pipeline
from diffusegae.engines.torch_engine import TorchEngine
from diffusegae.images import to_model

from ..conftest import OracleEngine

STEPS = 4


class SpyEngine:
    """Delegates to a real engine and records every z_dis handed to the GAE decoder."""

    def __init__(self, engine):
        self.inner = engine
        self.config = engine.config
        self.decoded = []

    def encode(self, x0):
        return self.inner.encode(x0)

    def eps(self, x_t, t, z):
        return self.inner.eps(x_t, t, z)

    def gae_encode(self, z):
        return self.inner.gae_encode(z)

    def gae_decode(self, z_dis):
        self.decoded.append(z_dis.copy())
        return self.inner.gae_decode(z_dis)


@pytest.fixture(scope="module")
def images():
    ds = AttributeDataset(resolution=32, seed=0)
    return to_model(ds.batch([(0, 1, 2), (3, 4, 5), (5, 0, 9)], seeds=[0, 1, 2]))


@pytest.fixture
def spy(tiny_model):
    return SpyEngine(TorchEngine(tiny_model))


def test_load_pipeline_from_checkpoint(tmp_path, tiny_model, images):
    save_checkpoint(tiny_model, tmp_path)
    pipe = load_pipeline(tmp_path, engine="torch")
    z = pipe.encode(images)
    assert z.shape == (3, 512) and z.dtype == np.float32
    eps = pipe.engine.eps(images, np.array([0, 10, 999]), z)
    assert eps.shape == images.shape
    with pytest.raises(ValueError, match="torch"):
        load_pipeline(tmp_path, engine="tensorflow")


def test_ops_shapes_and_determinism(spy, images):
    pipe = Pipeline(spy)
    z = pipe.encode(images)
    x_T = pipe.invert(images, z, steps=STEPS)
    out = pipe.decode(x_T, z, steps=STEPS)
    assert x_T.shape == out.shape == images.shape and out.dtype == np.float32
    np.testing.assert_array_equal(pipe.reconstruct(images, steps=STEPS), out)
    assert pipe.edit(images, images[:1], swap=["pose"], steps=STEPS).shape == images.shape
    assert (
        pipe.recombine({"identity": images, "background": images, "pose": images}, steps=STEPS).shape
        == images.shape
    )
    assert pipe.interpolate(images, images[::-1], 0.3, steps=STEPS).shape == images.shape
    np.testing.assert_array_equal(pipe.noise(2, seed=5), pipe.noise(2, seed=5))


@pytest.mark.parametrize("name", ["identity", "background", "pose"])
def test_edit_swaps_only_the_named_chunk(spy, images, name):
    pipe = Pipeline(spy)
    source, reference = images[:2], images[2:3]
    pipe.edit(source, reference, swap=[name], steps=STEPS)
    (edited,) = spy.decoded
    d_src = pipe.disentangle(pipe.encode(source))
    d_ref = pipe.disentangle(pipe.encode(reference))
    chunk = pipe.config.gae.chunk(name)
    changed = np.zeros(100, bool)
    changed[chunk] = True
    np.testing.assert_allclose(edited[:, changed], np.repeat(d_ref, 2, axis=0)[:, changed], atol=1e-5)
    np.testing.assert_allclose(edited[:, ~changed], d_src[:, ~changed], atol=1e-5)
    assert np.abs(edited[:, changed] - d_src[:, changed]).max() > 1e-3


def test_edit_decodes_the_swapped_code_from_the_sources_x_T(spy, images):
    pipe = Pipeline(spy)
    source, reference = images[:2], images[2:3]
    z = pipe.encode(np.concatenate([source, reference, reference]))  # the batch edit encodes
    z_src, z_ref = z[:2], z[2:]
    z_edit = pipe.swap_codes(z_src, z_ref, ["background"])
    expected = pipe.decode(pipe.invert(source, z_src, STEPS), z_edit, STEPS)
    np.testing.assert_array_equal(pipe.edit(source, reference, swap=["background"], steps=STEPS), expected)
    one_reference = pipe.swap_codes(z_src, z_ref[:1], ["background"])  # one row serves every source
    np.testing.assert_allclose(one_reference, z_edit, atol=1e-5)
    with pytest.raises(ValueError, match="identity, background, pose"):
        pipe.swap_codes(z_src, z_ref, ["hair"])
    with pytest.raises(ValueError, match=r"z_reference must be float32 \[B,512\]"):
        pipe.swap_codes(z_src, z_ref[:, :100], ["pose"])
    with pytest.raises(ValueError, match="batch sizes differ"):
        pipe.swap_codes(z_src, np.repeat(z_ref, 3, axis=0), ["pose"])


def test_recombine_takes_each_chunk_from_its_image(spy, images):
    pipe = Pipeline(spy)
    parts = {"identity": images[0:1], "background": images[1:2], "pose": images[2:3]}
    pipe.recombine(parts, steps=STEPS, seed=3)
    (mixed,) = spy.decoded
    for name, img in parts.items():
        chunk = pipe.config.gae.chunk(name)
        np.testing.assert_allclose(mixed[:, chunk], pipe.disentangle(pipe.encode(img))[:, chunk], atol=1e-5)


def test_interpolate_moves_only_the_named_attributes(spy, images):
    pipe = Pipeline(spy)
    a, b = images[:1], images[1:2]
    pipe.interpolate(a, b, alpha=1.0, attributes=["background"], steps=STEPS)
    (mixed,) = spy.decoded
    da, db = pipe.disentangle(pipe.encode(a)), pipe.disentangle(pipe.encode(b))
    bg = pipe.config.gae.chunk("background")
    np.testing.assert_allclose(mixed[:, bg], db[:, bg], atol=1e-5)
    np.testing.assert_allclose(mixed[:, :60], da[:, :60], atol=1e-5)


def test_bad_inputs_get_clear_errors(spy, images):
    pipe = Pipeline(spy)
    with pytest.raises(ValueError, match=r"\[B,3,32,32\]"):
        pipe.encode(images[:, :, :16])
    nan = images.copy()
    nan[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        pipe.encode(nan)
    with pytest.raises(ValueError, match="identity, background, pose"):
        pipe.edit(images, images, swap=["hair"], steps=STEPS)
    with pytest.raises(ValueError, match="at least one"):
        pipe.edit(images, images, swap=[], steps=STEPS)
    with pytest.raises(ValueError, match="missing"):
        pipe.recombine({"identity": images}, steps=STEPS)
    with pytest.raises(ValueError, match="finite"):
        pipe.interpolate(images, images, float("nan"), steps=STEPS)
    with pytest.raises(ValueError, match="batch sizes differ"):
        pipe.edit(images[:2], images, swap=["pose"], steps=STEPS)
    with pytest.raises(ValueError, match=r"1\.\.1000"):
        pipe.decode(images, pipe.encode(images), steps=0)


def test_plain_diffae_refuses_gae_ops(tiny_model, images):
    cfg = preset("tiny32")
    plain = type(cfg)(name="plain", image_size=32, unet=cfg.unet, encoder=cfg.encoder, gae=None)
    engine = TorchEngine(tiny_model)
    engine.config = plain
    pipe = Pipeline(engine)
    with pytest.raises(NoGAEError, match="plain Diff-AE"):
        pipe.edit(images, images, swap=["pose"], steps=STEPS)
    with pytest.raises(NoGAEError):
        pipe.recombine({"identity": images, "background": images, "pose": images})
    assert pipe.interpolate(images[:1], images[1:2], 0.5, steps=STEPS).shape == (1, 3, 32, 32)


def test_oracle_pipeline_reconstructs_exactly(images):
    pipe = Pipeline(OracleEngine(preset("tiny32"), images * 0.95))
    x0 = images * 0.95
    z = np.zeros((3, 512), np.float32)
    np.testing.assert_allclose(pipe.decode(pipe.noise(3, seed=0), z, steps=10), x0, atol=1e-5)
    np.testing.assert_allclose(pipe.decode(pipe.invert(x0, z, steps=20), z, steps=20), x0, atol=1e-5)
