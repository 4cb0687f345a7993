import dataclasses
import time

import numpy as np
import pytest
import torch

from diffusegae import build_model, load_pipeline, preset, save_checkpoint
from diffusegae.checkpoint import load_checkpoint
from diffusegae.data import AttributeDataset
from diffusegae.engines import Engine, NoGAEError, Pipeline
from diffusegae.engines.onnxruntime_engine import OnnxRuntimeEngine, load_onnxruntime_engine
from diffusegae.engines.torch_engine import TorchEngine
from diffusegae.export.onnx_export import ONNX_DIR
from diffusegae.images import to_model

from ..conftest import randomize

ATOL = 1e-4


pytestmark = pytest.mark.usefixtures("ort_cache")


@pytest.fixture(scope="module")
def engines(checkpoint):
    return TorchEngine(load_checkpoint(checkpoint)), OnnxRuntimeEngine(checkpoint)


def _max_err(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype == np.float32
    return float(np.abs(a - b).max())


def _psnr(a, b):
    """PSNR in dB of [-1, 1] images mapped to [0, 1]."""
    mse = np.mean(((a + 1) / 2 - (b + 1) / 2) ** 2, dtype=np.float64)
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def test_is_an_engine_on_the_checkpoint_cache(engines, checkpoint):
    _, ort_engine = engines
    assert isinstance(ort_engine, Engine)
    assert ort_engine.config == preset("tiny32")
    assert ort_engine.providers == ["CPUExecutionProvider"]
    assert {p.parent for p in ort_engine.paths.values()} == {checkpoint / ONNX_DIR}


@pytest.mark.parametrize("batch", [1, 3, 5])
def test_every_component_matches_eager(engines, batch):
    torch_engine, ort_engine = engines
    rng = np.random.default_rng(batch)
    x = rng.uniform(-1, 1, (batch, 3, 32, 32)).astype(np.float32)
    t = np.array([0, 500, 999, 1, 250][:batch], np.int64)  # mixed steps in one call
    z_sem = torch_engine.encode(x)
    z_dis = torch_engine.gae_encode(z_sem)
    errors = {
        "encode": _max_err(torch_engine.encode(x), ort_engine.encode(x)),
        "eps": _max_err(torch_engine.eps(x, t, z_sem), ort_engine.eps(x, t, z_sem)),
        "gae_encode": _max_err(z_dis, ort_engine.gae_encode(z_sem)),
        "gae_decode": _max_err(torch_engine.gae_decode(z_dis), ort_engine.gae_decode(z_dis)),
    }
    print(f"batch {batch}: max abs error {errors}")
    assert max(errors.values()) <= ATOL, errors


@pytest.mark.parametrize("prediction", ["eps", "x0"])  # "v": every test above (the tiny32 preset's)
def test_each_parameterisation_exports_as_eps(prediction, tmp_path):
    """The conversion to eps is inside the exported graph: ORT's eps equals eager's, mixed t in one call."""
    base = preset("tiny32")
    cfg = dataclasses.replace(base, unet=dataclasses.replace(base.unet, prediction=prediction))
    torch.manual_seed(1)
    directory = save_checkpoint(randomize(build_model(cfg)).eval(), tmp_path / prediction)
    torch_engine, ort_engine = TorchEngine(load_checkpoint(directory)), OnnxRuntimeEngine(directory)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (3, 3, 32, 32)).astype(np.float32)
    t = np.array([0, 500, 999], np.int64)
    z = torch_engine.encode(x)
    want, got = torch_engine.eps(x, t, z), ort_engine.eps(x, t, z)
    # x0 → eps divides by sqrt(1 − ᾱ_0) = 0.01 at t = 0: compare relative to the output's scale
    assert _max_err(want, got) <= ATOL * max(1.0, float(np.abs(want).max()))


def test_edit_matches_the_torch_pipeline(engines):
    ds = AttributeDataset(resolution=32, seed=0)
    source = to_model(ds.batch([(0, 1, 2), (3, 4, 5)], seeds=[0, 1]))
    reference = to_model(ds.batch([(5, 0, 9)], seeds=[2]))
    out = [Pipeline(e).edit(source, reference, swap=["background"], steps=10) for e in engines]
    psnr = _psnr(*out)
    print(f"edit S=10 PSNR torch vs onnxruntime: {psnr:.1f} dB")
    assert psnr >= 45


