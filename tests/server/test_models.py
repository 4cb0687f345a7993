"""The python-backend models in-process, on a stand-in for triton_python_backend_utils.

One `execute` call gets good and bad requests together, as the dynamic batcher hands them over: each bad
one gets its own INVALID_ARG response and the good ones their results, computed as one batch.
"""

from __future__ import annotations

import importlib
import json
import sys

import numpy as np
import pytest
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2

from diffusegae.engines import Pipeline, Speedups
from diffusegae.images import to_model
from diffusegae.server.repository import build_repository
from diffusegae.server.specs import ATTRIBUTES, SEED, STEPS, named, pair

from . import fake_pb_utils as pb
from .serving import dataset_images


@pytest.fixture(scope="module")
def repository(tmp_path_factory, checkpoint):
    return build_repository(checkpoint, tmp_path_factory.mktemp("models-repo"))


@pytest.fixture(scope="module")
def load(repository):
    """load(name) → the model's TritonPythonModel, initialised as tritonserver would."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "triton_python_backend_utils", pb)
        for name in [m for m in sys.modules if m.startswith("diffusegae.server.models.")]:
            mp.delitem(sys.modules, name)  # bind them to the stand-in

        def load(name: str, config_text: str | None = None):
            folder = repository / name
            text = config_text or (folder / "config.pbtxt").read_text()
            config = text_format.Parse(text, model_config_pb2.ModelConfig())
            shim = (folder / "1" / "model.py").read_text()
            module = shim.split("from ")[1].split(" import")[0]
            model = importlib.import_module(module).TritonPythonModel()
            model.initialize(
                {
                    "model_config": json.dumps(
                        json_format.MessageToDict(config, preserving_proto_field_name=True)
                    ),
                    "model_name": name,
                    "model_repository": str(folder),
                    "model_version": "1",
                    "model_instance_kind": "CPU",
                }
            )
            return model

        yield load


def _error(response) -> str:
    assert response.has_error(), "expected an error response"
    assert response.error().code() == pb.TritonError.INVALID_ARG
    return response.error().message()


def _output(response, name: str) -> np.ndarray:
    assert not response.has_error(), response.error().message()
    return pb.get_output_tensor_by_name(response, name).as_numpy()


def _steps(n: int, s: int) -> np.ndarray:
    return np.full((n, 1), s, np.int32)


def test_invert_batch_mixes_step_counts_and_rejects_only_the_bad_requests(load, pipeline):
    model = load("invert")
    x0 = to_model(dataset_images(3, seed=2))
    z = pipeline.encode(x0)
    nan = x0[:1].copy()
    nan[0, 1, 2, 3] = np.nan
    requests = [
        pb.request(x0=x0[:2], z_sem=z[:2], steps=_steps(2, 3)),
        pb.request(x0=x0[:1], z_sem=z[:1], steps=_steps(1, 700)),
        pb.request(x0=x0[2:], z_sem=z[2:], steps=_steps(1, 5)),
        pb.request(x0=nan, z_sem=z[:1], steps=_steps(1, 3)),
        pb.request(x0=x0[:1], z_sem=z[:1], steps=_steps(1, 0)),
        pb.request(x0=x0[:1], z_sem=z[:1]),
    ]
    responses = model.execute(requests)
    assert len(responses) == len(requests)
    np.testing.assert_allclose(_output(responses[0], "x_t"), pipeline.invert(x0[:2], z[:2], 3), atol=1e-5)
    np.testing.assert_allclose(_output(responses[2], "x_t"), pipeline.invert(x0[2:], z[2:], 5), atol=1e-5)
    assert "use 500 or 1000 instead" in _error(responses[1])
    assert "contains NaN or infinity (row 0)" in _error(responses[3])
    assert "steps must be in 1..1000, got 0" in _error(responses[4])
    assert "input 'steps' is missing" in _error(responses[5])


def test_loop_models_run_the_speedups_their_config_names(load, pipeline, checkpoint, repository, tmp_path):
    fast = Speedups(feature_reuse=2, invert_steps=3)
    repo = build_repository(checkpoint, tmp_path, speedups=fast)
    params = {name: _params(repo, name) for name in ("invert", "decode", "unet")}
    assert params["invert"]["feature_reuse"] == "2" and params["invert"]["invert_steps"] == "3"
    assert params["decode"]["feature_reuse"] == "2" and "invert_steps" not in params["decode"]
    assert "feature_reuse" not in params["unet"] and "feature_reuse" not in _params(repository, "invert")
    x0 = to_model(dataset_images(2, seed=3))
    z = pipeline.encode(x0)
    reused = Pipeline(pipeline.engine, speedups=fast)
    invert = load("invert", (repo / "invert" / "config.pbtxt").read_text())
    (response,) = invert.execute([pb.request(x0=x0, z_sem=z, steps=_steps(2, 6))])  # asks 6, walks 3
    x_t = _output(response, "x_t")
    np.testing.assert_allclose(x_t, reused.invert(x0, z, 3), atol=1e-5)
    decode = load("decode", (repo / "decode" / "config.pbtxt").read_text())
    (response,) = decode.execute([pb.request(x_t=x_t, z_sem=z, steps=_steps(2, 6))])
    np.testing.assert_allclose(_output(response, "x0"), reused.decode(x_t, z, 6), atol=1e-5)
    (response,) = invert.execute([pb.request(x0=x0[:1], z_sem=z[:1], steps=_steps(1, 700))])
    assert "use 500 or 1000 instead" in _error(response)  # what was asked is still checked


def _params(repo, name: str) -> dict[str, str]:
    text = (repo / name / "config.pbtxt").read_text()
    config = text_format.Parse(text, model_config_pb2.ModelConfig())
    return {k: v.string_value for k, v in config.parameters.items()}


def test_decode_rejects_a_wrong_width(load, pipeline):
    model = load("decode")
    x = np.zeros((1, 3, 32, 32), np.float32)
    (response,) = model.execute([pb.request(x_t=x, z_sem=np.zeros((2, 512), np.float32), steps=_steps(1, 2))])
    assert "batch sizes differ" in _error(response)


def test_a_failing_batch_is_retried_request_by_request(load):
    """A request that passes the checks but breaks the computation fails alone, with INTERNAL."""
    model = load("postprocess")
    compute = model.compute

    def fragile(batch):
        if (batch["x0"] == 0.5).all(axis=(1, 2, 3)).any():
            raise RuntimeError("poisoned")
        return compute(batch)

    model.compute = fragile
    good = np.zeros((2, 3, 32, 32), np.float32)
    responses = model.execute([pb.request(x0=good), pb.request(x0=good[:1] + 0.5), pb.request(x0=good)])
    assert _output(responses[0], "image").shape == (2, 32, 32, 3)
    assert _output(responses[2], "image").shape == (2, 32, 32, 3)
    assert responses[1].error().code() == pb.TritonError.INTERNAL
    assert "poisoned" in responses[1].error().message()


def test_swap_takes_each_rows_own_attributes(load):
    model = load("swap")
    a, b = pair("z_dis")
    za, zb = np.zeros((2, 100), np.float32), np.ones((2, 100), np.float32)
    names = np.array([[b"background", b"pose"], [b"identity", b"pose"]], dtype=object)
    (response,) = model.execute([pb.request(**{a: za, b: zb, ATTRIBUTES: names})])
    out = _output(response, "z_dis")
    np.testing.assert_array_equal(out[0], np.r_[np.zeros(60), np.ones(40)])
    np.testing.assert_array_equal(out[1], np.r_[np.ones(60), np.zeros(20), np.ones(20)])


def test_combine_draws_the_pipelines_noise(load, pipeline):
    model = load("combine")
    parts = {
        named("z_dis", name): np.full((3, 100), i, np.float32)
        for i, name in enumerate(("identity", "background", "pose"))
    }
    same, mixed = np.full((3, 1), 4, np.int64), np.array([[4], [9], [4]], np.int64)
    responses = model.execute([pb.request(**parts, **{SEED: same}), pb.request(**parts, **{SEED: mixed})])
    np.testing.assert_array_equal(_output(responses[0], "x_t"), pipeline.noise(3, 4))
    mixed_x_t = _output(responses[1], "x_t")
    np.testing.assert_array_equal(mixed_x_t[[0, 2]], pipeline.noise(3, 4)[[0, 2]])
    np.testing.assert_array_equal(mixed_x_t[1], pipeline.noise(3, 9)[1])
    np.testing.assert_array_equal(
        _output(responses[0], "z_dis")[0], np.r_[np.zeros(60), np.ones(20), np.full(20, 2)]
    )


def test_unet_checks_the_timestep(load):
    model = load("unet")
    x, z = np.zeros((2, 3, 32, 32), np.float32), np.zeros((2, 512), np.float32)
    ok, bad = model.execute(
        [pb.request(x_t=x, t=np.array([0, 999]), z_sem=z), pb.request(x_t=x, t=np.array([3, 1000]), z_sem=z)]
    )
    assert _output(ok, "eps").shape == x.shape
    assert "t must be in 0..999, got 1000 (row 1)" in _error(bad)


def test_a_repository_for_another_config_fails_to_load(load, repository):
    text = (repository / "prepare" / "config.pbtxt").read_text().replace("-1, -1, -1", "64, 64, 3")
    with pytest.raises(RuntimeError, match="rebuild the repository"):
        load("prepare", text)


def test_prepare_checks_every_value_of_each_op_and_converts_its_images(load):
    model = load("prepare")
    img = dataset_images(2, seed=8)
    names = np.array([[b"pose"]] * 2, dtype=object)
    good_edit = pb.request(source=img, reference=img[::-1], attributes=names, steps=_steps(2, 4))
    good_interpolate = pb.request(
        image_a=img[:1], image_b=img[1:], alpha=np.ones((1, 1), np.float32), steps=_steps(1, 2)
    )
    requests = [
        good_edit,
        pb.request(image=img[:1], steps=_steps(1, 999)),
        good_interpolate,
        pb.request(
            source=img, reference=img, attributes=np.array([[b"hat"]] * 2, dtype=object), steps=_steps(2, 4)
        ),
        pb.request(
            image_a=img[:1], image_b=img[1:], alpha=np.full((1, 1), np.nan, np.float32), steps=_steps(1, 2)
        ),
        pb.request(
            image_identity=img,
            image_background=img,
            image_pose=img,
            seed=-np.ones((2, 1), np.int64),
            steps=_steps(2, 2),
        ),
        pb.request(steps=_steps(1, 2)),
    ]
    responses = model.execute(requests)
    edit_outputs = {t.name() for t in responses[0].output_tensors()}
    assert edit_outputs == {"x0_source", "x0_reference"}
    np.testing.assert_array_equal(_output(responses[0], "x0_reference"), to_model(img[::-1]))
    assert _output(responses[2], "x0_image_a").shape == (1, 3, 32, 32)
    assert "use 500 or 1000 instead" in _error(responses[1])
    assert "unknown attribute 'hat'" in _error(responses[3])
    assert "alpha must be a finite number" in _error(responses[4])
    assert "seed must be an integer in 0.." in _error(responses[5])
    assert "send at least one image" in _error(responses[6])


def test_steps_must_be_one_per_row(load):
    model = load("decode")
    x, z = np.zeros((1, 3, 32, 32), np.float32), np.zeros((1, 512), np.float32)
    (response,) = model.execute([pb.request(x_t=x, z_sem=z, **{STEPS: np.array([[2.0]], np.float32)})])
    assert "steps must be one integer per image" in _error(response)
