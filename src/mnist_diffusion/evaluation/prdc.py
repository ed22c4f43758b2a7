"""k-nearest-neighbour manifold metrics in feature space.

* Precision / recall (Kynkaanniemi et al. 2019), k = 3: each set's manifold is the union of balls
  around its points with radius = distance to the point's k-th nearest neighbour in the same set.
  Precision = share of samples inside the real manifold (fidelity); recall = share of real points
  inside the sample manifold (diversity).
* Density / coverage (Naeem et al. 2020), k = 5, real balls only (robust to sample outliers).
  Density = mean number of real balls holding a sample, divided by k (about 1 when the sets match,
  can exceed 1); coverage = share of real balls that hold at least one sample.

A point on a ball's boundary counts as inside (closed balls, ``<=``, as in Kynkaanniemi et al.'s
code; the ``prdc`` package uses ``<``, which differs only on exact ties).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mnist_diffusion.evaluation.distances import DEFAULT_CHUNK, kth_neighbour_distances, squared_distances

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
