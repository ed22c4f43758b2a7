"""Label metrics from the classifier's class probabilities p(y | x) (float [N, 10], rows sum to 1).

* MNIST score: the Inception Score's analogue, exp(E_x KL(p(y|x) || p(y))) with p(y) the set's mean
  prediction, over the whole set (no splits). 1 = every image gets the same (or a uniform) prediction;
  10 = confident predictions spread evenly over the ten digits.
* Label histogram: share of images predicted as each digit (argmax). Compared with the reference set's
  histogram by KL(samples || reference) in nats (0 when equal; log 2 = 0.69 when half the digits are
  missing and the rest doubled) and by the largest per-class gap |share_s - share_r|.
* Confident share: share of images whose largest class probability is >= 0.9.
"""

from __future__ import annotations

import torch
from torch import Tensor

NUM_CLASSES = 10
CONFIDENCE_THRESHOLD = 0.9


def mnist_score(probs: Tensor) -> float:
    """exp(mean_x KL(p(y|x) || mean_x p(y|x))) in [1, 10] for probabilities [N, 10]."""
    p = probs.to(torch.float64)
    marginal = p.mean(dim=0, keepdim=True)
    kl = torch.where(p > 0, p * (p.clamp_min(1e-300).log() - marginal.clamp_min(1e-300).log()), 0.0).sum(dim=1)
    return float(kl.mean().exp())


def label_histogram(probs: Tensor) -> Tensor:
    """Share of images per predicted class: float64 [10], sums to 1."""
    counts = torch.bincount(probs.argmax(dim=1), minlength=NUM_CLASSES).to(torch.float64)
    return counts / counts.sum()


#: Floor on the reference shares in the KL, so that a class missing from a tiny reference set gives a
#: large finite value instead of infinity (never reached by MNIST's test set, whose rarest digit is 8.9 %).
REFERENCE_SHARE_FLOOR = 1e-6


def histogram_kl(samples: Tensor, reference: Tensor) -> float:
    """KL(samples || reference) in nats between two class histograms [10] (float64, each summing to 1)."""
    mask = samples > 0
    ref = reference.clamp_min(REFERENCE_SHARE_FLOOR)
    return float((samples[mask] * (samples[mask] / ref[mask]).log()).sum())


def label_metrics(probs: Tensor, reference_histogram: Tensor) -> dict[str, float]:
    """``{"mnist_score", "label_kl", "label_max_gap", "confident_share"}`` of sample probabilities [N, 10]."""
    histogram = label_histogram(probs)
    return {
        "mnist_score": mnist_score(probs),
        "label_kl": histogram_kl(histogram, reference_histogram),
        "label_max_gap": float((histogram - reference_histogram).abs().max()),
        "confident_share": float((probs.max(dim=1).values >= CONFIDENCE_THRESHOLD).double().mean()),
    }
