"""The four raw MNIST IDX files: their names and checksums, verifying, reading and loading them, and the
project's single pixel convention.

Layout
    The data root (see :func:`mnist_diffusion.paths.data_root`) holds ``MNIST/raw/`` with the four
    original, uncompressed IDX files, exactly as ``torchvision.datasets.MNIST(root, download=False)``
    expects. :data:`RAW_FILES` lists their names, byte sizes and md5s; :func:`verify` checks them.

Pixel convention (the single one in the project)
    * On disk and in :func:`mnist_tensors`: ``uint8`` in [0, 255], 0 = black background.
    * In models: ``float32`` of shape [N, 1, 28, 28] in [-1, 1], via ``x / 127.5 - 1``
      (:func:`to_model_range`); back with clamp to [-1, 1] and ``round((x + 1) * 127.5)``
      (:func:`to_uint8`). The round trip uint8 -> model range -> uint8 is exact.

Getting the files onto a machine is :mod:`mnist_diffusion.data.download`'s job.
"""

from __future__ import annotations

import hashlib
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from mnist_diffusion.errors import UserError
from mnist_diffusion.paths import DATA_ENV, clear_caches, data_root, memo, memo_container, write_atomic

if TYPE_CHECKING:  # torchvision is imported lazily: `data verify` should not pay for it.
    import torchvision

__all__ = [
    "RAW_FILES",
    "RawFile",
    "SPLITS",
    "raw_folder",
    "to_model_range",
    "to_uint8",
    "verify",
    "load_mnist",
    "mnist_tensors",
    "read_idx",
    "write_idx",
    "clear_caches",
]


@dataclass(frozen=True)
class RawFile:
    """One original MNIST IDX file: its name in ``MNIST/raw``, byte size, and md5 (hex)."""

    name: str
    size: int
    md5: str


#: The four raw files, uncompressed, with the sizes and md5s of the canonical MNIST release.
RAW_FILES: tuple[RawFile, ...] = (
    RawFile("train-images-idx3-ubyte", 47_040_016, "6bbc9ace898e44ae57da46a324031adb"),
    RawFile("train-labels-idx1-ubyte", 60_008, "a25bea736e30d166cdddb491f175f624"),
    RawFile("t10k-images-idx3-ubyte", 7_840_016, "2646ac647ad5339dbf082846283269ea"),
    RawFile("t10k-labels-idx1-ubyte", 10_008, "27ae3e4e09519cfbb04c329615203637"),
)
_BY_NAME = {f.name: f for f in RAW_FILES}

SPLITS = ("train", "test")
#: File-name prefix of each split ("t10k" is MNIST's name for the test set).
_SPLIT_PREFIX = {"train": "train", "test": "t10k"}

_FIX = f"fix: run 'python -m mnist_diffusion data fetch' or set {DATA_ENV} to a folder holding MNIST/raw"


def raw_folder(root: str | os.PathLike | None = None) -> Path:
    """``<data root>/MNIST/raw``: where the four IDX files live (the layout torchvision expects)."""
    return data_root(root) / "MNIST" / "raw"


# --------------------------------------------------------------------------------------------
# Pixel convention
# --------------------------------------------------------------------------------------------


def to_model_range(images: Tensor) -> Tensor:
    """uint8 images -> the model's float range. **The project's single pixel convention.**

    Args:
        images: ``uint8`` tensor of shape [N, 28, 28] or [N, 1, 28, 28] with values in [0, 255]
            (0 = black background, as in MNIST). Any H, W is accepted; MNIST's is 28 x 28.

    Returns:
        ``float32`` tensor of shape [N, 1, 28, 28] with values in [-1, 1]: ``x / 127.5 - 1``,
        so 0 -> -1.0 and 255 -> 1.0. Same device as the input.

    Raises:
        TypeError: if ``images`` is not uint8 (a float tensor was probably converted already).
        ValueError: for any other shape.
    """
    if images.dtype != torch.uint8:
        raise TypeError(f"to_model_range expects uint8 images, got {images.dtype}")
    if images.ndim == 3:
        images = images.unsqueeze(1)
    elif not (images.ndim == 4 and images.shape[1] == 1):
        raise ValueError(f"to_model_range expects shape [N, 28, 28] or [N, 1, 28, 28], got {list(images.shape)}")
    return images.to(torch.float32) / 127.5 - 1.0


