"""The fused-AdaGN ONNX export: one custom node per AdaGN, with the attributes TensorRT's plugin lookup
reads, and a meaning that matches eager (ONNX's reference evaluator with an independent float64 AdaGN)."""

import io
import json
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun

from diffusegae import save_checkpoint
from diffusegae.export import specs
from diffusegae.export.cache import MANIFEST
from diffusegae.export.onnx_export import ONNX_DIR, ONNX_FUSED_DIR, export_checkpoint
from diffusegae.kernels import custom_op
from diffusegae.models.layers import ResBlock

from ..conftest import randomize

ATTRIBUTES = {"groups", "eps", "mode", "silu", "plugin_name", "plugin_namespace", "plugin_version"}


def _custom_nodes(graph):
    return [n for n in graph.node if n.domain == custom_op.ONNX_DOMAIN]


def _attrs(node):
    values = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in values.items()}


@pytest.fixture(scope="module")
def exports(tmp_path_factory, tiny_model):
    checkpoint = save_checkpoint(tiny_model, tmp_path_factory.mktemp("tiny32-fused"))
    return checkpoint, export_checkpoint(checkpoint, fused_adagn=True), export_checkpoint(checkpoint)


def test_fused_export_has_one_plugin_node_per_adagn(exports, tiny_model):
    checkpoint, fused, default = exports
    assert {p.parent for p in fused.values()} == {checkpoint / ONNX_FUSED_DIR}
    assert {p.parent for p in default.values()} == {checkpoint / ONNX_DIR}
    blocks = [m for m in tiny_model.unet.modules() if isinstance(m, ResBlock) and m.conditioned]
    unet = onnx.load(str(fused[specs.UNET]))
    nodes = _custom_nodes(unet.graph)
    assert len(blocks) > 1 and len(nodes) == len(blocks)
    for node, block in zip(nodes, blocks, strict=True):
        norm = block.out_layers[0]
        assert node.op_type == custom_op.PLUGIN_NAME == "AdaGN"
        assert len(node.input) == 7 and len(node.output) == 1
        assert node.input[1].endswith("out_layers.0.weight") and node.input[2].endswith("out_layers.0.bias")
        attrs = _attrs(node)
        assert set(attrs) == ATTRIBUTES
        assert attrs["groups"] == norm.num_groups == 32 and attrs["eps"] == pytest.approx(norm.eps)
        assert attrs["mode"] == "scale_shift" and attrs["silu"] == 1  # tiny32 is a DiffuseGAE (Eq. 8)
        plugin = (attrs["plugin_name"], attrs["plugin_namespace"], attrs["plugin_version"])
        assert plugin == ("AdaGN", "diffusegae", "1")
    assert {(o.domain, o.version) for o in unet.opset_import} == {("", 17), ("diffusegae", 1)}
    # the GroupNorm-only blocks (in_layers, attention, encoder) stay standard ops
    assert "InstanceNormalization" in {n.op_type for n in unet.graph.node}
    for name in set(fused) - {specs.UNET}:
        assert _custom_nodes(onnx.load(str(fused[name])).graph) == []
    for path in default.values():  # the default export: standard ops only, ONNX Runtime runs it as is
        model = onnx.load(str(path))
        assert _custom_nodes(model.graph) == [] and {o.domain for o in model.opset_import} == {""}
    manifest = json.loads((checkpoint / ONNX_FUSED_DIR / MANIFEST).read_text())["models"]
    assert manifest[specs.UNET]["key"]["fused_adagn"] is True


def test_fused_export_is_cached_apart_from_the_default(exports):
    checkpoint, fused, default = exports
    mtimes = {p: p.stat().st_mtime_ns for p in (*fused.values(), *default.values())}
    assert export_checkpoint(checkpoint, fused_adagn=True) == fused
    assert export_checkpoint(checkpoint) == default
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # neither export rebuilt the other's files


class AdaGN(OpRun):
    """The node's contract, written independently of the package in float64 numpy."""

    op_domain = "diffusegae"

    def _run(self, h, gamma, beta, t_scale, t_shift, z_scale, z_shift, **attrs):
        groups, eps = attrs.get("groups", self.groups), attrs.get("eps", self.eps)
        mode, silu = attrs.get("mode", self.mode), attrs.get("silu", self.silu)
        mode = mode.decode() if isinstance(mode, bytes) else mode
        b, c = h.shape[:2]
        g = h.astype(np.float64).reshape(b, groups, -1)
        g = (g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + eps)
        col = (slice(None), slice(None), None, None)
        out = g.reshape(h.shape) * gamma[None, :, None, None] + beta[None, :, None, None]
        out = out * (1 + t_scale[col]) + t_shift[col]
        out = out * (1 + z_scale[col])
        if mode == "scale_shift":
            out = out + z_shift[col]
        else:  # "scale": the seventh input is the exporter's [1, C] zero constant
            assert z_shift.shape == (1, c) and not z_shift.any()
        if silu:
            out = out / (1 + np.exp(-out))
        return (out.astype(h.dtype),)


class _Block(torch.nn.Module):
    def __init__(self, mode):
        super().__init__()
        self.block = ResBlock(8, 16, emb_channels=12, cond_channels=10, adagn_mode=mode)

    def forward(self, x, emb, cond):
        return self.block(x, emb, cond)


@pytest.mark.parametrize("mode", ["scale", "scale_shift"])
def test_fused_node_means_what_eager_computes(mode):
    torch.manual_seed(0)
    module = randomize(_Block(mode)).eval()
    args = (torch.randn(2, 8, 6, 5), torch.randn(2, 12), torch.randn(2, 10))
    buffer = io.BytesIO()
    with torch.no_grad(), custom_op.onnx_export_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            module, args, buffer, input_names=["x", "emb", "cond"], opset_version=17, dynamo=False
        )
    model = onnx.load_from_string(buffer.getvalue())
    (node,) = _custom_nodes(model.graph)
    assert _attrs(node)["mode"] == mode and _attrs(node)["groups"] == 16
    feeds = dict(zip(["x", "emb", "cond"], (a.numpy() for a in args), strict=True))
    (onnx_out,) = ReferenceEvaluator(model, new_ops=[AdaGN]).run(None, feeds)
    with torch.no_grad():
        eager = module(*args).numpy()
    np.testing.assert_allclose(onnx_out, eager, rtol=1e-4, atol=1e-4)
