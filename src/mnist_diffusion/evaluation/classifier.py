"""The MNIST feature network: a small CNN classifier whose penultimate layer is the metrics' feature space.

Architecture (``MnistClassifier``), input float32 [B, 1, 28, 28] in [-1, 1] (the project's model range):

    conv3x3  1 -> 32, stride 1   BN ReLU   28 x 28
    conv3x3 32 -> 32, stride 2   BN ReLU   14 x 14
    conv3x3 32 -> 64, stride 2   BN ReLU    7 x  7
    conv3x3 64 -> 64, stride 1   BN ReLU    7 x  7
    flatten 3136 -> linear 128   ReLU       the **features** (128 dims, >= 0)
    dropout 0.3 -> linear 10                the **logits**

Strided convolutions instead of pooling keep it fast on a CPU (about 5 M multiply-adds per image).
The committed weights live in
``assets/mnist_classifier.pt``; their sha256 (:func:`file_sha256`) names every cache entry and metrics file.
A sidecar ``assets/mnist_classifier.json`` records how they were trained and their accuracy.

Training (:func:`train_classifier`, recipe :class:`ClassifierRecipe`) is seeded, CPU-friendly and uses the
training split only: a seeded permutation of the 60,000 training images holds out ``holdout`` of them for
choosing the best epoch; the rest train the network with AdamW, a one-cycle learning rate, and random shifts of
up to ``max_shift`` pixels. The test split is only read once, at the end, to report accuracy; it never
influences the weights.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from tqdm.auto import tqdm

from mnist_diffusion import __version__
from mnist_diffusion.data import mnist_tensors, to_model_range
from mnist_diffusion.errors import UserError
from mnist_diffusion.evaluation.features import classifier_outputs
from mnist_diffusion.paths import memo

#: Format tag stored in the weights file.
CLASSIFIER_FORMAT = "mnist-diffusion-classifier/1"
#: Dimension of the feature space (the penultimate layer).
FEATURE_DIM = 128
NUM_CLASSES = 10
#: Where the committed weights and their training record live.
ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_WEIGHTS = ASSETS / "mnist_classifier.pt"
DEFAULT_RECORD = ASSETS / "mnist_classifier.json"
#: Environment variable that points the evaluation at other classifier weights (tests, experiments).
CLASSIFIER_ENV = "MNIST_DIFFUSION_CLASSIFIER"


def _conv_block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    """3x3 convolution (padding 1, no bias), batch norm, ReLU: [B, c_in, H, W] -> [B, c_out, H/stride, W/stride]."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class MnistClassifier(nn.Module):
    """Small CNN for 28 x 28 digits; ``forward`` gives logits, :meth:`features_and_logits` both outputs."""

    def __init__(self, feature_dim: int = FEATURE_DIM, dropout: float = 0.3) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_block(1, 32, 1),
            _conv_block(32, 32, 2),
            _conv_block(32, 64, 2),
            _conv_block(64, 64, 1),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, feature_dim),
            nn.ReLU(inplace=True),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, NUM_CLASSES)

    def features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x: float32 [B, 1, 28, 28] in [-1, 1] -> (features [B, 128] >= 0, logits [B, 10])."""
        features = self.body(x)
        return features, self.head(self.dropout(features))

    def forward(self, x: Tensor) -> Tensor:
        """x: float32 [B, 1, 28, 28] in [-1, 1] -> logits [B, 10]."""
        return self.features_and_logits(x)[1]

    def fused_for_inference(self) -> "MnistClassifier":
        """An eval-mode copy with each batch norm folded into its convolution, in channels-last memory layout.

        Same function up to float rounding (about 1e-6 relative), about twice as fast on a CPU.
        """
        fused = copy.deepcopy(self).eval()
        for block in fused.body:
            if isinstance(block, nn.Sequential) and isinstance(block[0], nn.Conv2d):
                block[0] = fuse_conv_bn_eval(block[0], block[1])
                block[1] = nn.Identity()
        return fused.to(memory_format=torch.channels_last).requires_grad_(False)


@dataclass(frozen=True)
class LoadedClassifier:
    """A classifier ready for inference (eval mode, batch norm folded, CPU) with the identity of its weights file."""

    network: MnistClassifier
    path: Path
    sha256: str

    @property
    def short_hash(self) -> str:
        """First 16 hex digits of the sha256: enough to name cache folders and files."""
        return self.sha256[:16]


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 (hex) of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def weights_path(path: str | os.PathLike | None = None) -> Path:
    """The classifier weights to use: the argument, else ``$MNIST_DIFFUSION_CLASSIFIER``, else the committed file."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(CLASSIFIER_ENV)
    return Path(env).expanduser() if env else DEFAULT_WEIGHTS


def save_classifier(network: MnistClassifier, path: str | os.PathLike, training: dict[str, Any]) -> str:
    """Write ``{format, state_dict, feature_dim, training}`` with torch.save; returns the file's sha256.

    ``training`` must hold only deterministic values (the recipe, not timings), and the bytes do not depend on
    the file name, so rerunning the same seeded recipe on the same software reproduces the same sha256.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in network.state_dict().items()}
    buffer = io.BytesIO()  # not the file itself: torch.save would name the archive's folder after the file
    torch.save({"format": CLASSIFIER_FORMAT, "state_dict": state, "feature_dim": network.head.in_features,
                "training": training}, buffer)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)
    return file_sha256(path)


@memo(maxsize=4)
def _load(path: str, size: int, mtime_ns: int) -> LoadedClassifier:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means an unusable file
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"cannot read classifier weights {path}: {reason[:200]}") from None
    if not isinstance(state, dict) or state.get("format") != CLASSIFIER_FORMAT:
        raise UserError(f"{path} is not an mnist-diffusion classifier (expected format {CLASSIFIER_FORMAT!r})")
    network = MnistClassifier(feature_dim=int(state["feature_dim"]))
    try:
        network.load_state_dict(state["state_dict"])
    except RuntimeError as exc:
        raise UserError(f"classifier weights {path} do not fit the network: {str(exc).splitlines()[0]}") from None
    return LoadedClassifier(network.fused_for_inference(), Path(path), file_sha256(path))


def load_classifier(path: str | os.PathLike | None = None) -> LoadedClassifier:
    """Load the classifier (see :func:`weights_path`) for inference; cached per file (path, size, mtime).

    Raises:
        UserError: the file is missing (with the command that makes it) or is not a classifier.
    """
    resolved = weights_path(path)
    if not resolved.is_file():
        raise UserError(f"classifier weights {resolved} not found; fix: run 'python -m mnist_diffusion train-classifier'"
                        f" (or set {CLASSIFIER_ENV} to a weights file)")
    st = resolved.stat()
    return _load(str(resolved.resolve()), st.st_size, st.st_mtime_ns)


def training_record(path: str | os.PathLike = DEFAULT_RECORD) -> dict[str, Any] | None:
    """The committed training record (accuracy, seconds, sha256 of the weights), or None when absent."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else None


# ------------------------------------------------------------------------------------------------ training


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
