"""The repository builder: configs generated from the specs, shims, checkpoint references, ensembles."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import shutil
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from diffusegae import build_model, preset, save_checkpoint
from diffusegae.export.specs import specs_for
from diffusegae.paths import SHIPPED_CHECKPOINT, SHIPPED_REPOSITORY
from diffusegae.server.cli import add_build_repo_arguments, run_build_repo
from diffusegae.server.graph import ensembles
from diffusegae.server.repository import build_repository, generated_files, repository_checkpoint
from diffusegae.server.specs import leaf_models, python_models

DIFFAE = dataclasses.replace(preset("tiny32"), name="tiny32-diffae", gae=None)
GAE_ONLY = {"gae_encode", "gae_decode", "swap", "combine", "edit", "recombine", "edit_inverted"}


def _configs(repo: Path) -> dict[str, model_config_pb2.ModelConfig]:
    return {
        p.parent.name: text_format.Parse(p.read_text(), model_config_pb2.ModelConfig())
        for p in repo.glob("*/config.pbtxt")
    }


@pytest.fixture(scope="module")
def diffae_checkpoint(tmp_path_factory):
    return save_checkpoint(build_model(DIFFAE), tmp_path_factory.mktemp("diffae"))


def test_shipped_repository_is_what_the_builder_writes(tmp_path, tiny_model):
    """model_repository/ is generated: a rebuild for the shipped checkpoint reproduces it file for file."""
    checkpoint = SHIPPED_CHECKPOINT
    if not (checkpoint / "config.json").is_file():  # a clone without the checkpoint: same preset, same files
        checkpoint = save_checkpoint(tiny_model, tmp_path / "tiny32")
    out = build_repository(checkpoint, tmp_path / "repo", checkpoint_ref="../checkpoints/tiny32")
    assert generated_files(out) == generated_files(SHIPPED_REPOSITORY)
    assert repository_checkpoint(SHIPPED_REPOSITORY) == SHIPPED_CHECKPOINT.resolve()


def test_every_config_is_a_valid_triton_model_config(checkpoint, tmp_path):
    configs = _configs(build_repository(checkpoint, tmp_path))
    assert set(configs) == {m.name for m in leaf_models(preset("tiny32"))} | {
        "prepare", "postprocess", "invert", "decode", "mix", "swap", "combine",
        "reconstruct", "edit", "recombine", "interpolate", "inversion", "edit_inverted",
    }  # fmt: skip
    assert configs["invert"].dynamic_batching.max_queue_delay_microseconds > 0
    assert configs["unet"].input[1].reshape.shape == []  # t: [B] in the model, [B,1] on the wire
    assert configs["interpolate"].input[-1].optional
    assert all(c.max_batch_size == 64 for c in configs.values())


def test_python_models_are_shims_into_the_package(checkpoint, tmp_path):
    repo = build_repository(checkpoint, tmp_path)
    for shim in repo.glob("*/1/model.py"):
        lines = [line for line in shim.read_text().splitlines() if line.startswith("from ")]
        assert len(lines) == 1 and lines[0].endswith("import TritonPythonModel"), shim
        module = lines[0].split()[1]
        assert importlib.util.find_spec(module) is not None, module


@pytest.mark.parametrize("config", [preset("tiny32"), DIFFAE], ids=["diffusegae", "diffae"])
def test_ensemble_steps_are_wired(config):
    """Every step's inputs exist (ensemble inputs or an earlier output) and match its model's tensors."""
    models = {m.name: m for m in (*leaf_models(config), *python_models(config))}
    for ensemble in ensembles(config):
        available = set(ensemble.input_names)
        for step in ensemble.steps:
            model = models[step.model]
            assert {k for k, _ in step.inputs} <= set(model.input_names), (ensemble.name, step)
            assert set(model.input_names) - set(model.optional) <= {k for k, _ in step.inputs}, step
            assert {v for _, v in step.inputs} <= available, (ensemble.name, step)
            assert {k for k, _ in step.outputs} <= set(model.output_names)
            available |= {v for _, v in step.outputs}
        assert set(ensemble.output_names) <= available


def test_plain_diffae_gets_no_gae_models(diffae_checkpoint, tmp_path):
    names = set(_configs(build_repository(diffae_checkpoint, tmp_path)))
    assert names == {"encoder", "unet", "prepare", "postprocess", "invert", "decode", "mix"} | {
        "reconstruct",
        "interpolate",
        "inversion",
    }
    assert not names & GAE_ONLY


def test_rebuild_removes_models_the_checkpoint_lost_and_nothing_else(checkpoint, diffae_checkpoint, tmp_path):
    build_repository(checkpoint, tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "config.pbtxt").write_text('name: "mine"\n')
    build_repository(diffae_checkpoint, tmp_path)
    assert not GAE_ONLY & {p.name for p in tmp_path.iterdir()}
    assert (tmp_path / "mine" / "config.pbtxt").is_file()


def test_checkpoint_reference_relative_inside_a_project_else_absolute(checkpoint, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(checkpoint, project / "checkpoints" / "ck", ignore=shutil.ignore_patterns("onnx"))
    inside = build_repository(project / "checkpoints" / "ck", project / "model_repository")
    assert '"../checkpoints/ck"' in (inside / "invert" / "config.pbtxt").read_text()
    assert repository_checkpoint(inside) == (project / "checkpoints" / "ck").resolve()
    elsewhere = build_repository(project / "checkpoints" / "ck", tmp_path / "elsewhere" / "deep" / "repo")
    assert repository_checkpoint(elsewhere) == (project / "checkpoints" / "ck").resolve()


def test_native_onnxruntime_leaves_for_the_ngc_container(checkpoint, tmp_path):
    repo = build_repository(checkpoint, tmp_path, leaf_backend="onnxruntime")
    configs = _configs(repo)
    for spec in specs_for(preset("tiny32")):
        assert configs[spec.name].platform == "onnxruntime_onnx"
        assert (repo / spec.name / "1" / "model.onnx").stat().st_size > 0
        assert not (repo / spec.name / "1" / "model.py").exists()
    assert configs["invert"].parameters["engine"].string_value == "bls"  # the loop reaches unet over BLS


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed")
def test_tensorrt_leaves_say_what_to_do_without_tensorrt(checkpoint, tmp_path):
    with pytest.raises(RuntimeError, match="needs the tensorrt package"):
        build_repository(checkpoint, tmp_path / "trt", leaf_backend="tensorrt")
    assert not (tmp_path / "trt").exists()


def test_bad_options(checkpoint, tmp_path):
    with pytest.raises(ValueError, match="unknown leaf backend 'tflite'; choose from python-ort"):
        build_repository(checkpoint, tmp_path, leaf_backend="tflite")
    with pytest.raises(ValueError, match="threads must be a positive number"):
        build_repository(checkpoint, tmp_path, threads=0)
    with pytest.raises(ValueError, match="unknown loop engine 'cuda'; choose from onnxruntime, bls"):
        build_repository(checkpoint, tmp_path, loop_engine="cuda")


def test_build_repo_command(checkpoint, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_build_repo_arguments(parser)
    args = parser.parse_args(
        ["--checkpoint", str(checkpoint), "--out", str(tmp_path / "r"), "--threads", "2"]
    )
    assert run_build_repo(args) == 0
    assert "17 models" in capsys.readouterr().out
    assert _configs(tmp_path / "r")["unet"].parameters["threads"].string_value == "2"


def test_every_model_folder_survives_git(tmp_path, tiny_model):
    """git keeps no empty folders: each model's version folder must hold a file, or Triton refuses it."""
    out = build_repository(save_checkpoint(tiny_model, tmp_path / "ck"), tmp_path / "repo")
    for config in out.glob("*/config.pbtxt"):
        assert any((config.parent / "1").iterdir()), config.parent.name
