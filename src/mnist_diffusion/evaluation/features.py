"""What the metrics are computed from: checked uint8 images, their classifier outputs and pixel vectors, and the
distance and eigendecomposition routines every feature-space metric is built on.

* Input checks: everything evaluated is **uint8 [N, 28, 28], 0 = black background** (the project's storage
  convention). Anything else is refused with a one-line :class:`~mnist_diffusion.errors.UserError` that says
  what is wrong and how to fix it; nothing is silently rescaled, because a wrong pixel range makes every metric
  meaningless without failing. :func:`load_sample_file` reads the ``sample`` command's npz files.
* Features: real and generated images go through exactly :func:`classifier_outputs` and :func:`pixel_vectors`,
  so both sides see the identical pipeline.
* Distances: chunked Euclidean distances on float32 point sets [N, D], the k-nearest-neighbour building blocks
  of precision/recall, density/coverage and the memorisation check. Memory stays at ``chunk x M`` floats however
  large N and M are; squared distances come from ``|a|^2 + |b|^2 - 2 a.b`` (one matrix product per chunk),
  clamped at 0.
* Symmetric eigendecompositions, single-threaded: torch's (and numpy's) multi-threaded ``eigh`` has been
  measured here taking 7 to 12 s for a 784 x 784 matrix that a single thread decomposes in 0.2 s (threads
  spin-waiting on a machine whose cores are busy). The evaluation's matrices are small (128 to 2048 wide), so
  one thread is never the bottleneck.
"""

from __future__ import annotations

import contextlib
import json
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mnist_diffusion.data import to_model_range
from mnist_diffusion.errors import UserError

# ------------------------------------------------------------------------------------------------ input checks

#: Key of the images in the project's samples npz (see :func:`mnist_diffusion.training.sampling.save_samples`).
IMAGES_KEY = "images"
META_KEY = "meta"

_EXPECTED = "uint8 [N, 28, 28] with 0 = black background"


@dataclass(frozen=True)
class SampleFile:
    """One loaded samples file: its images (uint8 [N, 28, 28]), its ``meta`` dict (may be empty), its path."""

    path: Path
    images: Tensor
    meta: dict[str, Any]

    @property
    def seed(self) -> int | None:
        """The sampling seed recorded in ``meta`` by ``python -m mnist_diffusion sample``, if any."""
        seed = self.meta.get("seed")
        return int(seed) if isinstance(seed, (int, np.integer)) else None


def _float_hint(values: np.ndarray) -> str:
    """Why a float array is refused, and the conversion that fixes it."""
    lo, hi = float(values.min()), float(values.max())
    if lo >= -1.0 and hi <= 1.0 and lo < 0.0:
        return f"values in [{lo:.3g}, {hi:.3g}] look like the model range [-1, 1]; convert with mnist_diffusion.data.to_uint8"
    if lo >= 0.0 and hi <= 1.0:
        return f"values in [{lo:.3g}, {hi:.3g}] look like [0, 1] floats; convert with (x * 255).round().astype(np.uint8)"
    if lo >= 0.0 and hi <= 255.0:
        return f"values in [{lo:.3g}, {hi:.3g}]; convert with x.round().astype(np.uint8)"
    return f"values in [{lo:.3g}, {hi:.3g}] are outside every image range"


def as_uint8_images(images: Any, what: str = "images") -> Tensor:
    """Check ``images`` and return them as a contiguous CPU uint8 tensor [N, 28, 28].

    Args:
        images: numpy array or torch tensor, uint8 [N, 28, 28] or [N, 1, 28, 28] (0 = black), N >= 1.
        what: how to name the input in error messages (for example the file it came from).

    Raises:
        UserError: one line for a wrong type, dtype, shape, value range, NaN/inf or an empty set.
    """
    if isinstance(images, Tensor):
        array = images.detach().cpu().numpy()
    elif isinstance(images, np.ndarray):
        array = images
    else:
        raise UserError(f"{what}: expected a numpy array or torch tensor ({_EXPECTED}), got {type(images).__name__}")
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 3 or array.shape[1:] != (28, 28):
        raise UserError(f"{what}: expected shape [N, 28, 28] (or [N, 1, 28, 28]), got {list(array.shape)}")
    if array.shape[0] == 0:
        raise UserError(f"{what}: holds no images (N = 0)")
    if array.dtype != np.uint8:
        if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.number):
            raise UserError(f"{what}: expected {_EXPECTED}, got dtype {array.dtype}")
        if np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.complexfloating):
            if np.iscomplexobj(array):
                raise UserError(f"{what}: expected {_EXPECTED}, got complex dtype {array.dtype}")
            bad = ~np.isfinite(array)
            if bad.any():
                kind = "NaN" if np.isnan(array).any() else "infinite"
                raise UserError(f"{what}: contains {kind} values ({int(bad.sum())} pixels); did sampling diverge?")
            raise UserError(f"{what}: expected {_EXPECTED}, got {array.dtype}: {_float_hint(array)}")
        lo, hi = int(array.min()), int(array.max())
        if lo < 0 or hi > 255:
            raise UserError(f"{what}: values in [{lo}, {hi}] are outside [0, 255]; expected {_EXPECTED}")
        raise UserError(f"{what}: expected {_EXPECTED}, got {array.dtype} (values fit: convert with .astype(np.uint8))")
    return torch.from_numpy(np.array(array, copy=True, order="C"))


