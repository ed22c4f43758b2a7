"""Exact "is any key within radius r of this query?" for many queries, pruned by a cheap lower bound.

The memorisation check asks, for each of N samples, whether some training image lies within a small
pixel distance r (about 1.3, where typical nearest distances are 4 to 6). Computing all N x 60,000 full
784-d distances costs 0.5 TFLOP for N = 10,000. Instead every point is embedded as its coordinates on a
few principal axes plus the norm of the rest (:class:`LowerBoundIndex`); by Pythagoras and the triangle
inequality,

    |P(x - y)|^2 + (|R x| - |R y|)^2 <= |x - y|^2      (P: the axes, R: the orthogonal rest, centred points)

so the embedded distance is a lower bound of the true one. Only pairs whose bound is below r^2 (plus a
margin covering float32 round-off) are candidates, and only those get an exact 784-d distance. The answer
is therefore exact; only the time depends on how tight the bound is. A chunk with too many candidates
falls back to exact distances for the whole chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mnist_diffusion.evaluation.linalg import symmetric_eigh

#: Principal axes in the bound: more axes tighten it but cost more per pair.
AXES = 32
#: Added to r^2 before comparing bounds: far above float32 round-off of squared distances of norm-15 vectors.
MARGIN = 0.05
#: Query rows per chunk (chunk x keys float32 bounds: 512 x 60,000 = 123 MB).
CHUNK = 512
#: Candidate pairs per exact-distance batch (x 784 floats: 51 MB).
PAIR_BATCH = 16_384
#: Above this many candidates in one chunk, compute the chunk's distances densely instead.
DENSE_FALLBACK = 2_000_000


@dataclass(frozen=True)
class LowerBoundIndex:
    """Keys with their low-dimensional lower-bound embedding.

    Attributes:
        keys: float32 [M, D], the points searched.
        mean: float32 [D], the centre of the embedding.
        axes: float32 [D, A], orthonormal columns (principal axes of a sample of keys).
        embedded: float32 [M, A + 1], coordinates on the axes and the norm of the remainder.
        embedded_sq: float32 [M], squared norms of ``embedded``.
    """

    keys: Tensor
    mean: Tensor
    axes: Tensor
    embedded: Tensor
    embedded_sq: Tensor

    def embed(self, points: Tensor) -> Tensor:
        """float32 [N, D] -> float32 [N, A + 1]: axes coordinates and remainder norm (computed in float64)."""
        centred = (points - self.mean).to(torch.float64)
        coords = centred @ self.axes.to(torch.float64)
        rest = (centred.square().sum(dim=1) - coords.square().sum(dim=1)).clamp(min=0).sqrt()
        return torch.cat([coords, rest.unsqueeze(1)], dim=1).to(torch.float32)


def build_index(keys: Tensor, axes: int = AXES, fit_rows: int = 10_000, seed: int = 0) -> LowerBoundIndex:
    """Embed keys [M, D] on the top ``axes`` principal axes of ``fit_rows`` random keys.

    Any orthonormal axes give a valid bound; fitting them on a subset only saves time.
    """
    keys = keys.to(torch.float32)
    rows = torch.randperm(keys.shape[0], generator=torch.Generator().manual_seed(seed))[:fit_rows]
    sample = keys[rows].to(torch.float64)
    mean = sample.mean(dim=0)
    centred = sample - mean
    _, vectors = symmetric_eigh(centred.T @ centred)
    top = vectors[:, -axes:].to(torch.float32).contiguous()
    index = LowerBoundIndex(keys, mean.to(torch.float32), top, torch.empty(0), torch.empty(0))
    embedded = index.embed(keys)
    return LowerBoundIndex(keys, index.mean, index.axes, embedded, embedded.square().sum(dim=1))


def _exact_pairs_within(queries: Tensor, keys: Tensor, rows: Tensor, cols: Tensor, radius_sq: float) -> Tensor:
    """Bool [P]: is |queries[rows] - keys[cols]|^2 < radius_sq, by direct differences, in batches of pairs."""
    out = [((queries[r] - keys[c]).square().sum(dim=1) < radius_sq)
           for r, c in zip(rows.split(PAIR_BATCH), cols.split(PAIR_BATCH))]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)


def any_within(queries: Tensor, index: LowerBoundIndex, radius: float) -> Tensor:
    """Bool [N]: does any key lie at Euclidean distance strictly below ``radius`` from each query [N, D]?"""
    queries = queries.to(torch.float32)
    radius_sq = float(radius) ** 2
    found = torch.zeros(queries.shape[0], dtype=torch.bool)
    embedded = index.embed(queries)
    keys_sq = None
    for start in range(0, queries.shape[0], CHUNK):
        q, e = queries[start : start + CHUNK], embedded[start : start + CHUNK]
        # bound - |e|^2 = |key|^2 - 2 e.key, compared with a per-row limit: no extra pass over the chunk.
        partial = torch.addmm(index.embedded_sq.unsqueeze(0), e, index.embedded.T, alpha=-2.0)
        candidates = partial < (radius_sq + MARGIN - e.square().sum(dim=1, keepdim=True))
        count = int(torch.count_nonzero(candidates))
        if count == 0:
            continue
        if count > DENSE_FALLBACK:
            if keys_sq is None:
                keys_sq = index.keys.square().sum(dim=1)
            nearest = torch.addmm(keys_sq.unsqueeze(0), q, index.keys.T, alpha=-2.0).amin(dim=1) + q.square().sum(dim=1)
            found[start : start + q.shape[0]] = nearest < radius_sq
            continue
        rows, cols = candidates.nonzero(as_tuple=True)
        hit = _exact_pairs_within(q, index.keys, rows, cols, radius_sq)
        found[start + rows[hit]] = True
    return found
