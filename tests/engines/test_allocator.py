"""The torch engine keeps freed memory in the heap: blocks freed and allocated again fault no pages in.

Each case runs in a fresh interpreter, since mallopt changes the whole process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from diffusegae import settings

# like a UNet call's activations: megabyte blocks, more in all than glibc's trim threshold
BLOCKS, BLOCK_MIB = 12, 8
PAGES = BLOCKS * BLOCK_MIB * 2**20 // 4096

# Builds a CPU torch engine (the tiny32 preset), then allocates and frees the blocks three times, and
# prints the minor page faults of the third time and whether the engine set the thresholds.
PROBE = f"""
import json, resource, numpy as np
from diffusegae import build_model, preset
from diffusegae.engines.allocator import keep_freed_memory
from diffusegae.engines.torch_engine import TorchEngine
TorchEngine(build_model(preset("tiny32")))
def cycle():
    blocks = [np.ones({BLOCK_MIB} * 2**20, np.uint8) for _ in range({BLOCKS})]
    del blocks
cycle(); cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
cycle()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({{"faults": faults, "applied": keep_freed_memory()}}))
"""


def probe(keep: str) -> dict:
    # NumPy's huge-page advice would fault 2 MiB at a time and hide the difference being measured
    env = {**os.environ, "DIFFUSEGAE_KEEP_FREED_MEMORY": keep, "NUMPY_MADVISE_HUGEPAGE": "0"}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_torch_engine_reuses_freed_memory_and_the_setting_turns_it_off():
    kept, default = probe("1"), probe("0")
    assert kept["applied"] and not default["applied"]
    # glibc's defaults give part of the heap back and fault it in again (6,148 of 24,576 pages here on
    # 2026-12-03); the kept heap hands the freed blocks back as they are
    assert default["faults"] > PAGES // 10, default
    assert kept["faults"] < PAGES // 100, kept


def test_the_setting_rejects_values_other_than_0_and_1(monkeypatch):
    monkeypatch.setenv("DIFFUSEGAE_KEEP_FREED_MEMORY", "yes")
    with pytest.raises(ValueError, match="must be 0 or 1"):
        settings.keep_freed_memory()
