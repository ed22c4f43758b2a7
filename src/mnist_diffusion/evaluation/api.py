"""The evaluation's Python API, as notebooks use it: ``evaluate(images) -> dict`` and ``floors(n) -> dict``.

>>> from mnist_diffusion.evaluation import evaluate
>>> result = evaluate([images_seed0, images_seed1, images_seed2])   # uint8 [N, 28, 28] each
>>> result["metrics"]["fid"]            # {"value": mean, "std": std over sets, "values": [...], "floor": ..., ...}

Several image sets (one per sampling seed) give mean +- std over sets; a single array is one set.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Sequence

import torch

from mnist_diffusion.errors import UserError
from mnist_diffusion.evaluation.classifier import load_classifier
from mnist_diffusion.evaluation.definitions import INCEPTION_METRIC, METRICS, METRICS_VERSION, versions
from mnist_diffusion.evaluation.features import classifier_outputs
from mnist_diffusion.evaluation.images import as_uint8_images
from mnist_diffusion.evaluation.labels import label_histogram
from mnist_diffusion.evaluation.metrics import set_metrics
from mnist_diffusion.evaluation.real_floors import get_floors, summarise
from mnist_diffusion.evaluation.reference import MAX_N, check_n, get_memorisation_reference, get_reference

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
        from mnist_diffusion.evaluation import inception as inception_module

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
        from mnist_diffusion.evaluation import inception as inception_module

        reason = inception_module.unavailable_reason()
        if reason:
            result["notes"] = [reason]
        else:
            floor = inception_module.inception_floor(n, device, progress)
            result["metrics"][INCEPTION_METRIC.key] = {**{k: floor[k] for k in ("value", "std", "values")},
                                                       "inception_sha256": inception_module.INCEPTION_SHA256}
    return result
