"""The AdaGN TensorRT plugin's definition, on CPU against a stand-in `tensorrt.plugin` (no TensorRT here).

What is checked is what can be without TensorRT: the gate, and that the plugin declares exactly what the
exported ONNX node carries (seven tensors; the attributes groups, eps, mode, silu) with the signatures
tensorrt.plugin requires. Building and running it is unverified (see kernels/tensorrt_plugin.py).
"""

import inspect
import sys
import types

import pytest

from diffusegae.kernels import custom_op, tensorrt_plugin

TENSORS = ["h", "gamma", "beta", "t_scale", "t_shift", "z_scale", "z_shift"]
ATTRS = ["groups", "eps", "mode", "silu"]


def _fake_tensorrt(version):
    """`tensorrt` and `tensorrt.plugin` modules that record what the decorators are given."""
    calls = {}
    plugin = types.ModuleType("tensorrt.plugin")
    for name in ("TensorDesc", "Tensor", "AutoTuneCombination"):
        setattr(plugin, name, type(name, (), {}))
    for kind in ("register", "autotune", "impl"):
        setattr(
            plugin, kind, lambda plugin_id, kind=kind: lambda fn: calls.setdefault(kind, (plugin_id, fn))[1]
        )
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.plugin = plugin
    return trt, plugin, calls


@pytest.fixture
def fake(monkeypatch):
    def install(version="10.8.0.43"):
        trt, plugin, calls = _fake_tensorrt(version)
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        monkeypatch.setitem(sys.modules, "tensorrt.plugin", plugin)
        monkeypatch.setattr(tensorrt_plugin, "_registered", False)
        return plugin, calls

    return install


def test_plugin_declares_what_the_onnx_node_carries(fake):
    trtp, calls = fake()
    tensorrt_plugin.register_plugin()
    assert set(calls) == {"register", "autotune", "impl"}
    assert {plugin_id for plugin_id, _ in calls.values()} == {"diffusegae::AdaGN"}
    assert custom_op.PLUGIN_NAMESPACE == "diffusegae" and custom_op.PLUGIN_NAME == "AdaGN"

    desc = inspect.signature(calls["register"][1])
    assert list(desc.parameters) == TENSORS + ATTRS
    assert all(desc.parameters[t].annotation is trtp.TensorDesc for t in TENSORS)  # objects, not strings
    assert [desc.parameters[a].annotation for a in ATTRS] == [int, float, str, int]
    assert desc.return_annotation is trtp.TensorDesc
    # tensorrt.plugin's schema: autotune (tensors, attributes, outputs); impl (..., outputs, stream)
    assert list(inspect.signature(calls["autotune"][1]).parameters) == [*TENSORS, *ATTRS, "outputs"]
    impl = inspect.signature(calls["impl"][1])
    assert list(impl.parameters) == [*TENSORS, *ATTRS, "outputs", "stream"]
    assert impl.parameters["stream"].annotation is int

    tensorrt_plugin.register_plugin()  # idempotent: nothing registered twice
    assert len(calls) == 3


def test_plugin_needs_tensorrt_10_6(fake, monkeypatch):
    fake("10.5.0")
    with pytest.raises(RuntimeError, match=r"needs TensorRT ≥ 10\.6, found 10\.5\.0"):
        tensorrt_plugin.register_plugin()
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` raises ImportError
    with pytest.raises(RuntimeError, match=r"needs tensorrt\.plugin"):
        tensorrt_plugin.register_plugin()
