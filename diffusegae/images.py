"""Images at the edges (uint8 NHWC RGB) ↔ model space (float32 NCHW in [-1, 1]); PNG io and grids."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def to_model(images: np.ndarray) -> np.ndarray:
    """uint8 [B,H,W,3] (or [H,W,3]) → float32 [B,3,H,W] in [-1, 1]."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"images must be uint8, got {images.dtype}")
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be [B,H,W,3] or [H,W,3] RGB, got shape {images.shape}")
    return (images.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0).copy()


def to_uint8(x: np.ndarray) -> np.ndarray:
    """float [B,3,H,W] in [-1, 1] → uint8 [B,H,W,3] (values outside [-1, 1] are clipped)."""
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected [B,3,H,W], got shape {x.shape}")
    return np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1).copy()


def load_image(path: str | Path, size: int | None = None) -> np.ndarray:
    """An image file as uint8 [H,W,3] RGB, optionally resized (Lanczos) to size×size."""
    with Image.open(path) as img:
        img = img.convert("RGB")
        if size is not None and img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.LANCZOS)
        return np.asarray(img, dtype=np.uint8).copy()


def save_png(image: np.ndarray, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path)
    return path


def make_grid(
    rows: Sequence[np.ndarray],
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    pad: int = 2,
    scale: int = 1,
) -> np.ndarray:
    """Rows of uint8 [N,H,W,3] images → one uint8 [H',W',3] picture, with optional text labels."""
    rows = [np.asarray(r) for r in rows]
    h, w = rows[0].shape[1:3]
    h, w = h * scale, w * scale
    ncols = max(len(r) for r in rows)
    label_w = 8 + 7 * max((len(s) for s in row_labels), default=0) if row_labels else 0
    label_h = 14 if col_labels else 0
    canvas = Image.new(
        "RGB", (label_w + ncols * (w + pad) + pad, label_h + len(rows) * (h + pad) + pad), (255, 255, 255)
    )
    draw = ImageDraw.Draw(canvas)
    for j, text in enumerate(col_labels or []):
        draw.text((label_w + pad + j * (w + pad), 1), text, fill=(0, 0, 0))
    for i, row in enumerate(rows):
        y = label_h + pad + i * (h + pad)
        if row_labels:
            draw.text((4, y + h // 2 - 6), row_labels[i], fill=(0, 0, 0))
        for j, img in enumerate(row):
            tile = Image.fromarray(img).resize((w, h), Image.Resampling.NEAREST)
            canvas.paste(tile, (label_w + pad + j * (w + pad), y))
    return np.asarray(canvas)
