"""Generating images from a trained checkpoint: batching, seeding, and the npz format.

The npz written by ``python -m mnist_diffusion sample`` holds ``images``: uint8 [N, 28, 28] (0 = black
background, like MNIST) and ``meta``: a JSON string describing how they were made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import config as config_module
from .build import build_diffusion, build_network, resolve_device
from .checkpoint import load_checkpoint, load_state_strict, resolve_checkpoint
from .config import Config
from .data import to_uint8
from .ddpm import GaussianDiffusion
from .errors import UserError
from .samplers import SAMPLERS, ancestral_sample, ddim_sample


@dataclass
class TrainedModel:
    """A network restored from a checkpoint, ready to sample (eval mode, on ``device``)."""

    network: nn.Module
    config: Config
    diffusion: GaussianDiffusion
    step: int
    path: Path
    weights: str  # "ema" or "model"


def load_trained(path: str | Path, use_ema: bool = True, device: str = "auto") -> TrainedModel:
    """Rebuild the network of a checkpoint (file or run folder) and load its EMA (default) or raw weights."""
    path = resolve_checkpoint(path)
    dev = resolve_device(device)
    state = load_checkpoint(path)
    cfg = config_module.from_dict(state["config"])
    key = "ema" if use_ema or "model" not in state else "model"
    network = build_network(cfg)
    load_state_strict(network, state[key], f"weights {key!r} of {path}")
    network.to(dev).eval()
    return TrainedModel(network, cfg, build_diffusion(cfg, dev), int(state["step"]), path, key)


def sample_batch(
    network: nn.Module,
    diffusion: GaussianDiffusion,
    n: int,
    *,
    sampler: str = "ddim",
    steps: int = 50,
    eta: float = 0.0,
    variance: str = "beta",
    clip_x0: bool = False,
    seed: int = 0,
    progress: bool = False,
) -> torch.Tensor:
    """One batch from the named sampler: float32 [n, 1, 28, 28] in [-1, 1]."""
    if sampler == "ancestral":
        result = ancestral_sample(network, diffusion, n, seed=seed, variance=variance, clip_x0=clip_x0, progress=progress)
    elif sampler == "ddim":
        result = ddim_sample(network, diffusion, n, steps=steps, eta=eta, seed=seed, clip_x0=clip_x0, progress=progress)
    else:
        raise UserError(f"unknown sampler {sampler!r} for a DDPM checkpoint; choose one of {', '.join(SAMPLERS)}")
    return result.images


def batch_seed(seed: int, index: int) -> int:
    """Seed of batch ``index`` of a run seeded ``seed`` (distinct runs' batches never share a seed in practice)."""
    return seed * 1_000_003 + index


def generate(
    trained: TrainedModel,
    n: int,
    *,
    batch_size: int = 500,
    seed: int = 0,
    progress: bool = True,
    **sampler_options: Any,
) -> np.ndarray:
    """``n`` images as uint8 [n, 28, 28], drawn in batches; the same arguments give the same images."""
    if n < 1:
        raise UserError(f"--n must be >= 1, got {n}")
    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}")
    out = np.empty((n, 28, 28), dtype=np.uint8)
    starts = range(0, n, batch_size)
    for index, start in enumerate(tqdm(starts, desc="sampling batches", disable=not progress or len(starts) == 1)):
        size = min(batch_size, n - start)
        images = sample_batch(
            trained.network, trained.diffusion, size, seed=batch_seed(seed, index),
            progress=progress and len(starts) == 1, **sampler_options,
        )
        out[start : start + size] = to_uint8(images).cpu().numpy()
    return out


def save_samples(path: str | Path, images: np.ndarray, meta: dict[str, Any]) -> Path:
    """Write the project's samples npz: ``images`` uint8 [N, 28, 28] and ``meta`` (a JSON string)."""
    path = Path(path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"samples must be uint8 [N, 28, 28], got {images.dtype} {images.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, images=images, meta=np.array(json.dumps(meta)))
    return path
