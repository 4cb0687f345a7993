import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch

from diffusegae import build_model, preset
from diffusegae.export import specs
from diffusegae.export.specs import BATCH, BatchProfile, spec_by_name, specs_for
from diffusegae.export.wrappers import GAEEncodeWrapper, UNetWrapper


def test_names_are_unique_and_cover_every_component():
    names = [s.name for s in specs_for(preset("tiny32"))]
    assert names == [specs.ENCODER, specs.GAE_ENCODE, specs.GAE_DECODE, specs.UNET]
    assert len(set(names)) == len(names)
    for spec in specs_for(preset("tiny32")):
        assert len(set(spec.input_names + spec.output_names)) == len(spec.inputs) + len(spec.outputs)


def test_shapes_come_from_the_config():
    cfg = preset("tiny32")
    unet = spec_by_name(cfg, specs.UNET)
    assert unet.input_names == (specs.X_T, specs.TIMESTEP, specs.Z_SEM)
    assert [t.shape for t in unet.inputs] == [(BATCH, 3, 32, 32), (BATCH,), (BATCH, 512)]
    assert [t.dtype for t in unet.inputs] == ["float32", "int64", "float32"]
    assert spec_by_name(cfg, specs.GAE_ENCODE).outputs[0].shape == (BATCH, 100)
    assert spec_by_name(preset("synth64"), specs.ENCODER).inputs[0].shape == (BATCH, 3, 64, 64)
    for spec in specs_for(cfg):
        assert all(t.shape[0] == BATCH for t in (*spec.inputs, *spec.outputs))
        assert spec.profile == BatchProfile(1, 8, 64)


def test_plain_diffae_has_no_gae_specs():
    assert [s.name for s in specs_for(preset("diffae64"))] == [specs.ENCODER, specs.UNET]
    with pytest.raises(ValueError, match="encoder, unet"):
        spec_by_name(preset("diffae64"), specs.GAE_ENCODE)


@pytest.mark.parametrize("batch", [1, 3])
def test_sample_inputs_follow_the_spec(batch):
    for spec in specs_for(preset("tiny32")):
        sample = spec.sample_inputs(batch, seed=1)
        assert list(sample) == list(spec.input_names)
        for t in spec.inputs:
            assert sample[t.name].shape == t.concrete_shape(batch)
            assert sample[t.name].dtype == np.dtype(t.dtype)
    unet = spec_by_name(preset("tiny32"), specs.UNET).sample_inputs(64)
    assert unet[specs.TIMESTEP].min() >= 0 and unet[specs.TIMESTEP].max() < 1000
    x0 = spec_by_name(preset("tiny32"), specs.ENCODER).sample_inputs(4)[specs.X0]
    assert np.abs(x0).max() <= 1.0


def test_bad_profile_is_refused():
    with pytest.raises(ValueError, match="min <= opt <= max"):
        BatchProfile(8, 1, 64)


def test_wrappers_run_the_component(tiny_model):
    spec = spec_by_name(tiny_model.cfg, specs.UNET)
    module = spec.build_module(tiny_model)
    assert isinstance(module, UNetWrapper) and not module.training
    x, t, z = (torch.from_numpy(a) for a in spec.sample_inputs(2).values())
    with torch.no_grad():
        torch.testing.assert_close(module(x, t, z), tiny_model.unet(x, t, z), rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(GAEEncodeWrapper(tiny_model)(z), tiny_model.gae.encode(z), rtol=0, atol=0)


def test_plain_model_has_no_gae_wrapper():
    plain = dataclasses.replace(preset("tiny32"), name="tiny32-plain", gae=None)
    with pytest.raises(ValueError, match="no GAE"):
        GAEEncodeWrapper(build_model(plain, device="meta"))


def test_specs_import_no_torch():
    # the client reads names from the specs and must not pull torch in
    code = "import sys, diffusegae.export.specs, diffusegae.export; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
