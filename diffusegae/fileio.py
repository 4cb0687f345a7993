"""Atomic file writes: the one way this project replaces a file that a reader may be looking at.

A file is written to a temp file beside its destination (`.<name>.<token>` + TMP_SUFFIX), flushed to disk,
then renamed over the destination, so a reader sees the old file or the new one, never half of one. The
temp file is created with the process umask, as open() would. Standard library only (the client uses it).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".diffusegae-tmp"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temp path beside `path` for any writer; when the block succeeds it is synced and renamed over
    `path`, and when it raises (or the writer fails) the temp file is removed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TMP_SUFFIX}")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | Path, data: bytes | bytearray | memoryview | str) -> None:
    """Write `data` (text as UTF-8) to `path` all at once."""
    raw = data.encode() if isinstance(data, str) else data
    with atomic_path(path) as tmp, open(tmp, "xb") as f:
        f.write(raw)


def write_json_atomic(path: str | Path, data: Any, **dumps: Any) -> None:
    """`data` as indented JSON plus a newline, written atomically (`dumps`: more json.dumps options)."""
    write_atomic(path, json.dumps(data, indent=2, **dumps) + "\n")
