"""Computing the whole metric suite for one image set against a reference.

Every metric is defined on uint8 images [N, 28, 28]; real and generated sets go through the identical
pipeline (:func:`set_metrics`). The list of metrics and their meaning is in :mod:`.definitions`.
"""

from __future__ import annotations

from torch import Tensor

from mnist_diffusion.evaluation.definitions import METRICS
from mnist_diffusion.evaluation.features import ClassifierOutputs
from mnist_diffusion.evaluation.fid import frechet_distance, gaussian_stats
from mnist_diffusion.evaluation.kid import kernel_inception_distance
from mnist_diffusion.evaluation.labels import label_metrics
from mnist_diffusion.evaluation.memorisation import MemorisationReference, memorised_mask
from mnist_diffusion.evaluation.prdc import precision_recall_density_coverage
from mnist_diffusion.evaluation.reference import Reference


def classifier_metrics(outputs: ClassifierOutputs, reference: Reference) -> dict[str, float]:
    """Every classifier-based metric (all of :data:`METRICS` but memorisation) of one set against ``reference``."""
    result = {"fid": frechet_distance(gaussian_stats(outputs.features), reference.stats),
              "kid": kernel_inception_distance(outputs.features, reference.manifold.features).mean}
    result.update(precision_recall_density_coverage(outputs.features, reference.manifold))
    result.update(label_metrics(outputs.probs, reference.label_histogram))
    return result


def set_metrics(images: Tensor, outputs: ClassifierOutputs, reference: Reference,
                memorisation: MemorisationReference) -> dict[str, float]:
    """All of :data:`METRICS` for one image set: uint8 images [N, 28, 28] and their classifier outputs."""
    result = classifier_metrics(outputs, reference)
    result["memorisation"] = float(memorised_mask(images, memorisation.threshold).double().mean())
    return {spec.key: result[spec.key] for spec in METRICS}