def to_uint8(x: Tensor) -> Tensor:
    """The model's float range -> uint8 images; the inverse of :func:`to_model_range`.

    Args:
        x: floating tensor of shape [N, 1, 28, 28] or [N, 28, 28], nominally in [-1, 1]; values
            outside are clamped to [-1, 1] first (samplers overshoot a little).

    Returns:
        ``uint8`` tensor of shape [N, 28, 28] in [0, 255]: ``round((clamp(x, -1, 1) + 1) * 127.5)``.
        Same device as the input. ``to_uint8(to_model_range(u)) == u`` exactly for every uint8 ``u``.

    Raises:
        TypeError: if ``x`` is not a floating tensor.
        ValueError: for any other shape, or if ``x`` contains NaN (a diverged sampler should be
            noticed, not saved as black pixels).
    """
    if not x.is_floating_point():
        raise TypeError(f"to_uint8 expects a floating tensor in [-1, 1], got {x.dtype}")
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    elif x.ndim != 3:
        raise ValueError(f"to_uint8 expects shape [N, 1, 28, 28] or [N, 28, 28], got {list(x.shape)}")
    if torch.isnan(x).any():
        raise ValueError("to_uint8 got NaN values (did sampling diverge?)")
    return torch.round((x.clamp(-1.0, 1.0) + 1.0) * 127.5).to(torch.uint8)


# --------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------

#: Files whose md5 matched, keyed by (resolved path, size, mtime_ns, inode).
_VERIFIED: set[tuple[str, int, int, int]] = memo_container(set())
#: A file modified less than this many seconds before it was hashed is not cached: a write in the
#: same timestamp tick could leave its mtime unchanged (git's "racy clean" problem).
_RACY_SECONDS = 2.0


def _md5(path: Path) -> str:
    """md5 (hex) of a file, read in 1 MiB chunks (about 0.1 s for the 47 MB training images)."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_file(path: Path, expected: RawFile) -> str | None:
    """None when ``path`` is the expected file, else a short description of what is wrong."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return f"{expected.name} is missing"
    except OSError as exc:
        return f"{expected.name} cannot be read ({exc.strerror or exc})"
    if not path.is_file():
        return f"{expected.name} is not a regular file"
    if st.st_size != expected.size:
        what = "truncated" if st.st_size < expected.size else "too long"
        return f"{expected.name} is {what}: got {st.st_size} bytes, expected {expected.size}"
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    if key in _VERIFIED:
        return None
    try:
        digest = _md5(path)
    except OSError as exc:
        return f"{expected.name} cannot be read ({exc.strerror or exc})"
    if digest != expected.md5:
        return f"{expected.name} is altered: md5 mismatch (got {digest}, expected {expected.md5})"
    if time.time() - st.st_mtime_ns / 1e9 > _RACY_SECONDS:
        _VERIFIED.add(key)
    return None


def _problems(raw: Path, files: tuple[RawFile, ...] = RAW_FILES) -> list[str]:
    """What is wrong with the files in ``raw`` (empty list: all present, right size, right md5)."""
    return [p for f in files if (p := _check_file(raw / f.name, f)) is not None]


def _summarize(problems: list[str]) -> str:
    """The first problem, plus how many more there are (or one phrase when nothing is there)."""
    if len(problems) == len(RAW_FILES) and all(p.endswith(" is missing") for p in problems):
        return "all four files are missing (" + ", ".join(f.name for f in RAW_FILES) + ")"
    more = len(problems) - 1
    return problems[0] + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")


def verify(root: str | os.PathLike | None = None) -> Path:
    """Check that ``<root>/MNIST/raw`` holds the four MNIST files, byte-exact.

    Each file must exist, have the expected size, and the expected md5 (see :data:`RAW_FILES`).
    Successful checks are cached in-process, keyed by (path, size, mtime_ns, inode), so repeated
    calls cost a few ``stat`` calls.

    Args:
        root: the data root; defaults to :func:`mnist_diffusion.paths.data_root`.

    Returns:
        The raw folder, ``<root>/MNIST/raw``.

    Raises:
        UserError: one line naming the (first) bad file, what is wrong with it (missing / truncated /
            altered), and how to fix it.
    """
    raw = raw_folder(root)
    problems = _problems(raw)
    if problems:
        raise UserError(f"MNIST data in {raw}: {_summarize(problems)}; {_FIX}")
    return raw


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise UserError(f"unknown MNIST split {split!r}; choose one of {', '.join(SPLITS)}")


