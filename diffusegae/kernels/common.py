"""What the Triton and CUDA launchers share: how many programs (thread blocks) work on one group."""

from __future__ import annotations

import math

import torch

MAX_SPLIT = 64  # partials of one group are merged in one small vector / loop
MIN_SPLIT_CHUNK = 8192  # elements: below this a split program does too little to pay for its launch
PROGRAMS_PER_SM = 4  # the split path aims at this many programs per SM


def choose_split(bg: int, group_size: int, sm_count: int) -> int:
    """Programs per group: 1 when the B·G groups fill the GPU's SMs, else enough for a few per SM."""
    if bg <= 0 or bg >= sm_count:
        return 1
    wanted = math.ceil(PROGRAMS_PER_SM * sm_count / bg)
    return max(1, min(wanted, group_size // MIN_SPLIT_CHUNK, MAX_SPLIT))


_sm_counts: dict[int, int] = {}


def sm_count(device: torch.device) -> int:
    """Streaming multiprocessors of a CUDA device (looked up once per device)."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _sm_counts:
        _sm_counts[index] = torch.cuda.get_device_properties(index).multi_processor_count
    return _sm_counts[index]
