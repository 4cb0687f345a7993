"""The CUDA C++ kernel compiles for the GPU machines (sm_90), checked on CPU wherever nvcc is installed.

Only the device code is compiled (nvcc -cubin), against this venv's torch headers: the extension's host half
is torch's pybind glue, and compiling it too would take this 2-core machine minutes. The CPU wheel of torch
ships the c10/cuda headers but not their generated config header, so the test writes that one line itself.
"""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

from diffusegae.kernels.cuda_adagn import EXTENSION, SOURCE


def _nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found is None and Path("/usr/local/cuda/bin/nvcc").is_file():
        found = "/usr/local/cuda/bin/nvcc"
    return found


pytestmark = pytest.mark.skipif(_nvcc() is None, reason="nvcc is not installed")

KERNELS = ("fused_kernel", "partial_stats_kernel", "split_apply_kernel")
DTYPES = ("f", "N3c104HalfE", "N3c108BFloat16E")  # mangled float, at::Half, at::BFloat16


def test_device_code_compiles_for_sm90_in_every_dtype(tmp_path):
    from torch.utils.cpp_extension import include_paths

    config = tmp_path / "include" / "c10" / "cuda" / "impl" / "cuda_cmake_macros.h"
    config.parent.mkdir(parents=True)
    config.write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
    cubin = tmp_path / "adagn.cubin"
    includes = [f"-I{p}" for p in [*include_paths(), config.parents[3], sysconfig.get_paths()["include"]]]
    command = [_nvcc(), "-std=c++20", "-O3", "-arch=sm_90", "-cubin", "-w", "-o", str(cubin), str(SOURCE)]
    command += [*includes, f"-DTORCH_EXTENSION_NAME={EXTENSION}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    symbols = cubin.read_bytes()
    for kernel in KERNELS:
        for dtype in DTYPES:
            # e.g. fused_kernelIN3c104HalfELi8EE: a template instance per dtype (and vector width)
            assert f"{kernel}I{dtype}".encode() in symbols, (kernel, dtype)
