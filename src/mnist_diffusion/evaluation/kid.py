"""Kernel Inception Distance (Binkowski et al. 2018) on any feature space.

KID is the unbiased estimate of the squared MMD with the cubic polynomial kernel
k(x, y) = (x.y / D + 1)^3, averaged over random subsets of both sets (mean and std over subsets).
Unbiased means it can be slightly negative when the two sets come from the same distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

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
