"""Step-level batching on the real server (repository built with loop_batching="step"): each request gets
the image the in-process pipeline gives it alone, joins the running batch mid-loop, and the server still
refuses bad requests and stops cleanly with requests in flight."""

from __future__ import annotations

import re
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from diffusegae.client import Client, ServerError
from diffusegae.images import to_model, to_uint8
from diffusegae.server.repository import build_repository
from diffusegae.server.specs import DECODE, PARAM_DEADLINE, PARAM_MAX_ACTIVE, PARAM_MAX_WAITING

from .serving import cache_counts, dataset_images, start_server


@pytest.fixture(scope="module")
def step_server(tmp_path_factory, checkpoint):
    base = tmp_path_factory.mktemp("step")
    repository = build_repository(checkpoint, base / "repository", loop_batching="step")
    server = start_server(repository, None, base / "triton")
    yield server
    assert server.stop() == 0, server.log_tail()


def _close(got: np.ndarray, want: np.ndarray) -> None:
    # One batch's float rounding differs from another's by ~1e-6 (onnxruntime's kernels per batch size):
    # at most one uint8 level after conversion.
    assert got.shape == want.shape and np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_concurrent_requests_with_mixed_steps_and_samplers_equal_the_pipeline(step_server, pipeline):
    images = dataset_images(4, seed=8)
    cases = [(images[i : i + 1], steps, sampler) for i, (steps, sampler) in
             enumerate([(3, "ddim"), (8, "dpmpp2m"), (5, "ddim"), (10, "dpmpp2m")])]  # fmt: skip
    with Client(step_server.url, timeout=120) as client, ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(client.reconstruct, x, steps, sampler) for x, steps, sampler in cases]
        results = [f.result() for f in futures]
    for (x, steps, sampler), got in zip(cases, results, strict=True):
        _close(got, to_uint8(pipeline.reconstruct(to_model(x), steps=steps, sampler=sampler)))


def test_the_schedulers_figures_are_on_the_metrics_endpoint(step_server):
    with Client(step_server.url, timeout=120) as client:
        client.reconstruct(dataset_images(2), steps=4)
    text = urllib.request.urlopen(f"http://127.0.0.1:{step_server.ports['metrics']}/metrics").read().decode()
    for model in ("invert", "decode"):
        ticks = re.search(rf'diffusegae_loop_ticks_total{{model="{model}"}} (\S+)', text)
        assert ticks is not None and float(ticks.group(1)) >= 4, text[-2000:]
        assert f'diffusegae_loop_active{{model="{model}"}}' in text
        assert f'diffusegae_loop_samples_stepped_total{{model="{model}"}}' in text


def test_a_short_request_joins_and_leaves_a_running_long_one(step_server, pipeline):
    images = dataset_images(2, seed=9)
    with Client(step_server.url, timeout=300) as client, ThreadPoolExecutor(2) as pool:
        long = pool.submit(client.reconstruct, images[:1], 200)
        time.sleep(1.0)  # the long request is in its loop by now
        short = client.reconstruct(images[1:], steps=2)
        assert not long.done()  # it finished inside the long one's loop, not after it
        _close(short, to_uint8(pipeline.reconstruct(to_model(images[1:]), steps=2)))
        long.result()


def test_bad_requests_are_still_refused_before_the_loop(step_server):
    with Client(step_server.url, timeout=60) as client:
        with pytest.raises(ServerError, match="unknown sampler 'euler'") as info:
            client.reconstruct(dataset_images(1), steps=3, sampler="euler")
        assert info.value.status == "INVALID_ARGUMENT"
        with pytest.raises(ServerError, match=r"steps must be in 1\.\.1000") as info:
            client.infer(
                "decode",
                {
                    "x_t": np.zeros((1, 3, 32, 32), np.float32),
                    "z_sem": np.zeros((1, 512), np.float32),
                    "steps": np.zeros((1, 1), np.int32),
                },
                "x0",
            )
        assert info.value.status == "INVALID_ARGUMENT"
        assert client.reconstruct(dataset_images(1), steps=2).shape == (1, 32, 32, 3)  # still serving