def load_mnist(split: str, root: str | os.PathLike | None = None) -> "torchvision.datasets.MNIST":
    """The verified MNIST split as a torchvision dataset (no transform).

    Args:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000 images).
        root: the data root; defaults to :func:`mnist_diffusion.paths.data_root`.

    Returns:
        ``torchvision.datasets.MNIST(root, train=split == "train", download=False)``. Items are
        ``(PIL image 28 x 28 mode "L", int label 0..9)``; ``.data`` is uint8 [N, 28, 28] and
        ``.targets`` int64 [N].

    Raises:
        UserError: for an unknown split or missing/bad files (see :func:`verify`).
    """
    _check_split(split)
    verify(root)
    from torchvision.datasets import MNIST

    return MNIST(str(data_root(root)), train=(split == "train"), download=False)


def _split_files(split: str) -> tuple[RawFile, RawFile]:
    prefix = _SPLIT_PREFIX[split]
    return _BY_NAME[f"{prefix}-images-idx3-ubyte"], _BY_NAME[f"{prefix}-labels-idx1-ubyte"]


@memo(maxsize=4)
def _cached_tensors(root: str, split: str, signature: tuple) -> tuple[Tensor, Tensor]:
    ds = load_mnist(split, root)
    return ds.data, ds.targets


def mnist_tensors(split: str, root: str | os.PathLike | None = None) -> tuple[Tensor, Tensor]:
    """A whole verified split as two tensors: the fast training path (no per-item PIL work).

    Args:
        split: ``"train"`` or ``"test"``.
        root: the data root; defaults to :func:`mnist_diffusion.paths.data_root`.

    Returns:
        ``(images, labels)``: images uint8 [N, 28, 28] in [0, 255], labels int64 [N] in 0..9, with
        N = 60,000 (train) or 10,000 (test). Convert images with :func:`to_model_range`.
        The result is cached in-process (keyed by resolved path, split and the files' stat), so the
        same tensors are returned on every call: treat them as read-only (index or ``.clone()``,
        never modify in place).

    Raises:
        UserError: for an unknown split or missing/bad files (see :func:`verify`).
    """
    _check_split(split)
    raw = verify(root)
    signature = tuple(
        (st.st_size, st.st_mtime_ns, st.st_ino) for st in ((raw / f.name).stat() for f in _split_files(split))
    )
    return _cached_tensors(str(data_root(root).resolve()), split, signature)


# --------------------------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------------------------

#: IDX type codes -> numpy dtypes (big-endian, as the format stores them).
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an uncompressed IDX file (the MNIST format) into a numpy array.

    The header is two zero bytes, a type code (0x08 = uint8), the number of dimensions, then each
    dimension as a big-endian uint32; the data follows, row-major.

    Returns:
        An array of the stored shape, e.g. uint8 [60000, 28, 28] for ``train-images-idx3-ubyte`` and
        uint8 [60000] for ``train-labels-idx1-ubyte``.

    Raises:
        ValueError: if the header is malformed or the data length does not match it.
    """
    data = Path(path).read_bytes()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic)")
    type_code, ndim = data[2], data[3]
    if type_code not in _IDX_DTYPES or ndim < 1:
        raise ValueError(f"{path}: not an IDX file (type 0x{type_code:02x}, {ndim} dimensions)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: IDX header truncated")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(f"{path}: IDX data has {len(data) - header} bytes, header says {expected}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as an uncompressed IDX file, atomically (temporary file + ``os.replace``).

    The magic is ``0x00000800 + ndim``: 0x00000803 for images [N, 28, 28], 0x00000801 for labels [N].
    """
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise TypeError(f"write_idx writes uint8 arrays only, got {array.dtype}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"write_idx needs 1 to 255 dimensions, got {array.ndim}")
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    write_atomic(path, [header, np.ascontiguousarray(array).tobytes()])
