"""Image grids: many uint8 digits tiled into one picture."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from PIL import Image
from torch import Tensor

from mnist_diffusion.reporting.figure_files import write_figure_file


def tile(images: np.ndarray | Tensor, ncol: int | None = None, pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile uint8 images [N, H, W] into one uint8 array [rows*(H+pad)+pad, ncol*(W+pad)+pad], row by row."""
    images = np.asarray(images)
    n, h, w = images.shape
    ncol = ncol or math.ceil(math.sqrt(n))
    nrow = math.ceil(n / ncol)
    canvas = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad), pad_value, dtype=np.uint8)
    for i in range(n):  # n is a grid's worth (<= a few hundred), not a hot path
        r, c = divmod(i, ncol)
        canvas[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = images[i]
    return canvas


def save_grid(images: np.ndarray | Tensor, path: str | Path, ncol: int | None = None, scale: int = 2) -> Path:
    """Save uint8 images [N, 28, 28] as one PNG grid, upscaled ``scale`` times (nearest) for viewing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(tile(images, ncol))
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    encoded = io.BytesIO()
    picture.save(encoded, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))
    write_figure_file(path, encoded.getvalue())  # an existing file showing the same picture is kept
    return path
