"""Every engine name in the registries resolves, and each in-process engine loads a checkpoint."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from diffusegae import save_checkpoint
from diffusegae.engines import Engine
from diffusegae.engines.registry import ENGINES, LOOP_ENGINES, import_string, load_engine, lookup

from ..server import fake_pb_utils

pytestmark = pytest.mark.usefixtures("ort_cache")


@pytest.mark.parametrize("name", list(ENGINES))
def test_every_engine_name_resolves_to_a_loader(name):
    assert callable(lookup(ENGINES, name))


def test_the_cpu_engines_load_and_agree(tmp_path, tiny_model):
    directory = save_checkpoint(tiny_model, tmp_path)
    engines = {name: load_engine(name, directory, device="cpu") for name in ("torch", "onnxruntime")}
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32)
    t = np.array([3, 900])
    out = {}
    for name, engine in engines.items():
        assert isinstance(engine, Engine)
        out[name] = engine.eps(x, t, engine.encode(x))
    assert np.abs(out["torch"] - out["onnxruntime"]).max() < 1e-4
    assert engines["onnxruntime"].providers == ["CPUExecutionProvider"]
    with pytest.raises(ValueError, match="runs on a CUDA device"):
        load_engine("tensorrt", directory, device="cpu")


@pytest.mark.parametrize("name", list(LOOP_ENGINES))
def test_every_loop_engine_name_resolves(name, monkeypatch):
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fake_pb_utils)
    for module in [m for m in sys.modules if m.startswith("diffusegae.server.models.")]:
        monkeypatch.delitem(sys.modules, module)  # bind them to the stand-in
    assert callable(lookup(LOOP_ENGINES, name, "loop engine"))


def test_unknown_names_list_the_choices():
    with pytest.raises(
        ValueError, match="unknown engine 'tensorflow'; choose from torch, onnxruntime, tensorrt"
    ):
        lookup(ENGINES, "tensorflow")
    with pytest.raises(ValueError, match=r"must look like 'package\.module:attribute'"):
        import_string("diffusegae.engines")
