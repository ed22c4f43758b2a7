"""The real reference every set is compared with: N images of MNIST's test split, and their statistics.

At size N the reference is the first N images of a fixed permutation of the 10,000 test images
(seed :data:`REFERENCE_SEED`; N = 10,000 is the whole test set), so a sample set of N images is
always compared with N real images, and smaller N keep the digits' proportions. Its statistics
(classifier features, fitted Gaussian, k-NN radii, predicted-label histogram) are cached on disk
per classifier hash and N; the memorisation threshold, which depends on the MNIST files alone,
is cached once.
"""

from __future__ import annotations

import functools
import numbers
from dataclasses import dataclass

import torch
from torch import Tensor

from mnist_diffusion.data import RAW_FILES, mnist_tensors
from mnist_diffusion.errors import UserError
from mnist_diffusion.evaluation.cache import cache_folder, cache_root, load_tensors, save_tensors
from mnist_diffusion.evaluation.classifier import LoadedClassifier
from mnist_diffusion.evaluation.definitions import METRICS_VERSION
from mnist_diffusion.evaluation.features import classifier_outputs
from mnist_diffusion.evaluation.fid import GaussianStats, gaussian_stats
from mnist_diffusion.evaluation.labels import label_histogram
from mnist_diffusion.evaluation.memorisation import MEMORISATION_QUANTILE, MemorisationReference, memorisation_reference
from mnist_diffusion.evaluation.prdc import RealManifold, real_manifold

TEST_SIZE = 10_000
#: Largest N: the reference cannot hold more images than the test split.
MAX_N = TEST_SIZE
#: Smallest N: the k-NN radii need more than 5 points, and fewer than 10 images measure nothing.
MIN_N = 10
REFERENCE_SEED = 0
#: md5 of the test images file: the data the references are made of.
_TEST_MD5 = next(f.md5 for f in RAW_FILES if f.name == "t10k-images-idx3-ubyte")
_TRAIN_MD5 = next(f.md5 for f in RAW_FILES if f.name == "train-images-idx3-ubyte")


@dataclass(frozen=True)
class Reference:
    """Statistics of the size-N test reference under one classifier.

    Attributes:
        n: number of reference images.
        classifier_sha256: the feature network they were computed with.
        indices: int64 [n], which test images (see :func:`reference_indices`).
        stats: Gaussian fitted to their features (float64 mean [128], covariance [128, 128]).
        manifold: their features (float32 [n, 128]) and k-NN radii for precision/recall, density/coverage.
        label_histogram: float64 [10], share of the reference predicted as each digit.
    """

    n: int
    classifier_sha256: str
    indices: Tensor
    stats: GaussianStats
    manifold: RealManifold
    label_histogram: Tensor


def check_n(n: int) -> int:
    """``n`` as an int if it is a usable evaluation size, else a UserError saying the valid range."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or not MIN_N <= n <= MAX_N:
        raise UserError(f"N must be an integer in [{MIN_N}, {MAX_N}] (the reference is MNIST's 10,000 test images), got {n}")
    return int(n)


def reference_indices(n: int) -> Tensor:
    """The test images of the size-n reference: the first n of a fixed permutation (int64 [n])."""
    return torch.randperm(TEST_SIZE, generator=torch.Generator().manual_seed(REFERENCE_SEED))[: check_n(n)]


def reference_images(n: int) -> Tensor:
    """uint8 [n, 28, 28]: the size-n reference's test images."""
    return mnist_tensors("test")[0][reference_indices(n)]


def _cache_meta(classifier: LoadedClassifier, n: int) -> dict:
    return {"kind": "reference", "metrics_version": METRICS_VERSION, "classifier_sha256": classifier.sha256,
            "n": n, "reference_seed": REFERENCE_SEED, "test_md5": _TEST_MD5}


def build_reference(classifier: LoadedClassifier, n: int, device: str = "cpu") -> Reference:
    """Compute the size-n reference's statistics (no cache)."""
    indices = reference_indices(n)
    outputs = classifier_outputs(classifier.network, mnist_tensors("test")[0][indices], device=device)
    return Reference(n, classifier.sha256, indices, gaussian_stats(outputs.features), real_manifold(outputs.features),
                     label_histogram(outputs.probs))


@functools.lru_cache(maxsize=8)
def _reference(classifier: LoadedClassifier, n: int, device: str, root: str) -> Reference:
    path = cache_folder(classifier.short_hash) / f"reference_n{n}.pt"
    meta = _cache_meta(classifier, n)
    stored = load_tensors(path, meta)
    if stored is not None:
        m = stored["manifold"]
        return Reference(n, classifier.sha256, stored["indices"], GaussianStats(stored["mean"], stored["cov"], n),
                         RealManifold(m["features"], m["radii_pr"], m["radii_dc"], m["k_pr"], m["k_dc"]),
                         stored["label_histogram"])
    ref = build_reference(classifier, n, device)
    man = ref.manifold
    save_tensors(path, {"indices": ref.indices, "mean": ref.stats.mean, "cov": ref.stats.cov,
                        "label_histogram": ref.label_histogram,
                        "manifold": {"features": man.features, "radii_pr": man.radii_pr, "radii_dc": man.radii_dc,
                                     "k_pr": man.k_pr, "k_dc": man.k_dc}}, meta)
    return ref


def get_reference(classifier: LoadedClassifier, n: int, device: str = "cpu") -> Reference:
    """The size-n reference for ``classifier``: from memory, else the disk cache, else computed and cached."""
    return _reference(classifier, check_n(n), str(device), str(cache_root()))


@functools.lru_cache(maxsize=1)
def _memorisation(cache_key: str) -> MemorisationReference:
    path = cache_folder("pixels") / "memorisation.pt"
    meta = {"kind": "memorisation", "metrics_version": METRICS_VERSION, "quantile": MEMORISATION_QUANTILE,
            "test_md5": _TEST_MD5, "train_md5": _TRAIN_MD5}
    stored = load_tensors(path, meta)
    if stored is not None:
        return MemorisationReference(stored["test_nearest"], float(stored["threshold"]), MEMORISATION_QUANTILE)
    ref = memorisation_reference()
    save_tensors(path, {"test_nearest": ref.test_nearest, "threshold": ref.threshold}, meta)
    return ref


def get_memorisation_reference() -> MemorisationReference:
    """Test-to-train nearest pixel distances and the memorisation threshold (memory, disk cache, or computed)."""
    return _memorisation(str(cache_root()))


def clear_memory_caches() -> None:
    """Forget references held in memory (the disk cache stays); for tests that switch cache folders."""
    _reference.cache_clear()
    _memorisation.cache_clear()
