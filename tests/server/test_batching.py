"""Concurrent requests are stacked into one batch by the loop models, each result still its own."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import tritonclient.grpc as grpcclient

from diffusegae.client import Client
from diffusegae.images import to_model, to_uint8
from diffusegae.server.specs import DECODE, INVERT

from .serving import assert_same_images, dataset_images

CONCURRENCY = 8


def batch_stats(server, model: str) -> tuple[Counter, int, int]:
    """(executions per batch size, inference count, execution count) of a model so far."""
    with grpcclient.InferenceServerClient(server.url) as stats_client:
        (stats,) = stats_client.get_inference_statistics(model, as_json=True)["model_stats"]
    sizes = Counter(
        {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in stats.get("batch_stats", [])}
    )
    return sizes, int(stats.get("inference_count", 0)), int(stats.get("execution_count", 0))


def run_concurrently(server, jobs):
    def send(job):
        image, steps = job
        with Client(server.url, timeout=120) as c:
            return c.reconstruct(image, steps=steps)

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(send, jobs))


@pytest.fixture(scope="module")
def images():
    return dataset_images(CONCURRENCY, seed=5)


def test_concurrent_requests_share_loop_batches(server, pipeline, images):
    before = {m: batch_stats(server, m) for m in (INVERT, DECODE)}
    results = run_concurrently(server, [(images[i], 3) for i in range(CONCURRENCY)])
    want = to_uint8(pipeline.reconstruct(to_model(images), steps=3))
    for i, got in enumerate(results):
        assert_same_images(got, want[i : i + 1])
    for model in (INVERT, DECODE):
        sizes, inferences, executions = batch_stats(server, model)
        new = sizes - before[model][0]
        print(f"{model}: executions by batch size {dict(new)}")
        assert inferences - before[model][1] == CONCURRENCY
        assert executions - before[model][2] < CONCURRENCY, "every request ran alone"
        assert max(new) > 1, f"{model} never ran a batch of more than one request: {dict(new)}"


def test_requests_with_different_step_counts_batch_together(server, pipeline, images):
    steps = [2, 5, 3, 5, 2, 4]
    results = run_concurrently(server, [(images[i], s) for i, s in enumerate(steps)])
    for i, (got, s) in enumerate(zip(results, steps, strict=True)):
        assert_same_images(got, to_uint8(pipeline.reconstruct(to_model(images[i : i + 1]), steps=s)))
