"""Fixtures of the engine tests: an isolated onnxruntime cache and a saved tiny checkpoint per module."""

import pytest

from diffusegae import save_checkpoint


@pytest.fixture(scope="module")
def ort_cache(tmp_path_factory):
    """onnxruntime writes a cache under $XDG_CACHE_HOME when first imported (at the first engine here)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        yield


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_model):
    return save_checkpoint(tiny_model, tmp_path_factory.mktemp("tiny32"))
