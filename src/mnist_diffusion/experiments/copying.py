"""Do a run's samples copy training digits? Distances in pixel space, beside those of real unseen digits.

For N samples of a run drawn with given options (seed 0, the draw the evaluations cache):

* each sample's distance to its nearest training image (pixels in [0, 1], all 60,000 images), beside the same
  distance for the 10,000 test digits (real digits the model never saw: the reference a non-copying model
  should match), and the memorised share (nearer than 99 % of test digits are);
* for a cold model started from training digits' traces (the traced palimpsest's ``training`` prior), the
  distance of each sample to *the* training digit whose trace started it, and how often that digit is also the
  sample's nearest training image: a sample that restored its source digit would sit at distance ~0 from it.

Distributions are kept as quantiles and as counts over :data:`BINS`, for the report's figure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from mnist_diffusion.experiments.draws import draw_samples
from mnist_diffusion.experiments.registry import SampleOptions

#: Histogram bin edges of the distances (pixel distance between 28 x 28 images in [0, 1]; test digits' nearest
#: training distances lie between about 1 and 11).
BINS = np.linspace(0.0, 14.0, 57)
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def distribution(values: np.ndarray) -> dict[str, Any]:
    """Mean, quantiles (:data:`QUANTILES`, keyed ``q5`` ... ``q95``: no dots, as JSON paths split on them) and
    histogram counts over :data:`BINS` of distances [n]."""
    values = np.asarray(values, dtype=np.float64)
    counts, _ = np.histogram(np.clip(values, BINS[0], BINS[-1]), bins=BINS)
    return {"n": int(values.size), "mean": float(values.mean()),
            "quantiles": {f"q{round(100 * q)}": float(np.quantile(values, q)) for q in QUANTILES},
            "counts": counts.tolist()}


def source_digits(trained: Any, options: SampleOptions, n: int, seed: int, batch_size: int) -> np.ndarray | None:
    """The training index of the digit whose trace started each of the ``n`` samples that
    :func:`~mnist_diffusion.training.sampling.generate` draws with these arguments (int64 [n]), or None when the
    options' endpoint uses no training digit. Each batch's state is drawn again exactly as generation draws it
    (the first draw from the batch's generator), without running the network."""
    from mnist_diffusion.diffusion.common import make_generator
    from mnist_diffusion.training.sampling import batch_seed

    degradation = getattr(trained.process, "degradation", None)
    if degradation is None:
        return None
    if options.prior is not None:
        degradation = degradation.with_prior(options.prior)
    device = trained.process.device
    sources = []
    for index, start in enumerate(range(0, n, batch_size)):
        state = degradation.sample_state(min(batch_size, n - start), make_generator(batch_seed(seed, index), device), device)
        if "source" not in state:
            return None
        sources.append(state["source"].cpu())
    return torch.cat(sources).numpy()


def copying(weights: Path, options: SampleOptions, n: int, cache: Path, seed: int = 0,
            progress: bool = False) -> dict[str, Any]:
    """The copying check of ``n`` samples of ``weights`` drawn with ``options`` (see the module docstring). The
    source digits are redrawn with the batch size recorded with the samples, on this process's device: samples
    drawn on another kind of device (whose generators differ) must be drawn again first."""
    import json

    from mnist_diffusion.evaluation.api import nearest_training
    from mnist_diffusion.evaluation.memorisation import memorised_share, training_pixels
    from mnist_diffusion.evaluation.reference import get_memorisation_reference
    from mnist_diffusion.experiments.draws import sample_file
    from mnist_diffusion.training.sampling import load_trained

    images, _ = draw_samples(weights, options, n, seed, cache, progress)
    nearest_index, nearest = nearest_training(images)
    reference = get_memorisation_reference()
    result: dict[str, Any] = {
        "n": n, "seed": seed, "options": options.to_dict(), "threshold": reference.threshold,
        "nearest": distribution(nearest), "test_nearest": distribution(reference.test_nearest.numpy()),
        "memorised_share": memorised_share(torch.as_tensor(nearest), reference.threshold),
    }
    trained = load_trained(weights, device="auto")
    with np.load(sample_file(weights, options, n, seed, cache)) as data:  # the batches the images were drawn in
        batch_size = int(json.loads(str(data["meta"]))["batch_size"])
    sources = source_digits(trained, options, n, seed, batch_size)
    if sources is not None:
        pixels = torch.as_tensor(np.asarray(images), dtype=torch.float32).reshape(n, -1) / 255
        to_source = (pixels - training_pixels()[torch.as_tensor(sources)]).norm(dim=1).numpy()
        result["source"] = distribution(to_source)
        result["nearest_is_source"] = float((nearest_index == sources).mean())
    return result
