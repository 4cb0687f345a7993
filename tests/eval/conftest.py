"""Evaluation tests run single-threaded: many small ops, where a second OpenMP thread gains little on an idle
machine and costs a great deal on a busy one (spin-waiting for a core another process holds)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
