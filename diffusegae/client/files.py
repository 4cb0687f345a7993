"""The batch editor's inputs and outputs: which files, the size the server wants, where each output goes.

Inputs are image files (IMAGE_SUFFIXES, any case; names starting with "." are left out) in a folder, not
its subfolders, or the files a glob matches, always in sorted order. Each source `<stem>.<ext>` writes
`<out>/<stem>.png`. An output is written to a temp file beside it (`.<name>.<token>` + TMP_SUFFIX), then
renamed over the final name, so an output that exists is always complete; a temp file left by a killed
run is removed by the next run (clean_temp_files).
"""

from __future__ import annotations

import glob
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from diffusegae.client.errors import Retry
from diffusegae.fileio import TMP_SUFFIX, write_atomic
from diffusegae.server.specs import EDIT

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class BatchError(ValueError):
    """The batch cannot run as asked (nothing was edited): the message says what to change."""


class InputError(Exception):
    """One input file cannot be used; the message is the reason (the batch goes on without it)."""


@dataclass(frozen=True)
class Job:
    """One edit: a source file, its reference file (None: the batch's single reference), the output."""

    source: Path
    reference: Path | None
    out: Path


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()


def list_images(spec: str | Path | Sequence[str | Path], what: str = "--source") -> list[Path]:
    """The image files of a folder, a glob, one file, or a list of files, sorted; BatchError if none."""
    if not isinstance(spec, str | Path):
        paths = [Path(p) for p in spec]
        if not paths:
            raise BatchError(f"{what}: no images given")
        return sorted(paths)
    path = Path(spec)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if _is_image(p))
        where = f"folder {path}"
    elif path.is_file():
        return [path]
    elif glob.has_magic(str(spec)):
        found = sorted(p for p in map(Path, glob.glob(str(spec), recursive=True)) if _is_image(p))
        where = f"glob {str(spec)!r}"
    else:
        raise BatchError(f"{what}: {path} is not a folder, an image file or a glob")
    if not found:
        raise BatchError(f"{what}: no images ({', '.join(IMAGE_SUFFIXES)}) in {where}")
    return found


def plan(sources: list[Path], references: list[Path] | None, out_dir: Path) -> list[Job]:
    """Pair sources with references (by sorted order) and name the outputs; BatchError on any clash."""
    if references is not None and len(references) != len(sources):
        raise BatchError(
            f"--source has {len(sources)} images but --reference has {len(references)}: a reference folder "
            "pairs with the sources by sorted order, so give one reference per source, or a single image"
        )
    out_dir = out_dir.resolve()
    inputs = {p.resolve().parent for p in [*sources, *(references or [])]}
    if out_dir in inputs:
        raise BatchError(f"--out {out_dir} holds input images: write the outputs to a folder of their own")
    jobs: dict[str, Job] = {}
    clashes: list[str] = []
    for i, source in enumerate(sources):
        name = f"{source.stem}.png"
        if name in jobs:
            clashes.append(f"{jobs[name].source} and {source} → {name}")
            continue
        jobs[name] = Job(source, references[i] if references is not None else None, out_dir / name)
    if clashes:
        shown = "; ".join(clashes[:5]) + (f"; and {len(clashes) - 5} more" if len(clashes) > 5 else "")
        raise BatchError(f"sources with the same name would write the same output: {shown}; rename them")
    return list(jobs.values())


def read_image(path: Path, size: int, resize: bool = False) -> np.ndarray:
    """A file as uint8 [size,size,3] RGB (any mode is converted; alpha dropped); InputError if it can't be."""
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")  # decodes the whole file: truncated data fails here
            if img.size != (size, size):
                if not resize:
                    w, h = img.size
                    raise InputError(
                        f"image is {w}×{h}, the server's model works at {size}×{size} "
                        "(resize it, or pass --resize to resize with Lanczos)"
                    )
                img = img.resize((size, size), Image.Resampling.LANCZOS)
            return np.asarray(img, dtype=np.uint8).copy()
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError("file not found") from None
    except Image.UnidentifiedImageError:
        raise InputError("not an image file PIL can read") from None
    except Exception as err:  # a corrupt file can make a decoder raise almost anything
        raise InputError(f"unreadable image ({type(err).__name__}: {err})") from None


def write_png(image: np.ndarray, path: Path) -> None:
    """uint8 [H,W,3] → a PNG at `path`, written atomically."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    write_atomic(path, buffer.getvalue())


def clean_temp_files(out_dir: Path) -> int:
    """Remove the temp files a killed run left in `out_dir`; returns how many."""
    stale = list(out_dir.glob(f".*{TMP_SUFFIX}"))
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def server_image_size(url: str, retry: Retry | None = None, timeout: float = 30.0) -> int:
    """The image size of the served checkpoint: the `edit` op's output shape, [B, size, size, 3]."""
    from diffusegae.client.sync import Client

    retry = retry or Retry()
    with Client(url, timeout=timeout, retries=retry.retries, backoff=retry.backoff) as client:
        return client.image_size(EDIT)
