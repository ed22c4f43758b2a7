"""Fidelity evaluation: an MNIST feature classifier, the metric suite, real-data floors, optional Inception-FID.

Public API (what notebooks use)::

    from mnist_diffusion.evaluation import evaluate, floors, metrics_table
    result = evaluate([images_seed0, images_seed1, images_seed2])  # uint8 [N, 28, 28] each, N <= 10,000
    print(metrics_table(result))
    floors(10_000)["metrics"]["fid"]["value"]

Modules, each building on the ones before it:

* :mod:`.features`: input checks (uint8 [N, 28, 28] arrays, the ``sample`` command's npz files), classifier
  outputs and pixel vectors, chunked distances, single-threaded symmetric eigendecompositions.
* :mod:`.classifier`: the feature network, its committed weights and their hash, and how they were trained.
* :mod:`.memorisation`: the pixel-space memorisation check and its exact pruned radius search.
* :mod:`.metrics`: the metric definitions (:data:`METRICS`, :data:`METRICS_VERSION`), FID, KID,
  precision/recall/density/coverage, label metrics, and one image set's whole suite.
* :mod:`.reference`: the real side: the test reference, the real-data floors, and their cache on disk.
* :mod:`.inception`: optional Inception-FID on the standard scale.
* :mod:`.api`: :func:`evaluate` and :func:`floors`, the result table and JSON, per-sample inspection.

Importing this package imports torch (about a second): command-line code imports it only when a command needs it.
Caches held in memory are emptied by :func:`mnist_diffusion.paths.clear_caches`.
"""

from __future__ import annotations

from mnist_diffusion.evaluation.api import (best_and_worst, classify, evaluate, floors, metrics_table,
                                            nearest_training, write_metrics)
from mnist_diffusion.evaluation.classifier import load_classifier
from mnist_diffusion.evaluation.features import as_uint8_images, load_sample_file
from mnist_diffusion.evaluation.metrics import METRICS, METRICS_VERSION

__all__ = [
    "evaluate", "floors", "metrics_table", "write_metrics", "load_classifier", "load_sample_file", "as_uint8_images",
    "METRICS", "METRICS_VERSION", "classify", "nearest_training", "best_and_worst",
]
