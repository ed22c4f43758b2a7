"""Checking what the evaluation is given: image arrays and the ``sample`` command's npz files.

Everything evaluated is **uint8 [N, 28, 28], 0 = black background** (the project's storage convention).
Anything else is refused with a one-line :class:`~mnist_diffusion.errors.UserError` that says what is
wrong and how to fix it; nothing is silently rescaled, because a wrong pixel range makes every metric
meaningless without failing.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mnist_diffusion.errors import UserError

#: Key of the images in the project's samples npz (see :func:`mnist_diffusion.training.sampling.save_samples`).
IMAGES_KEY = "images"
META_KEY = "meta"

_EXPECTED = "uint8 [N, 28, 28] with 0 = black background"


@dataclass(frozen=True)
class SampleFile:
    """One loaded samples file: its images (uint8 [N, 28, 28]), its ``meta`` dict (may be empty), its path."""

    path: Path
    images: Tensor
    meta: dict[str, Any]

    @property
    def seed(self) -> int | None:
        """The sampling seed recorded in ``meta`` by ``python -m mnist_diffusion sample``, if any."""
        seed = self.meta.get("seed")
        return int(seed) if isinstance(seed, (int, np.integer)) else None


def _float_hint(values: np.ndarray) -> str:
    """Why a float array is refused, and the conversion that fixes it."""
    lo, hi = float(values.min()), float(values.max())
    if lo >= -1.0 and hi <= 1.0 and lo < 0.0:
        return f"values in [{lo:.3g}, {hi:.3g}] look like the model range [-1, 1]; convert with mnist_diffusion.data.to_uint8"
    if lo >= 0.0 and hi <= 1.0:
        return f"values in [{lo:.3g}, {hi:.3g}] look like [0, 1] floats; convert with (x * 255).round().astype(np.uint8)"
    if lo >= 0.0 and hi <= 255.0:
        return f"values in [{lo:.3g}, {hi:.3g}]; convert with x.round().astype(np.uint8)"
    return f"values in [{lo:.3g}, {hi:.3g}] are outside every image range"


def as_uint8_images(images: Any, what: str = "images") -> Tensor:
    """Check ``images`` and return them as a contiguous CPU uint8 tensor [N, 28, 28].

    Args:
        images: numpy array or torch tensor, uint8 [N, 28, 28] or [N, 1, 28, 28] (0 = black), N >= 1.
        what: how to name the input in error messages (for example the file it came from).

    Raises:
        UserError: one line for a wrong type, dtype, shape, value range, NaN/inf or an empty set.
    """
    if isinstance(images, Tensor):
        array = images.detach().cpu().numpy()
    elif isinstance(images, np.ndarray):
        array = images
    else:
        raise UserError(f"{what}: expected a numpy array or torch tensor ({_EXPECTED}), got {type(images).__name__}")
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 3 or array.shape[1:] != (28, 28):
        raise UserError(f"{what}: expected shape [N, 28, 28] (or [N, 1, 28, 28]), got {list(array.shape)}")
    if array.shape[0] == 0:
        raise UserError(f"{what}: holds no images (N = 0)")
    if array.dtype != np.uint8:
        if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.number):
            raise UserError(f"{what}: expected {_EXPECTED}, got dtype {array.dtype}")
        if np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.complexfloating):
            if np.iscomplexobj(array):
                raise UserError(f"{what}: expected {_EXPECTED}, got complex dtype {array.dtype}")
            bad = ~np.isfinite(array)
            if bad.any():
                kind = "NaN" if np.isnan(array).any() else "infinite"
                raise UserError(f"{what}: contains {kind} values ({int(bad.sum())} pixels); did sampling diverge?")
            raise UserError(f"{what}: expected {_EXPECTED}, got {array.dtype}: {_float_hint(array)}")
        lo, hi = int(array.min()), int(array.max())
        if lo < 0 or hi > 255:
            raise UserError(f"{what}: values in [{lo}, {hi}] are outside [0, 255]; expected {_EXPECTED}")
        raise UserError(f"{what}: expected {_EXPECTED}, got {array.dtype} (values fit: convert with .astype(np.uint8))")
    return torch.from_numpy(np.array(array, copy=True, order="C"))


def _load_array_file(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """The images array and meta dict of an ``.npz`` (key ``images``) or ``.npy`` file, unchecked."""
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if not (magic.startswith(b"PK\x03\x04") or magic == b"\x93NUMPY"):
        raise UserError(f"{path}: not a readable .npz/.npy file (it is neither a zip archive nor a .npy array); "
                        "make one with 'python -m mnist_diffusion sample'")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise UserError(f"{path}: not a readable .npz/.npy file ({reason}); "
                        "make one with 'python -m mnist_diffusion sample'") from None
    if isinstance(loaded, np.ndarray):
        return loaded, {}
    with loaded as npz:
        if IMAGES_KEY not in npz.files:
            raise UserError(f"{path}: has no {IMAGES_KEY!r} array (keys: {', '.join(npz.files) or 'none'}); "
                            "expected the npz written by 'python -m mnist_diffusion sample'")
        try:
            images = npz[IMAGES_KEY]
            meta: dict[str, Any] = {}
            if META_KEY in npz.files:
                parsed = json.loads(str(npz[META_KEY]))
                meta = parsed if isinstance(parsed, dict) else {}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise UserError(f"{path}: damaged npz ({' '.join(str(exc).split())[:160]})") from None
    return images, meta


def load_sample_file(path: str | os.PathLike) -> SampleFile:
    """Load and check a samples file (``.npz`` with ``images`` and optional ``meta`` JSON, or a bare ``.npy``).

    Raises:
        UserError: one line for a missing, empty, unreadable or wrongly shaped/typed file.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"samples file {path} not found")
    if path.stat().st_size == 0:
        raise UserError(f"samples file {path} is empty (0 bytes)")
    array, meta = _load_array_file(path)
    return SampleFile(path, as_uint8_images(array, what=str(path)), meta)
