"""Real-data floors: what each metric gives for *real* images, the best a model can hope for at that N.

The floor at size N evaluates N real **training** images against the size-N test reference, exactly as
a model's N samples are evaluated: mean and std over :data:`FLOOR_SETS` disjoint training subsets
(blocks of one fixed permutation of the 60,000). One exception: the memorisation floor is measured on the
reference's held-out *test* images (about 1 % by construction), since training images are their own
nearest training image and would trivially score 100 %.

Floors are cached per classifier hash, N and metrics version (``<cache>/evaluation/<hash>/floors_n<N>.json``).
``results/floors/<hash>_n<N>.json`` in the repository holds the committed floors for the report; when
present and matching, it is used instead of recomputing.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mnist_diffusion.data import mnist_tensors
from mnist_diffusion.paths import repo_root
from mnist_diffusion.evaluation.cache import cache_folder, cache_root, load_json, save_json
from mnist_diffusion.evaluation.classifier import LoadedClassifier
from mnist_diffusion.evaluation.definitions import METRICS, METRICS_VERSION, versions
from mnist_diffusion.evaluation.features import classifier_outputs
from mnist_diffusion.evaluation.memorisation import memorised_share
from mnist_diffusion.evaluation.metrics import classifier_metrics
from mnist_diffusion.evaluation.reference import REFERENCE_SEED, check_n, get_memorisation_reference, get_reference

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


#: Floors already loaded in this process, keyed by (classifier sha256, n, cache root).
_MEMO: dict[tuple[str, int, str], dict[str, Any]] = {}


def get_floors(classifier: LoadedClassifier, n: int, device: str = "cpu", progress: bool = False) -> dict[str, Any]:
    """The floors at size n: from memory, the cache, the committed results file, or computed (then cached)."""
    key = (classifier.sha256, check_n(n), str(cache_root()))
    if key not in _MEMO:
        path = cache_folder(classifier.short_hash) / f"floors_n{n}.json"
        found = next((f for f in map(load_json, (path, committed_floors_path(classifier, n))) if _matches(f, classifier, n)),
                     None)
        if found is None:
            found = compute_floors(classifier, n, device, progress)
            save_json(path, found)
        _MEMO[key] = found
    return _MEMO[key]


def clear_memory_cache() -> None:
    """Forget floors held in memory (the files stay)."""
    _MEMO.clear()


def write_committed_floors(floors: dict[str, Any], classifier: LoadedClassifier, path: Path | None = None) -> Path:
    """Write floors to ``results/floors/<hash16>_n<N>.json`` (or ``path``); returns the path."""
    target = path or committed_floors_path(classifier, floors["n"])
    save_json(target, floors)
    return target
