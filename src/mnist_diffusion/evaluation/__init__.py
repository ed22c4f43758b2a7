"""Fidelity evaluation: an MNIST feature classifier, the metric suite, real-data floors, optional Inception-FID.

Public API (what notebooks use)::

    from mnist_diffusion.evaluation import evaluate, floors, metrics_table
    result = evaluate([images_seed0, images_seed1, images_seed2])  # uint8 [N, 28, 28] each, N <= 10,000
    print(metrics_table(result))
    floors(10_000)["metrics"]["fid"]["value"]

Modules: ``classifier`` (network, weights, hash), ``classifier_training``, ``images`` (input checks, npz files),
``features``, ``distances``, ``fid``, ``kid``, ``prdc``, ``labels``, ``memorisation``, ``definitions`` (the metric
list), ``metrics`` (one set's suite), ``reference`` (the test reference), ``real_floors``, ``inception``, ``cache``,
``report`` (table, JSON), ``inspect`` (per-sample verdicts, nearest training images), ``api``.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the module defining it; imported on first use, so that ``python -m mnist_diffusion``'s other
#: subcommands do not pay for the evaluation's imports.
_EXPORTS = {
    "evaluate": "api", "floors": "api", "metrics_table": "report", "write_metrics": "report",
    "load_classifier": "classifier", "load_sample_file": "images", "as_uint8_images": "images",
    "METRICS": "definitions", "METRICS_VERSION": "definitions",
    "classify": "inspect", "nearest_training": "inspect", "best_and_worst": "inspect",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
