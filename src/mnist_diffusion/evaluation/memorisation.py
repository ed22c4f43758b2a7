"""Memorisation check in pixel space: are samples copies of training images?

For every sample, the Euclidean distance to its nearest training image (all 60,000, pixels scaled to
[0, 1], so distances lie in [0, 28]) is compared with a threshold: the 1st percentile of the same
distance for the 10,000 held-out test images. A sample closer to the training set than 99 % of real
unseen digits are counts as memorised; held-out images score about 1 % by construction, exact
training images score 100 %.

The threshold needs every test image's nearest distance (one exact 10,000 x 60,000 search, cached); a
sample set only needs the yes/no answer, which :mod:`.radius_search` gives exactly at a fraction of the cost.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor

from mnist_diffusion.data import mnist_tensors
from mnist_diffusion.evaluation.distances import nearest_distances
from mnist_diffusion.evaluation.features import pixel_vectors
from mnist_diffusion.evaluation.radius_search import LowerBoundIndex, any_within, build_index

#: The threshold is this quantile of the test-to-train nearest distances.
MEMORISATION_QUANTILE = 0.01
#: Sample rows per chunk against the 60,000 training images: 512 x 60000 float32 = 123 MB.
CHUNK = 512


@dataclass(frozen=True)
class MemorisationReference:
    """Test-to-train nearest distances (float32 [10000]) and the memorisation threshold derived from them."""

    test_nearest: Tensor
    threshold: float
    quantile: float = MEMORISATION_QUANTILE


@functools.lru_cache(maxsize=1)
def _training_pixels(images_id: int) -> Tensor:
    return pixel_vectors(mnist_tensors("train")[0])


def training_pixels() -> Tensor:
    """All 60,000 training images as float32 [60000, 784] in [0, 1] (cached in-process, 188 MB)."""
    images = mnist_tensors("train")[0]
    return _training_pixels(id(images))


@functools.lru_cache(maxsize=1)
def _training_index(images_id: int) -> LowerBoundIndex:
    return build_index(training_pixels())


def training_index() -> LowerBoundIndex:
    """The training pixels with their lower-bound embedding for :func:`memorised_mask` (cached in-process)."""
    return _training_index(id(mnist_tensors("train")[0]))


def memorised_mask(images: Tensor, threshold: float) -> Tensor:
    """Bool [N]: is some training image closer than ``threshold`` (pixel distance) to each uint8 image [N, 28, 28]?"""
    return any_within(pixel_vectors(images), training_index(), threshold)


def nearest_training_distances(images: Tensor) -> Tensor:
    """Pixel distance from each uint8 image [N, 28, 28] to its nearest training image: float32 [N]."""
    return nearest_distances(pixel_vectors(images), training_pixels(), chunk=CHUNK)


def memorisation_reference() -> MemorisationReference:
    """Compute the threshold from the whole test set (10,000 x 60,000 distances; tens of seconds on a CPU)."""
    test_nearest = nearest_training_distances(mnist_tensors("test")[0])
    threshold = float(torch.quantile(test_nearest.to(torch.float64), MEMORISATION_QUANTILE))
    return MemorisationReference(test_nearest, threshold)


def memorised_share(nearest: Tensor, threshold: float) -> float:
    """Share of images whose nearest-training distance (float [N]) is strictly below ``threshold``."""
    return float((nearest < threshold).double().mean())
