"""Chunked Euclidean distances: the k-nearest-neighbour building blocks of precision/recall,
density/coverage and the memorisation check.

All functions take float32 point sets [N, D] and work in row chunks, so memory stays at
``chunk x M`` floats however large N and M are. Squared distances come from
``|a|^2 + |b|^2 - 2 a.b`` (one matrix product per chunk), clamped at 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: Rows per chunk: 2048 x 10,000 float32 distances are 80 MB; callers comparing with wider sets
#: (60,000 training images) pass smaller chunks.
DEFAULT_CHUNK = 2048


def squared_distances(a: Tensor, b: Tensor, b_sq_norms: Tensor | None = None) -> Tensor:
    """Squared Euclidean distances between rows: a [n, D], b [m, D] -> [n, m] (>= 0)."""
    b_sq = (b * b).sum(dim=1) if b_sq_norms is None else b_sq_norms
    d2 = torch.addmm(b_sq.unsqueeze(0), a, b.T, alpha=-2.0)
    d2 += (a * a).sum(dim=1, keepdim=True)
    return d2.clamp_(min=0.0)


def kth_neighbour_distances(points: Tensor, k: int, chunk: int = DEFAULT_CHUNK) -> Tensor:
    """Distance from each point to its k-th nearest *other* point of the same set.

    Args:
        points: float [N, D], N > k.
        k: neighbour rank (1 = nearest); the point itself is excluded by index, so an exact duplicate
            elsewhere in the set counts as a neighbour at distance 0.
    Returns:
        float [N], the k-th nearest neighbour distances (the radii of the k-NN balls).
    """
    n = points.shape[0]
    if n <= k:
        raise ValueError(f"need more than k = {k} points for k-nearest-neighbour radii, got {n}")
    sq = (points * points).sum(dim=1)
    radii = []
    for start in range(0, n, chunk):
        rows = points[start : start + chunk]
        d2 = squared_distances(rows, points, sq)
        own = torch.arange(rows.shape[0])
        d2[own, own + start] = float("inf")
        radii.append(d2.topk(k, dim=1, largest=False).values[:, -1])
    return torch.cat(radii).sqrt()


def nearest_distances(queries: Tensor, keys: Tensor, chunk: int = DEFAULT_CHUNK) -> Tensor:
    """Distance from each query to its nearest key: queries [n, D], keys [m, D] -> float [n].

    One matrix product and one min per chunk: min_j |q - k_j|^2 = |q|^2 + min_j (|k_j|^2 - 2 q.k_j).
    """
    key_sq = (keys * keys).sum(dim=1)
    nearest = [torch.addmm(key_sq.unsqueeze(0), q, keys.T, alpha=-2.0).amin(dim=1) + (q * q).sum(dim=1)
               for q in queries.split(chunk)]
    return torch.cat(nearest).clamp_(min=0.0).sqrt_()


def mean_pairwise_l1(images: Tensor) -> float:
    """Mean absolute pixel difference between two different images of a set, averaged over all ordered pairs
    i != j: images [n, ...] (n >= 2, any value range; the result is in the same units as the pixels)."""
    n = images.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 images, got {n}")
    flat = images.reshape(n, -1).to(torch.float64)
    return (torch.cdist(flat, flat, p=1).sum() / (n * (n - 1) * flat.shape[1])).item()
