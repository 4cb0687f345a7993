"""A bounded cache of DDIM inversions: the x_T of one image under one checkpoint, step count and sampler.

Editing one source with several references inverts the same image again for every edit, and the inversion
is half the edit's work. The `invert` loop model keeps its answers here and skips the loop for a row it has
seen: the result is the stored array itself, bit for bit what the loop gave the first time (the loop is
deterministic; nothing approximate is reused).

The key is a SHA-256 over everything the answer depends on: the checkpoint's identity (its directory and
weight file's size and mtime), the image's bytes, shape and dtype, its z_sem bytes, the step count and
the sampler — so a different image, checkpoint, step count or sampler never hits. Entries are evicted
least recently used first once their bytes would pass `max_bytes`; every method takes one lock, so model
threads may share it.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np


def checkpoint_identity(directory: str | Path) -> str:
    """What tells one checkpoint's weights from another's without reading them: path, size and mtime."""
    path = Path(directory).resolve()
    weights = sorted(path.glob("*.safetensors"))
    stamp = [(w.name, w.stat().st_size, w.stat().st_mtime_ns) for w in weights]
    return f"{path}:{stamp}"


class XTCache:
    """LRU map from (checkpoint, image, z_sem, steps, sampler) to x_T, at most `max_bytes` of arrays."""

    def __init__(self, max_bytes: int, checkpoint: str) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must not be negative, got {max_bytes}")
        self.max_bytes, self.checkpoint = max_bytes, checkpoint
        self._entries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def key(self, image: np.ndarray, z_sem: np.ndarray, steps: int, sampler: str) -> str:
        digest = hashlib.sha256(self.checkpoint.encode())
        for array in (np.ascontiguousarray(image), np.ascontiguousarray(z_sem)):
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(array.tobytes())
        digest.update(f"|{int(steps)}|{sampler}".encode())
        return digest.hexdigest()

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found

    def put(self, key: str, x_t: np.ndarray) -> None:
        """Keep a copy of `x_t` (read-only) unless it alone is larger than the cache."""
        value = np.array(x_t, copy=True)
        value.setflags(write=False)
        if value.nbytes > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._entries[key] = value
            self._bytes += value.nbytes
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.nbytes

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
