"""The evaluation's Python API, as notebooks use it: ``evaluate(images) -> dict`` and ``floors(n) -> dict``, the
readable table and JSON file of a result, and per-sample inspection.

>>> from mnist_diffusion.evaluation import evaluate
>>> result = evaluate([images_seed0, images_seed1, images_seed2])   # uint8 [N, 28, 28] each
>>> result["metrics"]["fid"]            # {"value": mean, "std": std over sets, "values": [...], "floor": ..., ...}
>>> print(metrics_table(result))        # metric | value | floor | better

Several image sets (one per sampling seed) give mean +- std over sets; a single array is one set.

Inspection (:func:`classify`, :func:`best_and_worst`, :func:`nearest_training`) feeds the notebooks' "good and
bad samples", label-histogram and memorisation figures; the numbers in tables come from :func:`evaluate`.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from mnist_diffusion.errors import UserError
from mnist_diffusion.evaluation import inception as inception_module
from mnist_diffusion.evaluation.classifier import load_classifier
from mnist_diffusion.evaluation.features import as_uint8_images, classifier_outputs, pixel_vectors, squared_distances
from mnist_diffusion.evaluation.memorisation import training_pixels
from mnist_diffusion.evaluation.metrics import (INCEPTION_METRIC, METRICS, METRICS_VERSION, SPECS, label_histogram,
                                                set_metrics, versions)
from mnist_diffusion.evaluation.reference import (FLOOR_FORMAT, MAX_N, check_n, get_floors,
                                                  get_memorisation_reference, get_reference, summarise)
from mnist_diffusion.paths import write_json

RESULT_FORMAT = "mnist-diffusion-metrics/1"
#: How many sample sets (seeds) final numbers average over.
DEFAULT_SEEDS = 3


def _image_sets(images: Any) -> list[torch.Tensor]:
    """One array/tensor, or a list/tuple of them (one per seed) -> list of checked uint8 [N_i, 28, 28] tensors."""
    if isinstance(images, (list, tuple)):
        if not images:
            raise UserError("no image sets given")
        return [as_uint8_images(x, what=f"image set {i}") for i, x in enumerate(images)]
    return [as_uint8_images(images)]


def choose_n(sizes: Sequence[int], n: int | None) -> int:
    """The evaluation size: ``n`` if given (every set must hold that many), else the smallest set, capped at 10,000."""
    smallest = min(sizes)
    if n is None:
        return check_n(min(smallest, MAX_N))
    check_n(n)
    if smallest < n:
        raise UserError(f"N = {n} requested but a set holds only {smallest} images; draw more or pass a smaller N")
    return n


def evaluate(images: Any, *, n: int | None = None, seeds: Sequence[int | None] | None = None, inception: bool = False,
             with_floors: bool = True, device: str = "cpu", progress: bool = False,
             classifier_path: str | None = None) -> dict[str, Any]:
    """Every fidelity metric of one or several image sets, with the real-data floor beside each.

    Args:
        images: uint8 [N, 28, 28] (numpy or torch; 0 = black), or a list of such sets, one per sampling seed.
        n: images per set to evaluate (the first n of each); default the smallest set, at most 10,000.
            The reference is n test images and the floor is at the same n.
        seeds: the sampling seed of each set, recorded in the result (default None for each).
        inception: also compute Inception-FID (needs the ``inception`` extra; slow on a CPU). When the
            network is missing, the result's ``notes`` say so and the metric is left out.
        with_floors: look up (or compute, once per classifier and n) the floors.
        device: where the networks run (``"cpu"``, ``"cuda"``, ``"auto"``).
        progress: print progress to stderr.
        classifier_path: other classifier weights (default: the committed ones).

    Returns:
        ``{"format", "n", "sets", "seeds", "classifier_sha256", "metrics_version", "reference", "floor_definition",
        "metrics": {key: {"label", "better", "description", "value", "std", "values", "floor", "floor_std"}},
        "label_shares": {"mean", "values", "reference"}, "notes", "versions", "seconds"}``. ``label_shares``
        holds the share of each predicted digit (float [10], summing to 1): mean over sets, per set, and of the
        reference test images. ``value``/``std`` are the mean and sample std over sets (std None
        for one set); ``values`` the per-set numbers.

    Raises:
        UserError: invalid images (dtype, shape, range, NaN, empty), or an unusable n.
    """
    started = time.perf_counter()
    sets = _image_sets(images)
    n = choose_n([s.shape[0] for s in sets], n)
    seeds = list(seeds) if seeds is not None else [None] * len(sets)
    if len(seeds) != len(sets):
        raise UserError(f"{len(seeds)} seeds given for {len(sets)} image sets")
    classifier = load_classifier(classifier_path)
    reference = get_reference(classifier, n, device)
    memorisation = get_memorisation_reference()
    per_set, shares = [], []
    for i, images_i in enumerate(sets):
        if progress:
            print(f"evaluate: set {i + 1}/{len(sets)} ({n} images)", file=sys.stderr, flush=True)
        subset = images_i[:n]
        outputs = classifier_outputs(classifier.network, subset, device=device)
        per_set.append(set_metrics(subset, outputs, reference, memorisation))
        shares.append(label_histogram(outputs.probs))
    specs = list(METRICS)
    notes: list[str] = []
    if len(sets) < DEFAULT_SEEDS:
        notes.append(f"{len(sets)} sample set{'s' if len(sets) > 1 else ''}: final numbers use {DEFAULT_SEEDS} seeds "
                     "(one file per seed) for mean ± std")
    if n < MAX_N:
        notes.append(f"N = {n:,} < {MAX_N:,}: numbers depend on N; compare only with floors and models at the same N")
    floor_data = get_floors(classifier, n, device, progress) if with_floors else None
    floor_table = dict(floor_data["metrics"]) if floor_data else {}
    if inception:
        reason = inception_module.unavailable_reason()
        if reason:
            notes.append(reason)
        else:
            specs.append(INCEPTION_METRIC)
            notes.append(f"Inception network sha256 {inception_module.INCEPTION_SHA256}")
            for values, images_i in zip(per_set, sets):
                values[INCEPTION_METRIC.key] = inception_module.inception_fid(images_i[:n], n, device, progress)
            committed = floor_table.get(INCEPTION_METRIC.key) or {}
            if with_floors and committed.get("inception_sha256") != inception_module.INCEPTION_SHA256:
                floor_table[INCEPTION_METRIC.key] = inception_module.inception_floor(n, device, progress)
    metrics = {}
    for spec in specs:
        row = {"label": spec.label, "better": spec.better, "description": spec.description,
               **summarise([values[spec.key] for values in per_set])}
        floor = floor_table.get(spec.key)
        row["floor"] = floor["value"] if floor else None
        row["floor_std"] = floor["std"] if floor else None
        metrics[spec.key] = row
    return {
        "format": RESULT_FORMAT,
        "n": n,
        "sets": len(sets),
        "seeds": seeds,
        "classifier_sha256": classifier.sha256,
        "metrics_version": METRICS_VERSION,
        "reference": f"{n} MNIST test images ({'the whole test set' if n == MAX_N else 'seeded subset'})",
        "floor_definition": floor_data["definition"] if floor_data else None,
        "memorisation_threshold": memorisation.threshold,
        "metrics": metrics,
        "label_shares": {"mean": torch.stack(shares).mean(0).tolist(), "values": [h.tolist() for h in shares],
                         "reference": reference.label_histogram.tolist()},
        "notes": notes,
        "versions": versions(),
        "seconds": round(time.perf_counter() - started, 2),
    }


def floors(n: int = MAX_N, *, inception: bool = False, device: str = "cpu", progress: bool = False,
           classifier_path: str | None = None) -> dict[str, Any]:
    """The real-data floors at size n (computed once per classifier and n, then cached).

    Returns:
        ``{"format", "classifier_sha256", "metrics_version", "n", "sets", "definition", "memorisation_threshold",
        "metrics": {key: {"value", "std", "values"}}}``, plus ``metrics["inception_fid"]`` when ``inception`` and
        the network is available (else a ``notes`` line).
    """
    classifier = load_classifier(classifier_path)
    result = dict(get_floors(classifier, n, device, progress))
    result["metrics"] = dict(result["metrics"])
    if inception:
        reason = inception_module.unavailable_reason()
        if reason:
            result["notes"] = [reason]
        else:
            floor = inception_module.inception_floor(n, device, progress)
            result["metrics"][INCEPTION_METRIC.key] = {**{k: floor[k] for k in ("value", "std", "values")},
                                                       "inception_sha256": inception_module.INCEPTION_SHA256}
    return result


# ------------------------------------------------------------------------------------------------ table and JSON


def format_number(value: float | None) -> str:
    """Four significant digits; ``-`` for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}"


