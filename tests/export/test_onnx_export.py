import dataclasses
import json
import shutil

import numpy as np
import onnx
import pytest

from diffusegae import build_model, preset, save_checkpoint
from diffusegae.export import specs
from diffusegae.export.cache import MANIFEST
from diffusegae.export.onnx_export import ONNX_DIR, export_checkpoint
from diffusegae.export.specs import BATCH, specs_for

from ..conftest import randomize


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_model):
    checkpoint = save_checkpoint(tiny_model, tmp_path_factory.mktemp("tiny32"))
    return checkpoint, export_checkpoint(checkpoint)


def _mtimes(paths):
    return {name: path.stat().st_mtime_ns for name, path in paths.items()}


def _dims(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_graph_names_match_the_specs_and_batch_is_symbolic(exported):
    _, paths = exported
    assert list(paths) == [s.name for s in specs_for(preset("tiny32"))]
    for spec in specs_for(preset("tiny32")):
        graph = onnx.load(str(paths[spec.name])).graph
        assert tuple(i.name for i in graph.input) == spec.input_names
        assert tuple(o.name for o in graph.output) == spec.output_names
        pairs = zip([*graph.input, *graph.output], [*spec.inputs, *spec.outputs], strict=True)
        for value_info, tensor in pairs:
            assert _dims(value_info) == list(tensor.shape)  # "batch" is a dim_param, the rest fixed
            assert value_info.type.tensor_type.shape.dim[0].dim_param == BATCH
            elem_type = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(tensor.dtype))
            assert value_info.type.tensor_type.elem_type == elem_type


def test_files_pass_the_checker_and_hold_their_weights(exported):
    checkpoint, paths = exported
    assert {p.parent for p in paths.values()} == {checkpoint / ONNX_DIR}
    for name, path in paths.items():
        onnx.checker.check_model(str(path), full_check=True)
        model = onnx.load(str(path), load_external_data=False)
        assert model.opset_import[0].version == 17
        assert not any(onnx.external_data_helper.uses_external_data(t) for t in model.graph.initializer)
        assert len(model.graph.initializer) > 0
        assert {p.key: p.value for p in model.metadata_props}["diffusegae.component"] == name
    # GroupNorm at opset 17 is InstanceNormalization (what ORT CPU and TensorRT both run)
    unet_ops = {n.op_type for n in onnx.load(str(paths[specs.UNET])).graph.node}
    assert "InstanceNormalization" in unet_ops and "GroupNormalization" not in unet_ops
    leftovers = sorted(p.name for p in (checkpoint / ONNX_DIR).iterdir() if p.suffix != ".onnx")
    assert leftovers == [".gitignore", MANIFEST]  # no .onnx.data side files, no temporary files


def test_cache_skips_unchanged_and_rebuilds_on_new_weights(exported, tmp_path):
    source, _ = exported
    checkpoint = shutil.copytree(source, tmp_path / "ck")
    before = _mtimes(export_checkpoint(checkpoint))
    assert _mtimes(export_checkpoint(checkpoint)) == before  # nothing rewritten
    # an out_dir holding an up-to-date copy is used as is
    elsewhere = shutil.copytree(checkpoint / ONNX_DIR, tmp_path / "elsewhere")
    copied = {p.stem: p for p in elsewhere.glob("*.onnx")}
    copied_mtimes = _mtimes(copied)
    assert export_checkpoint(checkpoint, out_dir=elsewhere) == copied and _mtimes(copied) == copied_mtimes
    weights_key = json.loads((checkpoint / ONNX_DIR / MANIFEST).read_text())["models"]["unet"]["key"]

    save_checkpoint(randomize(build_model(preset("tiny32")), seed=1), checkpoint)
    after = _mtimes(export_checkpoint(checkpoint))
    assert all(after[name] != before[name] for name in before)
    manifest = json.loads((checkpoint / ONNX_DIR / MANIFEST).read_text())["models"]
    assert manifest["unet"]["key"]["weights"] != weights_key["weights"]
    assert manifest["unet"]["key"]["config"] == weights_key["config"]


def test_plain_diffae_exports_no_gae_models(exported, tmp_path):
    # saved over a DiffuseGAE checkpoint's folder: the stale GAE files go too
    source, _ = exported
    checkpoint = shutil.copytree(source, tmp_path / "ck")
    plain = dataclasses.replace(preset("tiny32"), name="tiny32-plain", gae=None)
    save_checkpoint(randomize(build_model(plain)), checkpoint)
    assert list(export_checkpoint(checkpoint)) == [specs.ENCODER, specs.UNET]
    assert sorted(p.name for p in (checkpoint / ONNX_DIR).glob("*.onnx")) == ["encoder.onnx", "unet.onnx"]


def test_fp16_export_halves_the_weights_and_keeps_float32_io(exported, tiny_model):
    import torch

    from diffusegae.engines.onnxruntime_engine import OnnxRuntimeEngine
    from diffusegae.engines.torch_engine import TorchEngine

    checkpoint, fp32_paths = exported
    engine = OnnxRuntimeEngine(checkpoint, threads=1, precision="fp16")
    assert {p.parent for p in engine.paths.values()} == {checkpoint / "onnx-fp16"}
    unet = onnx.load(str(engine.paths[specs.UNET]))
    sizes = {onnx.TensorProto.DataType.Name(i.data_type): i for i in unet.graph.initializer}
    assert "FLOAT16" in sizes
    assert engine.paths[specs.UNET].stat().st_size < 0.6 * fp32_paths[specs.UNET].stat().st_size
    eager = TorchEngine(tiny_model, "cpu")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (3, 3, 32, 32)).astype(np.float32)
    z = eager.encode(x)
    t = np.array([0, 500, 999])
    for got, want in (
        (engine.encode(x), z),
        (engine.eps(x, t, z), eager.eps(x, t, z)),
        (engine.gae_decode(engine.gae_encode(z)), eager.gae_decode(eager.gae_encode(z))),
    ):
        assert got.dtype == np.float32
        scale = float(np.abs(want).max())
        assert np.abs(got - want).max() <= 2e-2 * scale  # fp16: ~3 significant digits
    assert torch.get_default_dtype() == torch.float32  # the export left the shared model in fp32
    assert next(tiny_model.parameters()).dtype == torch.float32


def test_bad_options_are_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="precision"):
        export_checkpoint(tmp_path, precision="int8")
    with pytest.raises(ValueError, match=r"14\.\.20"):
        export_checkpoint(tmp_path, opset=21)
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        export_checkpoint(tmp_path)
