"""TensorRT engine: the gate and the pure build helpers run everywhere; parity runs where TensorRT does."""

import dataclasses
import importlib.util
import os
import subprocess
import sys
import types

import numpy as np
import onnx
import pytest
import torch

from diffusegae import preset, save_checkpoint
from diffusegae.checkpoint import load_checkpoint
from diffusegae.engines import Engine
from diffusegae.engines.tensorrt_engine import TRT_DIR, TensorRTEngine, load_tensorrt_engine
from diffusegae.engines.torch_engine import TorchEngine
from diffusegae.export import specs
from diffusegae.export.onnx_export import ONNX_DIR, export_checkpoint
from diffusegae.export.tensorrt import UNAVAILABLE, needs_build, onnx_keys, plan_key, profile_shapes

TRT_AVAILABLE = importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available()
FP16_ATOL = 2e-2  # fp16 kernels through a whole UNet vs fp32 eager


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_model):
    return save_checkpoint(tiny_model, tmp_path_factory.mktemp("tiny32-trt"))


def test_importing_the_module_does_not_import_tensorrt(tmp_path):
    # A `tensorrt` that fails on import comes first on the path: the module must import without touching it.
    (tmp_path / "tensorrt.py").write_text("raise AssertionError('tensorrt was imported')\n")
    code = "import sys, diffusegae.engines.tensorrt_engine; assert 'tensorrt' not in sys.modules"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_construction_without_tensorrt_raises_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` raises ImportError
    with pytest.raises(RuntimeError, match="needs the tensorrt package and a CUDA GPU; unverified") as info:
        TensorRTEngine(tmp_path)
    assert str(info.value).startswith(UNAVAILABLE)
    with pytest.raises(RuntimeError, match="import tensorrt failed"):
        load_tensorrt_engine(tmp_path, precision="fp32")
    assert not (tmp_path / TRT_DIR).exists()  # the gate comes before any export or build


def test_construction_without_a_gpu_or_with_an_old_tensorrt_raises(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.7.0"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match=r"a CUDA GPU; unverified.*no CUDA device 0"):
        TensorRTEngine(tmp_path)
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="8.6.1"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(RuntimeError, match=r"found TensorRT 8\.6\.1; the engine uses the 10\.x API"):
        TensorRTEngine(tmp_path)


def test_options_are_checked_before_the_gate(tmp_path):
    with pytest.raises(ValueError, match="fp16, fp32"):
        TensorRTEngine(tmp_path, precision="int8")
    with pytest.raises(ValueError, match="workspace_gb must be positive"):
        TensorRTEngine(tmp_path, workspace_gb=0)


def test_profile_shapes_follow_the_spec():
    unet = specs.spec_by_name(preset("tiny32"), specs.UNET)
    assert profile_shapes(unet) == {
        specs.X_T: ((1, 3, 32, 32), (8, 3, 32, 32), (64, 3, 32, 32)),
        specs.TIMESTEP: ((1,), (8,), (64,)),
        specs.Z_SEM: ((1, 512), (8, 512), (64, 512)),
    }
    narrow = dataclasses.replace(
        specs.spec_by_name(preset("tiny32"), specs.GAE_DECODE), profile=specs.BatchProfile(2, 4, 16)
    )
    assert profile_shapes(narrow) == {specs.Z_DIS: ((2, 100), (4, 100), (16, 100))}


def test_plans_rebuild_when_their_inputs_change(tmp_path):
    spec = specs.spec_by_name(preset("tiny32"), specs.UNET)
    key = plan_key(spec, "onnx-a", "10.7.0", "NVIDIA H100 sm90", "fp16", 4)
    plan = tmp_path / "unet.plan"
    assert needs_build(None, key, plan)
    assert needs_build({"key": key}, key, plan)  # recorded but the file is gone
    plan.write_bytes(b"plan")
    assert not needs_build({"key": key}, key, plan)
    changed = [
        plan_key(spec, "onnx-b", "10.7.0", "NVIDIA H100 sm90", "fp16", 4),  # ONNX rebuilt
        plan_key(spec, "onnx-a", "10.8.0", "NVIDIA H100 sm90", "fp16", 4),  # TensorRT upgraded
        plan_key(spec, "onnx-a", "10.7.0", "NVIDIA H200 sm90", "fp16", 4),  # another GPU
        plan_key(spec, "onnx-a", "10.7.0", "NVIDIA H100 sm90", "fp32", 4),
        plan_key(
            dataclasses.replace(spec, profile=specs.BatchProfile(1, 4, 32)),
            "onnx-a",
            "10.7.0",
            "NVIDIA H100 sm90",
            "fp16",
            4,
        ),
    ]
    assert all(needs_build({"key": key}, other, plan) for other in changed)


def test_onnx_keys_are_the_exported_files_keys(checkpoint):
    paths = export_checkpoint(checkpoint)
    keys = onnx_keys(checkpoint / ONNX_DIR)
    assert set(keys) == set(paths)
    for name, path in paths.items():
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        assert keys[name] == props["diffusegae.key"]


@pytest.mark.gpu
@pytest.mark.skipif(not TRT_AVAILABLE, reason="needs the tensorrt package and a CUDA GPU")
def test_parity_with_the_torch_engine_and_cached_plans(checkpoint):
    engine = TensorRTEngine(checkpoint, precision="fp16")
    assert isinstance(engine, Engine)
    reference = TorchEngine(load_checkpoint(checkpoint), device="cuda")
    for batch in (1, 3, 70):  # 70 > the profile max: runs in chunks
        rng = np.random.default_rng(batch)
        x = rng.uniform(-1, 1, (batch, 3, 32, 32)).astype(np.float32)
        t = rng.integers(0, 1000, batch).astype(np.int64)
        z_sem = reference.encode(x)
        z_dis = reference.gae_encode(z_sem)
        errors = {
            "encode": np.abs(engine.encode(x) - z_sem).max(),
            "eps": np.abs(engine.eps(x, t, z_sem) - reference.eps(x, t, z_sem)).max(),
            "gae_encode": np.abs(engine.gae_encode(z_sem) - z_dis).max(),
            "gae_decode": np.abs(engine.gae_decode(z_dis) - reference.gae_decode(z_dis)).max(),
        }
        print(f"batch {batch}: max abs error vs torch fp32 {errors}")
        assert max(errors.values()) <= FP16_ATOL, errors
    stamps = {name: plan.stat().st_mtime_ns for name, plan in engine.plans.items()}
    again = TensorRTEngine(checkpoint, precision="fp16")  # cached: no rebuild
    assert {name: plan.stat().st_mtime_ns for name, plan in again.plans.items()} == stamps
    assert (checkpoint / TRT_DIR / "timing.cache").is_file()


def test_load_pipeline_gates_tensorrt_with_a_clear_error(tmp_path, tiny_model):
    from diffusegae import load_pipeline, save_checkpoint

    if TRT_AVAILABLE:
        pytest.skip("TensorRT is present: the parity test covers it")
    save_checkpoint(tiny_model, tmp_path)
    with pytest.raises(RuntimeError, match="tensorrt package and a CUDA GPU"):
        load_pipeline(tmp_path, engine="tensorrt")
