"""The client: torch-free, request building, retries, errors; sync and asyncio against the real server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from diffusegae.client import AsyncClient, Client, Retry, ServerError, calls
from diffusegae.images import to_model, to_uint8
from diffusegae.server.launcher import free_port

from ..server.serving import assert_same_images, dataset_images

STEPS = 2


@pytest.fixture(scope="module")
def images():
    return dataset_images(4, seed=7)


def test_the_client_imports_no_torch():
    code = (
        "import sys, diffusegae.client, diffusegae.client.calls\n"
        "heavy = sorted(m for m in ('torch', 'onnxruntime', 'onnx', 'safetensors') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_calls_build_the_wire_tensors(images):
    call = calls.edit(images[:3], images[3], swap="pose", steps=20)
    assert call.model == "edit" and call.output == "output"
    assert call.inputs["source"].shape == call.inputs["reference"].shape == (3, 32, 32, 3)  # one reference
    assert call.inputs["attributes"].tolist() == [[b"pose"]] * 3
    assert call.inputs["steps"].dtype == np.int32 and call.inputs["steps"].shape == (3, 1)
    call = calls.interpolate(images[0], images[1], 0.25, None, 5)
    assert "attributes" not in call.inputs and call.inputs["alpha"].tolist() == [[0.25]]
    assert calls.recombine({"pose": images[:2]}, 20, 3).inputs["seed"].tolist() == [[3], [3]]
    assert calls.edit(images[:1], images[1:2], [], 20).inputs["attributes"].shape == (1, 0)


def test_an_inversion_is_sent_as_latents_with_its_own_steps_and_sampler(images):
    call = calls.inversion(images[:2], 10, "dpmpp2m")
    assert call.model == "inversion" and call.outputs == ("z_sem", "x_t")
    z_sem, x_T = np.ones((2, 512), np.float32), np.zeros((2, 3, 32, 32), np.float32)
    inversion = call.result({"z_sem": z_sem, "x_t": x_T})
    assert (inversion.steps, inversion.sampler) == (10, "dpmpp2m") and inversion.z_sem is z_sem
    edit = calls.edit_inverted(inversion, images[3], "pose")
    assert edit.model == "edit_inverted" and edit.inputs["x_t"] is x_T
    assert edit.inputs["reference"].shape == (2, 32, 32, 3)  # one reference for every source
    assert (
        edit.inputs["steps"].tolist() == [[10], [10]]
        and edit.inputs["sampler"].tolist() == [[b"dpmpp2m"]] * 2
    )
    assert calls.edit_inverted(inversion, images[3], "pose", steps=5).inputs["steps"].tolist() == [[5], [5]]
    with pytest.raises(TypeError, match="the Inversion that client"):
        calls.edit_inverted(images[0], images[3], "pose")


def test_pil_images_and_lists_become_batches(images):
    pil = Image.fromarray(images[0]).convert("RGBA")
    np.testing.assert_array_equal(calls.images(pil), images[:1])
    np.testing.assert_array_equal(calls.images([images[0], Image.fromarray(images[1])]), images[:2])
    assert calls.images(images[0]).shape == (1, 32, 32, 3)


@pytest.mark.parametrize(
    ("kwargs", "error", "phrase"),
    [
        ({"steps": 2.5}, TypeError, "steps must be an integer"),
        ({"steps": True}, TypeError, "steps must be an integer"),
        ({"steps": 2**31}, ValueError, "steps must fit int32"),
    ],
)
def test_values_the_wire_cannot_carry_fail_locally(images, kwargs, error, phrase):
    with pytest.raises(error, match=phrase):
        calls.reconstruct(images, **kwargs)


def test_retry_policy():
    retry = Retry(retries=3, backoff=0.5, max_delay=1.5)
    unavailable, invalid = ServerError("down", "UNAVAILABLE"), ServerError("bad", "INVALID_ARGUMENT")
    assert [retry.delay(i, unavailable) for i in range(4)] == [0.5, 1.0, 1.5, None]
    assert retry.delay(0, invalid) is None
    with pytest.raises(ValueError, match="must not be negative"):
        Retry(retries=-1)


def test_unavailable_server_is_retried_with_backoff_then_raised(images):
    url = f"127.0.0.1:{free_port()}"  # nothing listens there
    with Client(url, timeout=5, retries=2, backoff=0.1) as client:
        assert not client.is_ready()
        started = time.monotonic()
        with pytest.raises(ServerError) as info:
            client.reconstruct(images[:1], steps=STEPS)
        assert info.value.status == "UNAVAILABLE"
        assert time.monotonic() - started >= 0.1 + 0.2  # two retries: 0.1 s, then 0.2 s
        with pytest.raises(TimeoutError, match="not ready within"):
            client.wait_ready(timeout=0.3)


def test_sync_client_matches_the_pipeline(client, pipeline, images):
    client.wait_ready(timeout=10)
    want = to_uint8(pipeline.reconstruct(to_model(images[:2]), steps=STEPS))
    assert_same_images(client.reconstruct(images[:2], steps=STEPS), want)
    assert_same_images(client.reconstruct([Image.fromarray(x) for x in images[:2]], steps=STEPS), want)


def test_server_errors_carry_the_servers_message(client, images):
    with pytest.raises(ServerError) as info:
        client.edit(images[:1], images[1:2], swap=["hair"], steps=STEPS)
    assert info.value.status == "INVALID_ARGUMENT"
    assert "unknown attribute 'hair'; choose from identity, background, pose" in info.value.message
    assert "INVALID_ARGUMENT" in str(info.value)


def test_async_client_runs_every_op_concurrently_like_the_sync_one(server, client, images):
    a, b = images[:2], images[2:]
    parts = {"identity": a, "background": b, "pose": a}

    async def run():
        async with AsyncClient(server.url, timeout=120) as aclient:
            await aclient.wait_ready(timeout=10)
            assert await aclient.is_ready()
            results = await asyncio.gather(
                aclient.reconstruct(a, steps=STEPS),
                aclient.edit(a, b, swap=["background"], steps=STEPS),
                aclient.recombine(parts, steps=STEPS, seed=5),
                aclient.interpolate(a, b, 0.5, attributes=["identity", "pose"], steps=STEPS),
            )
            with pytest.raises(ServerError, match="cannot be spaced with an integer stride"):
                await aclient.reconstruct(a, steps=700)
            inversion = await aclient.invert(a, steps=STEPS)  # several outputs, one answer
            results.append(await aclient.edit_inverted(inversion, b, swap=["background"]))
            return results

    results = asyncio.run(run())
    want = [
        client.reconstruct(a, steps=STEPS),
        client.edit(a, b, swap=["background"], steps=STEPS),
        client.recombine(parts, steps=STEPS, seed=5),
        client.interpolate(a, b, 0.5, attributes=["identity", "pose"], steps=STEPS),
        client.edit(a, b, swap=["background"], steps=STEPS),
    ]
    for got, expected in zip(results, want, strict=True):
        assert_same_images(got, expected)