def test_options_are_checked_and_applied(checkpoint, engines):
    with pytest.raises(ValueError, match="disable, basic, extended, all"):
        OnnxRuntimeEngine(checkpoint, graph_optimization="max")
    with pytest.raises(ValueError, match="positive"):
        OnnxRuntimeEngine(checkpoint, threads=0)
    with pytest.raises(ValueError, match=r"available: .*CPUExecutionProvider"):
        OnnxRuntimeEngine(checkpoint, providers=["NoSuchExecutionProvider"])
    basic = load_onnxruntime_engine(
        checkpoint,
        providers=["CPUExecutionProvider"],
        threads=1,
        graph_optimization="basic",
        save_optimized=True,
    )
    assert (checkpoint / ONNX_DIR / "unet.basic.opt.onnx").is_file()
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32)
    z = engines[1].encode(x)
    assert _max_err(basic.eps(x, np.array([3, 700]), z), engines[1].eps(x, np.array([3, 700]), z)) <= ATOL


def test_plain_diffae_exports_no_gae_and_refuses_gae_ops(tmp_path):
    plain = dataclasses.replace(preset("tiny32"), name="tiny32-plain", gae=None)
    engine = OnnxRuntimeEngine(save_checkpoint(randomize(build_model(plain)), tmp_path))
    assert list(engine.paths) == ["encoder", "unet"]
    z = engine.encode(np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(NoGAEError, match="plain Diff-AE"):
        engine.gae_encode(z)
    with pytest.raises(NoGAEError):
        engine.gae_decode(np.zeros((1, 100), np.float32))


@pytest.mark.slow
def test_diffae64_sized_unet_runs(tmp_path):
    """Size check (90.8 M parameters with the encoder): export and one eps call at batch 1. No speed claim."""
    start = time.perf_counter()
    model = build_model(preset("diffae64"))
    assert sum(model.num_parameters().values()) == pytest.approx(90.8e6, rel=0.005)
    engine = OnnxRuntimeEngine(save_checkpoint(model, tmp_path), threads=2)
    built = time.perf_counter()
    eps = engine.eps(np.zeros((1, 3, 64, 64), np.float32), np.array([500]), np.zeros((1, 512), np.float32))
    assert eps.shape == (1, 3, 64, 64) and np.isfinite(eps).all()
    print(f"diffae64: build+export+sessions {built - start:.1f} s, eps {time.perf_counter() - built:.2f} s")


def test_load_pipeline_runs_onnxruntime(checkpoint, engines):
    pipe = load_pipeline(checkpoint, engine="onnxruntime", threads=1)
    assert isinstance(pipe.engine, OnnxRuntimeEngine)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32)
    assert _max_err(pipe.encode(x), engines[0].encode(x)) <= 1e-4
    with pytest.raises(TypeError, match="threads"):
        load_pipeline(checkpoint, engine="torch", threads=1)  # options are the engine's own keywords


def test_spinning_is_off_unless_asked():
    from diffusegae.engines.onnxruntime_engine import session_options

    key = "session.intra_op.allow_spinning"
    assert session_options(1, "all").get_session_config_entry(key) == "0"
    assert session_options(1, "all", spinning=True).get_session_config_entry(key) == "1"


def test_io_binding_matches_plain_runs(checkpoint, engines):
    plain = engines[1]
    assert plain.io_binding is False  # CPU provider: off unless asked
    bound = OnnxRuntimeEngine(checkpoint, io_binding=True)
    assert bound.io_binding is True and bound.io_device == ("cpu", 0)
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (3, 3, 32, 32)).astype(np.float32)
    t = np.array([1, 400, 999], np.int64)
    z = bound.encode(x)
    np.testing.assert_array_equal(z, plain.encode(x))
    np.testing.assert_array_equal(bound.eps(x, t, z), plain.eps(x, t, z))
    z_dis = plain.gae_encode(z)
    np.testing.assert_array_equal(bound.gae_encode(z), z_dis)
    np.testing.assert_array_equal(bound.gae_decode(z_dis), plain.gae_decode(z_dis))


@pytest.mark.parametrize(
    ("providers", "device"),
    [
        (["CPUExecutionProvider"], ("cpu", 0)),
        (["CUDAExecutionProvider", "CPUExecutionProvider"], ("cuda", 0)),
        ([("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"], ("cuda", 1)),
        ([("TensorrtExecutionProvider", {"device_id": "2"}), "CUDAExecutionProvider"], ("cuda", 2)),
    ],
)
def test_io_binding_device_follows_the_first_provider(providers, device):
    from diffusegae.engines.onnxruntime_engine import binding_device

    assert binding_device(providers) == device
