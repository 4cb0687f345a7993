"""The train tests run single-threaded (see torch_threads in tests/conftest.py)."""

from ..conftest import torch_threads

one_thread = torch_threads(1)