def test_stopping_with_requests_in_flight_does_not_hang(tmp_path, checkpoint):
    repository = build_repository(checkpoint, tmp_path / "repository", loop_batching="step")
    server = start_server(repository, None, tmp_path / "triton")
    pool = ThreadPoolExecutor(3)
    try:
        client = Client(server.url, timeout=120, retries=0)
        images = dataset_images(2, seed=11)
        futures = [pool.submit(client.reconstruct, images[:1], 500) for _ in range(2)]
        futures.append(pool.submit(client.edit, images[:1], images[1:], "pose", 500))  # parallel steps
        time.sleep(1.0)
    finally:
        code = server.stop()  # drains: the loops give back what they hold, so nothing waits out a timeout
    assert code == 0, server.log_tail()
    for future in futures:
        with pytest.raises(ServerError) as info:
            future.result(timeout=60)
        assert info.value.retryable, info.value  # UNAVAILABLE: a client with replicas retries elsewhere
    pool.shutdown()


# the tight server's loop deadline: an S = 1000 decode takes longer (5.1 s on the AVX-512 EPYC, 2026-12-03)
DEADLINE_S = 2.5


@pytest.fixture(scope="module")
def tight_server(tmp_path_factory, checkpoint):
    """A step-batched server whose decode loop steps one sample at a time, lets one wait, and drops a
    request DEADLINE_S after it arrived."""
    base = tmp_path_factory.mktemp("tight")
    repository = build_repository(checkpoint, base / "repository", loop_batching="step")
    config = repository / DECODE / "config.pbtxt"
    limits = {PARAM_DEADLINE: DEADLINE_S, PARAM_MAX_ACTIVE: 1, PARAM_MAX_WAITING: 1}
    config.write_text(
        config.read_text()
        + "".join(
            f'parameters {{ key: "{k}" value: {{ string_value: "{v}" }} }}\n' for k, v in limits.items()
        )
    )
    server = start_server(repository, None, base / "triton")
    yield server
    assert server.stop() == 0, server.log_tail()


def _decode(client: Client, steps: int, timeout: float | None = None) -> np.ndarray:
    inputs = {
        "x_t": np.random.default_rng(steps).standard_normal((1, 3, 32, 32)).astype(np.float32),
        "z_sem": np.zeros((1, 512), np.float32),
        "steps": np.full((1, 1), steps, np.int32),
    }
    if timeout is not None:
        client.timeout = timeout
    return client.infer(DECODE, inputs, "x0")


def test_a_request_past_the_deadline_frees_its_slot_and_a_full_queue_refuses(tight_server):
    with ThreadPoolExecutor(2) as pool, Client(tight_server.url, timeout=120, retries=0) as client:
        start = time.monotonic()
        long = pool.submit(_decode, client, 1000)  # takes the only slot
        time.sleep(1.0)
        waiting = pool.submit(_decode, client, 2)  # takes the only place in the queue
        time.sleep(0.5)
        with pytest.raises(ServerError, match="the sampling queue is full") as info:
            _decode(client, 2)  # no room: refused at once, retryable
        assert info.value.retryable
        with pytest.raises(ServerError, match="ran past its deadline"):
            long.result()
        late = time.monotonic() - start
        assert DEADLINE_S - 0.5 < late < DEADLINE_S + 10, late
        assert waiting.result().shape == (1, 3, 32, 32)  # the freed slot went to the waiting request
        assert _decode(client, 2).shape == (1, 3, 32, 32)  # and the server goes on serving


def test_a_cancelled_request_leaves_the_batch_at_the_next_tick(tight_server):
    with Client(tight_server.url, timeout=1.0, retries=0) as client:
        start = time.monotonic()
        with pytest.raises(ServerError) as info:
            _decode(client, 1000)  # the client gives up after 1 s: gRPC cancels the call
        assert info.value.status == "DEADLINE_EXCEEDED"
        # the slot is free before the cancelled loop would have ended or reached its deadline
        assert _decode(client, 2, timeout=120).shape == (1, 3, 32, 32)
        assert time.monotonic() - start < DEADLINE_S


def test_the_step_batched_inversion_answers_a_repeat_from_its_cache(step_server, pipeline):
    images = dataset_images(2, seed=32)
    before = cache_counts(step_server)
    with Client(step_server.url, timeout=120) as client:
        first = client.reconstruct(images, steps=3)
        again = client.reconstruct(images, steps=3)
    after = cache_counts(step_server)
    assert after["misses"] - before["misses"] == 2 and after["hits"] - before["hits"] == 2
    np.testing.assert_array_equal(first, again)
    _close(again, to_uint8(pipeline.reconstruct(to_model(images), steps=3)))
