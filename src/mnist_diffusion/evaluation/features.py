"""Turning uint8 images into what the metrics compare: classifier features/probabilities and pixel vectors.

Real and generated images go through exactly these functions, so both sides see the identical pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mnist_diffusion.data import to_model_range


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
        images: uint8 [N, 28, 28], 0 = black (checked upstream by :func:`~.images.as_uint8_images`).
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
