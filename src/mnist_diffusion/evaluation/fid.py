"""Frechet distance between Gaussians fitted to two feature sets (FID, Heusel et al. 2017).

    FID = |mu_1 - mu_2|^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^{1/2})

Computed in float64. The trace of the matrix square root uses eigenvalues of symmetric matrices only:
tr((S_1 S_2)^{1/2}) = tr((S_1^{1/2} S_2 S_1^{1/2})^{1/2}) = sum_i sqrt(lambda_i), with S_1^{1/2} from
``eigh`` (negative round-off eigenvalues clamped to 0). Unlike an iterative ``sqrtm`` of the
non-symmetric product, this has no convergence or imaginary-part issues, and FID(X, X) is 0 to round-off.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mnist_diffusion.evaluation.linalg import symmetric_eigh, symmetric_eigvalsh


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