def format_mean_std(value: float | None, std: float | None) -> str:
    """``mean ± std`` (or the mean alone when there is no std)."""
    return format_number(value) if std is None else f"{format_number(value)} ± {format_number(std)}"


def metrics_table(result: dict[str, Any]) -> str:
    """The result of :func:`evaluate` (or :func:`floors`) as an aligned plain-text table."""
    is_floors = result.get("format") == FLOOR_FORMAT
    header = ["metric", "floor (real train vs test)" if is_floors else "value", "floor (real train vs test)", "better"]
    rows = []
    for key, row in result["metrics"].items():
        label = row.get("label") or (SPECS[key].label if key in SPECS else key)
        if is_floors:
            rows.append([label, format_mean_std(row["value"], row["std"])])
        else:
            rows.append([label, format_mean_std(row["value"], row["std"]), format_mean_std(row["floor"], row["floor_std"]),
                         row["better"]])
    header = header[:2] if is_floors else header
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join([_title(result, is_floors), *lines, *(f"note: {n}" for n in result.get("notes", []))])


def _title(result: dict[str, Any], is_floors: bool) -> str:
    n = f"N = {result['n']:,}"
    classifier = f"classifier {result['classifier_sha256'][:16]}"
    if is_floors:
        return f"real-data floors, {n}, mean ± std over {result['sets']} training subsets, {classifier}"
    seeds = [s for s in result["seeds"] if s is not None]
    seed_text = f" (seeds {', '.join(map(str, seeds))})" if seeds else ""
    sets = f"{result['sets']} sample set{'s' if result['sets'] > 1 else ''}{seed_text}"
    return f"{n}, {sets}, value = mean ± std over sets, {classifier}"


