"""The real side of every comparison: the test reference, the real-data floors, and their cache on disk.

* The reference. At size N it is the first N images of a fixed permutation of MNIST's 10,000 test images
  (seed :data:`REFERENCE_SEED`; N = 10,000 is the whole test set), so a sample set of N images is always
  compared with N real images, and smaller N keep the digits' proportions. Its statistics (classifier
  features, fitted Gaussian, k-NN radii, predicted-label histogram) are cached on disk per classifier hash
  and N; the memorisation threshold, which depends on the MNIST files alone, is cached once.
* The floors: what each metric gives for *real* images, the best a model can hope for at that N. The floor
  at size N evaluates N real **training** images against the size-N test reference, exactly as a model's N
  samples are evaluated: mean and std over :data:`FLOOR_SETS` disjoint training subsets (blocks of one fixed
  permutation of the 60,000). One exception: the memorisation floor is measured on the reference's held-out
  *test* images (about 1 % by construction), since training images are their own nearest training image and
  would trivially score 100 %. Floors are cached per classifier hash, N and metrics version
  (``<cache>/evaluation/<hash>/floors_n<N>.json``); ``results/floors/<hash>_n<N>.json`` in the repository holds
  the committed floors for the report, and when present and matching it is used instead of recomputing.
* The cache on disk: ``$MNIST_DIFFUSION_CACHE``, else ``<repo>/.cache`` (gitignored). Inside,
  ``evaluation/<key>/`` where ``key`` is the first 16 hex digits of the classifier's (or Inception network's)
  sha256, or ``pixels`` for what depends on the MNIST files alone. Every entry also stores the metadata it
  was made with (:func:`load_tensors` compares it), so a stale or foreign entry is recomputed, never reused.
  Writes are atomic (temporary file + rename); an unreadable entry is treated as missing. Within a process,
  what was loaded is also held in memory (:func:`mnist_diffusion.paths.clear_caches` forgets it).
"""

from __future__ import annotations

import io
import json
import numbers
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mnist_diffusion.data import RAW_FILES, mnist_tensors
from mnist_diffusion.errors import UserError
from mnist_diffusion.evaluation.classifier import LoadedClassifier
from mnist_diffusion.evaluation.features import classifier_outputs
from mnist_diffusion.evaluation.memorisation import (MEMORISATION_QUANTILE, MemorisationReference,
                                                     memorisation_reference, memorised_share)
from mnist_diffusion.evaluation.metrics import (METRICS, METRICS_VERSION, GaussianStats, RealManifold,
                                                classifier_metrics, gaussian_stats, label_histogram, real_manifold,
                                                versions)
from mnist_diffusion.paths import cache_root, memo, repo_root, write_atomic, write_json

# ------------------------------------------------------------------------------------------------ cache on disk

def cache_folder(key: str) -> Path:
    """``<cache root>/evaluation/<key>`` (not created)."""
    return cache_root() / "evaluation" / key


def save_tensors(path: Path, payload: dict[str, Any], meta: dict[str, Any]) -> None:
    """Store tensors and builtins (``payload``) with the ``meta`` they depend on, atomically."""
    buffer = io.BytesIO()
    torch.save({"meta": meta, "payload": payload}, buffer)
    write_atomic(path, [buffer.getvalue()])


def load_tensors(path: Path, meta: dict[str, Any]) -> dict[str, Any] | None:
    """The payload stored at ``path`` if it exists, is readable and was made with exactly ``meta``; else None."""
    if not path.is_file():
        return None
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a damaged cache entry is recomputed
        return None
    if not isinstance(stored, dict) or stored.get("meta") != meta:
        return None
    return stored.get("payload")


