"""The training image stream: the same images inline and from worker processes, in step order."""

from __future__ import annotations

import numpy as np
import pytest

from diffusegae.data import AttributeDataset
from diffusegae.train.batches import Batches, default_workers
from diffusegae.train.stages import stage_spec


@pytest.fixture(scope="module")
def dataset() -> AttributeDataset:
    return AttributeDataset(resolution=16, seed=0)


@pytest.mark.parametrize("stage", [1, 2])
def test_workers_render_the_same_stream_as_inline(dataset: AttributeDataset, stage: int) -> None:
    spec = stage_spec(stage)
    inline = Batches(dataset, spec, seed=3, segment_start=7, batch_size=3)
    pooled = Batches(dataset, spec, seed=3, segment_start=7, batch_size=3, workers=2)
    try:
        steps = range(7, 13)  # more steps than the pool plans ahead (2 × workers)
        expected = [inline.images(n) for n in steps]
        got = [pooled.images(n) for n in steps]
    finally:
        pooled.close()
    shape = (3, 16, 16, 3) if stage == 1 else (3, 4, 16, 16, 3)  # groups: centre + one partner per attribute
    assert all(e.shape == shape and e.dtype == np.uint8 for e in expected)
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_array_equal(g, e)
    assert not np.array_equal(expected[0], expected[1])  # a stream, not one batch repeated


def test_stage1_batches_depend_on_the_step_only(dataset: AttributeDataset) -> None:
    a = Batches(dataset, stage_spec(1), seed=0, segment_start=0, batch_size=2)
    b = Batches(dataset, stage_spec(1), seed=0, segment_start=40, batch_size=2)
    np.testing.assert_array_equal(a.images(5), b.images(5))


def test_pooled_stream_refuses_steps_out_of_order(dataset: AttributeDataset) -> None:
    pooled = Batches(dataset, stage_spec(1), seed=0, segment_start=0, batch_size=2, workers=1)
    try:
        pooled.images(0)
        with pytest.raises(ValueError, match="expected step 1, got 3"):
            pooled.images(3)
    finally:
        pooled.close()
    with pytest.raises(ValueError, match=">= 0"):
        Batches(dataset, stage_spec(1), seed=0, segment_start=0, batch_size=2, workers=-1)


def test_default_workers_render_inline_on_cpu_only() -> None:
    assert default_workers("cpu") == 0
    assert 1 <= default_workers("cuda") <= 8
