"""Looking at individual samples: classifier verdicts, best and worst samples, nearest training images.

These feed the notebooks' "good and bad samples", label-histogram and memorisation figures; the numbers in
tables come from :func:`~.api.evaluate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mnist_diffusion.evaluation.classifier import load_classifier
from mnist_diffusion.evaluation.distances import squared_distances
from mnist_diffusion.evaluation.features import classifier_outputs, pixel_vectors
from mnist_diffusion.evaluation.images import as_uint8_images
from mnist_diffusion.evaluation.labels import label_histogram
from mnist_diffusion.evaluation.memorisation import training_pixels


@dataclass(frozen=True)
class Verdicts:
    """The classifier's reading of N images: predicted digit int64 [N], its probability float32 [N] in [0, 1],
    and the predicted-label histogram float64 [10] (shares summing to 1)."""

    labels: Tensor
    confidence: Tensor
    histogram: Tensor

    def ranked(self, k: int) -> tuple[Tensor, Tensor]:
        """Indices of the ``k`` most and the ``k`` least confidently classified images (most/least first)."""
        order = torch.argsort(self.confidence, descending=True, stable=True)
        return order[:k], order.flip(0)[:k]


def classify(images: Any) -> Verdicts:
    """Classify uint8 images [N, 28, 28] with the evaluation's committed classifier."""
    images = as_uint8_images(images)
    probs = classifier_outputs(load_classifier().network, images).probs
    confidence, labels = probs.max(dim=1)
    return Verdicts(labels, confidence, label_histogram(probs))


def best_and_worst(images: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most and the ``k`` least confidently classified of uint8 images [N, 28, 28] (numpy), most/least first."""
    images = np.asarray(images)
    best, worst = classify(images).ranked(k)
    return images[best.numpy()], images[worst.numpy()]


def nearest_training(images: Any, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """For uint8 images [N, 28, 28]: the nearest of the 60,000 training images in pixel space (pixels in [0, 1]).

    Returns (index int64 [N] into the training split, distance float32 [N])."""
    queries = pixel_vectors(as_uint8_images(images))
    keys = training_pixels()
    key_sq = keys.square().sum(dim=1)
    index, distance = [], []
    for q in queries.split(chunk):
        d2 = squared_distances(q, keys, key_sq)
        best, where = d2.min(dim=1)
        index.append(where)
        distance.append(best.sqrt())
    return torch.cat(index).numpy(), torch.cat(distance).numpy()
