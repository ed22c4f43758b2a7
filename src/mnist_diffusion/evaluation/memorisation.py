"""Memorisation check in pixel space: are samples copies of training images?

For every sample, the Euclidean distance to its nearest training image (all 60,000, pixels scaled to
[0, 1], so distances lie in [0, 28]) is compared with a threshold: the 1st percentile of the same
distance for the 10,000 held-out test images. A sample closer to the training set than 99 % of real
unseen digits are counts as memorised; held-out images score about 1 % by construction, exact
training images score 100 %.

The threshold needs every test image's nearest distance (one exact 10,000 x 60,000 search, cached); a
sample set only needs the yes/no answer, which the radius search below gives exactly at a fraction of the cost.

Radius search: exact "is any key within radius r of this query?" for many queries, pruned by a cheap lower
bound. The radius is small (about 1.3, where typical nearest distances are 4 to 6), and computing all
N x 60,000 full 784-d distances costs 0.5 TFLOP for N = 10,000. Instead every point is embedded as its
coordinates on a few principal axes plus the norm of the rest (:class:`LowerBoundIndex`); by Pythagoras and
the triangle inequality,

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

from mnist_diffusion.data import mnist_tensors
from mnist_diffusion.evaluation.features import nearest_distances, pixel_vectors, symmetric_eigh
from mnist_diffusion.paths import memo

# ------------------------------------------------------------------------------------------------ radius search

#: Principal axes in the bound: more axes tighten it but cost more per pair.
AXES = 32
#: Added to r^2 before comparing bounds: far above float32 round-off of squared distances of norm-15 vectors.
MARGIN = 0.05
#: Query rows per chunk of the radius search (chunk x keys float32 bounds: 512 x 60,000 = 123 MB).
SEARCH_CHUNK = 512
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
    for start in range(0, queries.shape[0], SEARCH_CHUNK):
        q, e = queries[start : start + SEARCH_CHUNK], embedded[start : start + SEARCH_CHUNK]
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


# ------------------------------------------------------------------------------------------------ memorisation

#: The threshold is this quantile of the test-to-train nearest distances.
MEMORISATION_QUANTILE = 0.01
#: Sample rows per chunk of the exact nearest-distance search against the 60,000 training images:
#: 512 x 60000 float32 = 123 MB.
NEAREST_CHUNK = 512


@dataclass(frozen=True)
class MemorisationReference:
    """Test-to-train nearest distances (float32 [10000]) and the memorisation threshold derived from them."""

    test_nearest: Tensor
    threshold: float
    quantile: float = MEMORISATION_QUANTILE


@memo(maxsize=1)
def _training_pixels(images_id: int) -> Tensor:
    return pixel_vectors(mnist_tensors("train")[0])


def training_pixels() -> Tensor:
    """All 60,000 training images as float32 [60000, 784] in [0, 1] (cached in-process, 188 MB)."""
    images = mnist_tensors("train")[0]
    return _training_pixels(id(images))


@memo(maxsize=1)
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
    return nearest_distances(pixel_vectors(images), training_pixels(), chunk=NEAREST_CHUNK)


def memorisation_reference() -> MemorisationReference:
    """Compute the threshold from the whole test set (10,000 x 60,000 distances; tens of seconds on a CPU)."""
    test_nearest = nearest_training_distances(mnist_tensors("test")[0])
    threshold = float(torch.quantile(test_nearest.to(torch.float64), MEMORISATION_QUANTILE))
    return MemorisationReference(test_nearest, threshold)


def memorised_share(nearest: Tensor, threshold: float) -> float:
    """Share of images whose nearest-training distance (float [N]) is strictly below ``threshold``."""
    return float((nearest < threshold).double().mean())
