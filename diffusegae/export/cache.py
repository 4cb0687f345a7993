"""The on-disk build caches (ONNX files, TensorRT plans): a JSON manifest of what each file was built from,
written atomically (fileio.py), shared by every builder so they keep one format.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from diffusegae.fileio import write_json_atomic

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
    write_json_atomic(out / MANIFEST, {"version": MANIFEST_VERSION, "models": entries}, sort_keys=True)


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
