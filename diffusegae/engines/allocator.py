"""Keep freed memory in the process heap (glibc), so an eager CPU engine stops faulting its pages in.

An eager UNet call allocates and frees its activations, many of them megabytes, on every call. With
glibc's defaults a freed block above the mmap threshold (dynamic, at most 32 MiB) goes back to the kernel,
and the heap's free top is trimmed past the trim threshold, so the next call's blocks come back as fresh
pages that the kernel must fault in and zero. Measured on a diffae64 edit at batch 8 in bf16 (torch
engine, AMD EPYC family 26, 2 threads, 2026-12-03; bench/NOTES.md): 2.9 M minor page faults and about 25 s
per edit with the defaults, none and about 16–20 s with the thresholds below. The price is that the
process keeps its high-water mark of heap memory instead of returning it: what a serving process wants.

mallopt is process-wide; ONNX Runtime keeps its own arena and is not affected. Off with
DIFFUSEGAE_KEEP_FREED_MEMORY=0 (diffusegae.settings).
"""

from __future__ import annotations

import ctypes
import functools

from diffusegae import settings

# <malloc.h> parameter numbers
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Blocks up to 1 GiB come from the heap (a diffae64 activation at batch 8 is 16–64 MiB), and the heap's
# free top is returned to the kernel only past 2 GiB - 1 (mallopt takes an int).
MMAP_THRESHOLD = 1 << 30
MMAP_THRESHOLD_OLD_GLIBC = 32 << 20  # the most an older glibc accepts (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = (1 << 31) - 1


@functools.cache
def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds for this process (once); False where there is no glibc
    mallopt, it refused, or the setting turns it off."""
    if not settings.keep_freed_memory():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own symbols, libc's among them
    except (OSError, AttributeError, TypeError):  # no libc found, or not glibc (musl, macOS, Windows)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # Either one turns glibc's dynamic threshold off: the trim threshold alone would leave every block
    # above 128 KiB to mmap (27.8 M faults, 51 s in the same measurement), so the mmap threshold goes first.
    mmap = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) or mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_OLD_GLIBC)
    return bool(mmap) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
