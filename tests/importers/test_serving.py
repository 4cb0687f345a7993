"""An imported Diff-AE checkpoint served by the real Triton server: the same builder, no GAE models, and a
`manipulate` ensemble that equals the in-process pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffusegae.cli import main
from diffusegae.client import Client
from diffusegae.client.errors import ServerError
from diffusegae.diffae_import import import_diffae
from diffusegae.engines import Pipeline
from diffusegae.engines.onnxruntime_engine import load_onnxruntime_engine
from diffusegae.images import to_model, to_uint8
from diffusegae.server.repository import build_repository
from tests.importers import reference as ref
from tests.server.serving import assert_same_images, ort_cache, start_server

__all__ = ["ort_cache"]  # keeps onnxruntime's cache in tmp for this module too

STEPS = 5


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("served-diffae")
    ckpt = ref.lightning_checkpoint(root / "last.ckpt")
    return import_diffae(ckpt, root / "imported", classifier=ref.classifier_checkpoint(root / "cls.ckpt"))


@pytest.fixture(scope="module")
def repository(checkpoint):
    return build_repository(checkpoint, checkpoint.parent / "repository")


@pytest.fixture(scope="module")
def client(repository, checkpoint):
    server = start_server(repository, checkpoint, checkpoint.parent / "triton")
    try:
        with Client(server.url, timeout=120) as c:
            yield c
    finally:
        assert server.stop() == 0, server.log_tail()


@pytest.fixture(scope="module")
def pipeline(checkpoint):
    from diffusegae.checkpoint import load_directions

    return Pipeline(load_onnxruntime_engine(checkpoint, threads=1), load_directions(checkpoint))


@pytest.fixture(scope="module")
def images():
    return to_uint8(ref.inputs()["x0"])  # uint8 [3,16,16,3]


def test_repository_has_no_gae_models_and_a_manipulate_op(repository):
    models = {p.name for p in repository.iterdir() if (p / "config.pbtxt").is_file()}
    assert {"manipulate", "steer", "reconstruct", "interpolate"} <= models
    assert not models & {"gae_encode", "gae_decode", "edit", "recombine", "swap", "combine"}


def test_manipulate_matches_the_pipeline(client, pipeline, images):
    x0 = to_model(images[:2])
    z = pipeline.encode(x0)
    want = pipeline.decode(pipeline.invert(x0, z, STEPS), pipeline.manipulate(z, "Smiling", 0.3), STEPS)
    got = client.manipulate(images[:2], "Smiling", 0.3, steps=STEPS)
    assert_same_images(got, to_uint8(want))
    by_number = client.manipulate(images[:2], 31, 0.3, steps=STEPS)  # Smiling is row 31
    np.testing.assert_array_equal(by_number, got)
    assert not np.array_equal(got, client.manipulate(images[:2], "Smiling", 0.0, steps=STEPS))


def test_reconstruct_matches_the_pipeline(client, pipeline, images):
    want = to_uint8(pipeline.reconstruct(to_model(images), steps=STEPS))
    assert_same_images(client.reconstruct(images, steps=STEPS), want)


@pytest.mark.parametrize(
    ("direction", "amp", "message"),
    [
        ("Moustache", 0.3, "unknown direction 'Moustache'"),
        ("40", 0.3, "0..39"),
        ("Male", float("nan"), "amp"),
    ],
)
def test_bad_manipulate_requests_say_what_to_send(client, images, direction, amp, message):
    with pytest.raises(ServerError, match=message) as err:
        client.manipulate(images[:1], direction, amp, steps=STEPS)
    assert err.value.status == "INVALID_ARGUMENT"
    assert client.manipulate(images[:1], "Male", 0.2, steps=STEPS).shape == (1, 16, 16, 3)  # still serving


def test_gae_ops_are_not_served(client, images):
    with pytest.raises(ServerError, match="edit"):
        client.edit(images[:1], images[1:2], swap="background", steps=STEPS)


def test_bench_loads_manipulate(client, checkpoint, tmp_path):
    out = tmp_path / "bench"
    args = ["bench", "--server", client.url, "--op", "manipulate", "--steps", "2", "--concurrency", "1"]
    assert main([*args, "--requests", "3", "--warmup", "1", "--out", str(out)]) == 0
    (level,) = json.loads((out / "manipulate.json").read_text())["levels"]
    assert level["ok"] == 3 and level["errors"] == 0
    assert main(["bench", "--checkpoint", str(checkpoint), "--write-input-data", str(tmp_path / "pa")]) == 0
    assert (tmp_path / "pa" / "manipulate.json").is_file()