def _load_array_file(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """The images array and meta dict of an ``.npz`` (key ``images``) or ``.npy`` file, unchecked."""
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if not (magic.startswith(b"PK\x03\x04") or magic == b"\x93NUMPY"):
        raise UserError(f"{path}: not a readable .npz/.npy file (it is neither a zip archive nor a .npy array); "
                        "make one with 'python -m mnist_diffusion sample'")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise UserError(f"{path}: not a readable .npz/.npy file ({reason}); "
                        "make one with 'python -m mnist_diffusion sample'") from None
    if isinstance(loaded, np.ndarray):
        return loaded, {}
    with loaded as npz:
        if IMAGES_KEY not in npz.files:
            raise UserError(f"{path}: has no {IMAGES_KEY!r} array (keys: {', '.join(npz.files) or 'none'}); "
                            "expected the npz written by 'python -m mnist_diffusion sample'")
        try:
            images = npz[IMAGES_KEY]
            meta: dict[str, Any] = {}
            if META_KEY in npz.files:
                parsed = json.loads(str(npz[META_KEY]))
                meta = parsed if isinstance(parsed, dict) else {}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise UserError(f"{path}: damaged npz ({' '.join(str(exc).split())[:160]})") from None
    return images, meta


def load_sample_file(path: str | os.PathLike) -> SampleFile:
    """Load and check a samples file (``.npz`` with ``images`` and optional ``meta`` JSON, or a bare ``.npy``).

    Raises:
        UserError: one line for a missing, empty, unreadable or wrongly shaped/typed file.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"samples file {path} not found")
    if path.stat().st_size == 0:
        raise UserError(f"samples file {path} is empty (0 bytes)")
    array, meta = _load_array_file(path)
    return SampleFile(path, as_uint8_images(array, what=str(path)), meta)


# ------------------------------------------------------------------------------------------------ features


@dataclass(frozen=True)
class ClassifierOutputs:
    """The classifier's view of N images.

    Attributes:
        features: float32 [N, 128], the penultimate layer (>= 0): the space of FID, KID, precision/recall,
            density/coverage.
        probs: float32 [N, 10], softmax of the logits: the label metrics and the MNIST score.
    """

    features: Tensor
    probs: Tensor

    def __len__(self) -> int:
        return self.features.shape[0]

    def subset(self, index: Tensor) -> "ClassifierOutputs":
        """The rows ``index`` (int64 [M]) of both tensors."""
        return ClassifierOutputs(self.features[index], self.probs[index])


def resolve_device(device: str | torch.device = "cpu") -> torch.device:
    """``"auto"`` -> CUDA when available, else the CPU; anything else is passed to ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@torch.inference_mode()
def classifier_outputs(network: nn.Module, images: Tensor, *, batch_size: int = 1000,
                       device: str | torch.device = "cpu") -> ClassifierOutputs:
    """Features and class probabilities of uint8 images.

    Args:
        network: a :class:`~mnist_diffusion.evaluation.classifier.MnistClassifier` in eval mode.
        images: uint8 [N, 28, 28], 0 = black (checked upstream by :func:`as_uint8_images`).
        batch_size: images per forward pass (memory only; results do not depend on it beyond float rounding).
        device: where the network runs; outputs always come back on the CPU.

    Returns:
        :class:`ClassifierOutputs` with float32 CPU tensors [N, 128] and [N, 10].
    """
    dev = resolve_device(device)
    network = network.to(dev)
    features, probs = [], []
    for chunk in images.split(batch_size):
        x = to_model_range(chunk.to(dev)).contiguous(memory_format=torch.channels_last)
        f, logits = network.features_and_logits(x)
        features.append(f.float().cpu())
        probs.append(torch.softmax(logits.float(), dim=1).cpu())
    return ClassifierOutputs(torch.cat(features), torch.cat(probs))


def pixel_vectors(images: Tensor) -> Tensor:
    """uint8 [N, 28, 28] -> float32 [N, 784] in [0, 1]: the space of the memorisation check."""
    return images.reshape(images.shape[0], -1).to(torch.float32) / 255.0


# ------------------------------------------------------------------------------------------------ distances

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


# ------------------------------------------------------------------------------------------------ linear algebra


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(1)``, restoring the previous count afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def symmetric_eigh(matrix: Tensor) -> tuple[Tensor, Tensor]:
    """Eigenvalues (ascending) and eigenvectors (columns) of a symmetric matrix [D, D], single-threaded."""
    with single_thread():
        return torch.linalg.eigh((matrix + matrix.T) / 2)


def symmetric_eigvalsh(matrix: Tensor) -> Tensor:
    """Eigenvalues (ascending) of a symmetric matrix [D, D], single-threaded."""
    with single_thread():
        return torch.linalg.eigvalsh((matrix + matrix.T) / 2)
