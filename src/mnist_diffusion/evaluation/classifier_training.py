"""Training the MNIST feature classifier: seeded, CPU-friendly, on the training split only.

Recipe (:class:`ClassifierRecipe`): a seeded permutation of the 60,000 training images holds out
``holdout`` of them for choosing the best epoch; the rest train the network with AdamW, a one-cycle
learning rate, and random shifts of up to ``max_shift`` pixels. The test split is only read once,
at the end, to report accuracy; it never influences the weights.
"""

from __future__ import annotations

import copy
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from mnist_diffusion import __version__
from mnist_diffusion.data import mnist_tensors, to_model_range
from mnist_diffusion.errors import UserError
from mnist_diffusion.evaluation.classifier import DEFAULT_RECORD, DEFAULT_WEIGHTS, MnistClassifier, save_classifier
from mnist_diffusion.evaluation.features import classifier_outputs


@dataclass(frozen=True)
class ClassifierRecipe:
    """Everything that determines the trained weights (besides the software versions)."""

    seed: int = 0
    epochs: int = 4
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 5e-4
    holdout: int = 5000
    max_shift: int = 2

    def check(self) -> None:
        """Raise UserError for values that cannot train."""
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or not 0 <= self.holdout < 60_000 or self.max_shift < 0:
            raise UserError(f"invalid classifier recipe {asdict(self)}: need epochs, batch size >= 1, lr > 0, "
                            "0 <= holdout < 60000, max_shift >= 0")


def random_shift(images: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Shift each image by its own random offset in [-max_shift, max_shift]^2, filling with black.

    Args:
        images: uint8 [B, 28, 28].
    Returns:
        uint8 [B, 28, 28]; one gather, no per-image loop.
    """
    if max_shift == 0:
        return images
    b, h, w = images.shape
    padded = F.pad(images, (max_shift, max_shift, max_shift, max_shift))
    offsets = torch.randint(0, 2 * max_shift + 1, (2, b), generator=generator)
    rows = offsets[0, :, None] + torch.arange(h)  # [B, H]
    cols = offsets[1, :, None] + torch.arange(w)  # [B, W]
    return padded[torch.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]


def accuracy(network: MnistClassifier, images: Tensor, labels: Tensor) -> float:
    """Share of ``images`` (uint8 [N, 28, 28]) whose most probable class equals ``labels`` (int64 [N])."""
    probs = classifier_outputs(network.eval(), images).probs
    return float((probs.argmax(dim=1) == labels).double().mean())


def train_classifier(recipe: ClassifierRecipe = ClassifierRecipe(), *, out: str | Path = DEFAULT_WEIGHTS,
                     record: str | Path | None = DEFAULT_RECORD, progress: bool = True) -> dict[str, Any]:
    """Train the classifier with ``recipe``, save the best-holdout-epoch weights to ``out``, report accuracy.

    Returns:
        The training record (also written as JSON to ``record`` unless None): recipe, holdout accuracy per
        epoch, chosen epoch, test accuracy, training seconds, sha256 of the weights file and versions.
    """
    recipe.check()
    started = time.perf_counter()
    torch.manual_seed(recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)
    images, labels = mnist_tensors("train")
    order = torch.randperm(images.shape[0], generator=generator)
    fit_index, holdout_index = order[recipe.holdout:], order[: recipe.holdout]

    network = MnistClassifier()
    optimizer = torch.optim.AdamW(network.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps_per_epoch = -(-fit_index.numel() // recipe.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr, total_steps=recipe.epochs * steps_per_epoch)

    holdout_accuracy: list[float] = []
    best_state, best_epoch = None, -1
    for epoch in range(recipe.epochs):
        network.train()
        permuted = fit_index[torch.randperm(fit_index.numel(), generator=generator)]
        bar = tqdm(permuted.split(recipe.batch_size), desc=f"classifier epoch {epoch + 1}/{recipe.epochs}",
                   disable=not progress, file=sys.stderr, leave=False)
        for batch in bar:
            x = to_model_range(random_shift(images[batch], recipe.max_shift, generator))
            loss = F.cross_entropy(network(x), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        if recipe.holdout:
            holdout_accuracy.append(accuracy(network, images[holdout_index], labels[holdout_index]))
            if progress:
                print(f"epoch {epoch + 1}: holdout accuracy {holdout_accuracy[-1]:.4f}", file=sys.stderr)
        if not recipe.holdout or holdout_accuracy[-1] >= max(holdout_accuracy):
            best_state, best_epoch = copy.deepcopy(network.state_dict()), epoch + 1
    network.load_state_dict(best_state)
    network.eval()
    seconds = time.perf_counter() - started

    sha256 = save_classifier(network, out, {**asdict(recipe), "chosen_epoch": best_epoch})
    test_images, test_labels = mnist_tensors("test")
    result = {
        "weights": Path(out).name,
        "sha256": sha256,
        "recipe": asdict(recipe),
        "chosen_epoch": best_epoch,
        "holdout_accuracy": holdout_accuracy,
        "test_accuracy": accuracy(network, test_images, test_labels),
        "training_seconds": round(seconds, 1),
        "threads": torch.get_num_threads(),
        "versions": {"mnist_diffusion": __version__, "torch": torch.__version__, "python": platform.python_version()},
        "machine": platform.processor() or platform.machine(),
    }
    if record is not None:
        Path(record).write_text(json.dumps(result, indent=2) + "\n")
    return result