def load_json(path: Path) -> Any | None:
    """Parsed JSON at ``path``, or None when missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------------------------------------ the reference

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


@memo(maxsize=8)
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


@memo(maxsize=1)
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


# ------------------------------------------------------------------------------------------------ real-data floors

#: Number of disjoint training subsets the floor is averaged over.
FLOOR_SETS = 3
#: Seed of the permutation of the training split whose consecutive blocks are the floor's subsets.
FLOOR_SEED = 1
FLOOR_FORMAT = "mnist-diffusion-floors/1"


def floor_training_indices(n: int, sets: int = FLOOR_SETS) -> list[Tensor]:
    """``sets`` disjoint int64 [n] index sets into the training split (consecutive blocks of one permutation)."""
    check_n(n)
    order = torch.randperm(60_000, generator=torch.Generator().manual_seed(FLOOR_SEED))
    return list(order[: n * sets].split(n))


def summarise(values: list[float]) -> dict[str, Any]:
    """``{"value": mean, "std": sample std (None for one value), "values": [...]}`` of per-set values."""
    return {"value": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
            "values": list(values)}


def committed_floors_path(classifier: LoadedClassifier, n: int) -> Path:
    """Where the repository keeps the committed floors: ``results/floors/<hash16>_n<N>.json``."""
    return repo_root() / "results" / "floors" / f"{classifier.short_hash}_n{n}.json"


def _matches(floors: Any, classifier: LoadedClassifier, n: int) -> bool:
    return (isinstance(floors, dict) and floors.get("format") == FLOOR_FORMAT
            and floors.get("classifier_sha256") == classifier.sha256 and floors.get("n") == n
            and floors.get("metrics_version") == METRICS_VERSION and floors.get("sets") == FLOOR_SETS)


def compute_floors(classifier: LoadedClassifier, n: int, device: str = "cpu", progress: bool = False) -> dict[str, Any]:
    """Evaluate :data:`FLOOR_SETS` disjoint sets of n training images against the size-n reference."""
    reference = get_reference(classifier, n, device)
    train_images = mnist_tensors("train")[0]
    per_set = []
    for i, index in enumerate(floor_training_indices(n)):
        if progress:
            print(f"floors: training subset {i + 1}/{FLOOR_SETS} (N = {n})", file=sys.stderr, flush=True)
        outputs = classifier_outputs(classifier.network, train_images[index], device=device)
        per_set.append(classifier_metrics(outputs, reference))
    memorisation = get_memorisation_reference()
    held_out = memorised_share(memorisation.test_nearest[reference.indices], memorisation.threshold)
    metrics = {}
    for spec in METRICS:
        metrics[spec.key] = summarise([held_out] if spec.key == "memorisation" else [s[spec.key] for s in per_set])
    return {
        "format": FLOOR_FORMAT,
        "classifier_sha256": classifier.sha256,
        "metrics_version": METRICS_VERSION,
        "n": n,
        "sets": FLOOR_SETS,
        "definition": (f"{FLOOR_SETS} disjoint sets of {n} MNIST training images (permutation seed {FLOOR_SEED}) vs "
                       f"{n} test images (permutation seed {REFERENCE_SEED}); memorisation: the {n} held-out test "
                       f"images themselves"),
        "memorisation_threshold": memorisation.threshold,
        "metrics": metrics,
        "versions": versions(),
    }


@memo(maxsize=None)
def _floors(classifier: LoadedClassifier, n: int, root: str, device: str, progress: bool) -> dict[str, Any]:
    path = cache_folder(classifier.short_hash) / f"floors_n{n}.json"
    found = next((f for f in map(load_json, (path, committed_floors_path(classifier, n))) if _matches(f, classifier, n)),
                 None)
    if found is None:
        found = compute_floors(classifier, n, device, progress)
        write_json(path, found)
    return found


def get_floors(classifier: LoadedClassifier, n: int, device: str = "cpu", progress: bool = False) -> dict[str, Any]:
    """The floors at size n: from memory, the cache, the committed results file, or computed (then cached).

    The returned dict is shared with later calls: copy before changing it.
    """
    return _floors(classifier, check_n(n), str(cache_root()), str(device), bool(progress))


def write_committed_floors(floors: dict[str, Any], classifier: LoadedClassifier, path: Path | None = None) -> Path:
    """Write floors to ``results/floors/<hash16>_n<N>.json`` (or ``path``); returns the path."""
    target = path or committed_floors_path(classifier, floors["n"])
    write_json(target, floors)
    return target