def write_metrics(result: dict[str, Any], path: str | Path) -> Path:
    """Write a result dict as indented JSON (atomically) and return the path."""
    path = Path(path)
    write_json(path, result)
    return path


# ------------------------------------------------------------------------------------------------ inspection


@dataclass(frozen=True)
class Verdicts:
    """The classifier's reading of N images: predicted digit int64 [N], its probability float32 [N] in [0, 1],
    and the predicted-label histogram float64 [10] (shares summing to 1)."""

    labels: Tensor
    confidence: Tensor
    histogram: Tensor

    def ranked(self, k: int) -> tuple[Tensor, Tensor]:
        """Indices of the ``k`` most and the ``k`` least confidently classified images (most/least first)."""
        order = torch.argsort(self.confidence, descending=True, stable=True)
        return order[:k], order.flip(0)[:k]


def classify(images: Any) -> Verdicts:
    """Classify uint8 images [N, 28, 28] with the evaluation's committed classifier."""
    images = as_uint8_images(images)
    probs = classifier_outputs(load_classifier().network, images).probs
    confidence, labels = probs.max(dim=1)
    return Verdicts(labels, confidence, label_histogram(probs))


def best_and_worst(images: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most and the ``k`` least confidently classified of uint8 images [N, 28, 28] (numpy), most/least first."""
    images = np.asarray(images)
    best, worst = classify(images).ranked(k)
    return images[best.numpy()], images[worst.numpy()]


def nearest_training(images: Any, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """For uint8 images [N, 28, 28]: the nearest of the 60,000 training images in pixel space (pixels in [0, 1]).

    Returns (index int64 [N] into the training split, distance float32 [N])."""
    queries = pixel_vectors(as_uint8_images(images))
    keys = training_pixels()
    key_sq = keys.square().sum(dim=1)
    index, distance = [], []
    for q in queries.split(chunk):
        d2 = squared_distances(q, keys, key_sq)
        best, where = d2.min(dim=1)
        index.append(where)
        distance.append(best.sqrt())
    return torch.cat(index).numpy(), torch.cat(distance).numpy()
