"""The on-disk build caches (ONNX files, TensorRT plans): a JSON manifest of what each file was built from,
and atomic publication, shared by every builder so they keep one format.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


def read_manifest(out: Path) -> dict[str, Any]:
    try:
        data = json.loads((out / MANIFEST).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}  # no or unreadable manifest: everything gets rebuilt
    if data.get("version") != MANIFEST_VERSION:
        return {}
    return dict(data.get("models", {}))


def write_manifest(out: Path, entries: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".manifest.", suffix=".tmp", dir=out)
    with os.fdopen(fd, "w") as f:
        json.dump({"version": MANIFEST_VERSION, "models": entries}, f, indent=2, sort_keys=True)
        f.write("\n")
    publish(Path(tmp), out / MANIFEST)


def publish(tmp: Path, path: Path) -> None:
    # mkstemp makes owner-only files; a server running as another user must be able to read the cache.
    tmp.chmod(0o644)
    os.replace(tmp, path)


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
