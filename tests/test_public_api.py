"""The names DESIGN.md promises, with their signatures: outside checks rely on them."""

import inspect
import subprocess
import sys


def test_design_names_import():
    from diffusegae import build_model, load_pipeline, preset, save_checkpoint
    from diffusegae.data import AttributeDataset
    from diffusegae.diffusion import ddim_timesteps
    from diffusegae.images import to_model, to_uint8
    from diffusegae.kernels import adagn

    assert callable(build_model) and callable(save_checkpoint) and callable(to_model) and callable(to_uint8)
    assert ddim_timesteps(10).tolist() == list(range(0, 1000, 100))
    assert preset("tiny32").image_size == 32
    assert list(inspect.signature(load_pipeline).parameters)[:2] == ["checkpoint", "engine"]
    assert list(inspect.signature(adagn).parameters) == [
        "h", "gamma", "beta", "t_scale", "t_shift", "z_scale", "z_shift", "groups", "eps", "silu", "impl",
    ]  # fmt: skip
    ds = AttributeDataset(resolution=16, seed=0)
    assert ds.render(ds.split("train")[0], seed=0).shape == (16, 16, 3)
    assert isinstance(ds.attributes, dict)


def test_importing_the_package_does_not_import_torch():
    code = "import sys, diffusegae, diffusegae.images, diffusegae.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_pipeline_ops_are_named_as_in_design():
    from diffusegae.engines import Pipeline

    for op in ["encode", "invert", "decode", "reconstruct", "edit", "recombine", "interpolate"]:
        assert callable(getattr(Pipeline, op))
    assert list(inspect.signature(Pipeline.edit).parameters)[1:4] == ["source", "reference", "swap"]
