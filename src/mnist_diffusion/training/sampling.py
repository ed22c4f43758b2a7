"""Generating images from a trained checkpoint: batching, seeding, and the npz format.

The npz written by ``python -m mnist_diffusion sample`` holds ``images``: uint8 [N, 28, 28] (0 = black
background, like MNIST) and ``meta``: a JSON string describing how they were made.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from mnist_diffusion.training import config as config_module
from mnist_diffusion.paths import write_atomic
from mnist_diffusion.training.build import Process, build_network, build_process, resolve_device
from mnist_diffusion.training.checkpoint import load_checkpoint, load_state_strict, resolve_checkpoint
from mnist_diffusion.training.config import Config
from mnist_diffusion.data import mnist_tensors, to_model_range, to_uint8
from mnist_diffusion.cold.restoration import ColdDiffusion
from mnist_diffusion.errors import UserError
from mnist_diffusion.cold import COLD_SAMPLERS, cold_restore, cold_sample
from mnist_diffusion.diffusion import DPM_SOLVERS, SAMPLERS, ancestral_sample, ddim_sample, dpm_solver_sample


@dataclass
class TrainedModel:
    """A network restored from a checkpoint, ready to sample (eval mode, on ``device``)."""

    network: nn.Module
    config: Config
    process: Process  # GaussianDiffusion (method ddpm) or ColdDiffusion (method cold)
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
    return TrainedModel(network, cfg, build_process(cfg, dev), int(state["step"]), path, key)


def default_sampler(config: Config) -> str:
    """The headline sampler of a method: DDIM for the DDPM, Algorithm 2 for cold diffusion."""
    return "alg2" if config.method == "cold" else "ddim"


def sample_batch(
    network: nn.Module,
    process: Process,
    n: int,
    *,
    sampler: str = "ddim",
    steps: int = 50,
    eta: float = 0.0,
    variance: str = "beta",
    clip_x0: bool = True,
    seed: int = 0,
    progress: bool = False,
    prior: str | None = None,
    perturb: float = 0.0,
) -> torch.Tensor:
    """One batch from the named sampler: float32 [n, 1, 28, 28] in [-1, 1].

    DDPM samplers: ``ancestral`` (all T steps; ``variance``), ``ddim`` (``steps``, ``eta``) and DPM-Solver++
    ``dpmpp2m`` / ``dpmpp2msde`` (``steps``). Cold samplers:
    ``alg2``, ``alg1``, ``direct`` (all start from the degradation's data-free endpoint, drawn from ``prior``
    where the degradation offers a choice, plus Gaussian noise of standard deviation ``perturb``; they always
    clip x0_hat).
    """
    if isinstance(process, ColdDiffusion):
        if sampler not in COLD_SAMPLERS:
            raise UserError(f"sampler {sampler!r} does not apply to a cold-diffusion checkpoint; "
                            f"choose one of {', '.join(COLD_SAMPLERS)}")
        return cold_sample(network, process, n, algorithm=sampler, seed=seed, progress=progress, prior=prior,
                           perturb=perturb).images
    if prior is not None or perturb:
        raise UserError("prior and perturb apply to cold-diffusion checkpoints only")
    if sampler == "ancestral":
        result = ancestral_sample(network, process, n, seed=seed, variance=variance, clip_x0=clip_x0, progress=progress)
    elif sampler == "ddim":
        result = ddim_sample(network, process, n, steps=steps, eta=eta, seed=seed, clip_x0=clip_x0, progress=progress)
    elif sampler in DPM_SOLVERS:
        result = dpm_solver_sample(network, process, n, steps=steps, solver=DPM_SOLVERS[sampler], seed=seed,
                                   clip_x0=clip_x0, progress=progress)
    else:
        raise UserError(f"sampler {sampler!r} does not apply to a DDPM checkpoint; choose one of {', '.join(SAMPLERS)}")
    return result.images


def batch_seed(seed: int, index: int) -> int:
    """Seed of batch ``index`` of a run seeded ``seed`` (distinct runs' batches never share a seed in practice)."""
    return seed * 1_000_003 + index


#: Default images per sampling batch. On a CPU small batches are faster per image (they stay in cache): one thread,
#: ms per image and network call at batch 64 / 500: UNet 3.6 / 4.5, CourseworkCNN 4.3 / 5.0. A GPU wants big ones.
CPU_BATCH_SIZE, GPU_BATCH_SIZE = 64, 1_000


def default_batch_size(trained: TrainedModel) -> int:
    """:data:`CPU_BATCH_SIZE` or :data:`GPU_BATCH_SIZE`, by where the network's weights are."""
    return CPU_BATCH_SIZE if next(trained.network.parameters()).device.type == "cpu" else GPU_BATCH_SIZE


def generate(
    trained: TrainedModel,
    n: int,
    *,
    batch_size: int | None = None,
    seed: int = 0,
    progress: bool = True,
    done: np.ndarray | None = None,
    after_batch: Callable[[np.ndarray, int], None] | None = None,
    **sampler_options: Any,
) -> np.ndarray:
    """``n`` images as uint8 [n, 28, 28], drawn in batches of ``batch_size`` (default :func:`default_batch_size`);
    the same arguments (batch size included) give the same images.

    Each batch has its own seed (:func:`batch_seed`), so a long draw can stop and go on: ``done`` holds the first
    images of an earlier call with the same arguments (a whole number of batches), which are kept while drawing
    resumes after them; ``after_batch(out, filled)`` is called after every batch with the output array and the
    number of its rows drawn so far (to save them)."""
    if n < 1:
        raise UserError(f"--n must be >= 1, got {n}")
    batch_size = default_batch_size(trained) if batch_size is None else batch_size
    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}")
    out = np.empty((n, 28, 28), dtype=np.uint8)
    kept = 0 if done is None else len(done)
    if kept % batch_size or kept >= n:
        raise ValueError(f"done must hold a whole number of batches of {batch_size} and fewer than {n} images, got {kept}")
    if done is not None:
        out[:kept] = done
    starts = range(kept, n, batch_size)
    for start in tqdm(starts, desc="sampling batches", disable=not progress or len(starts) == 1):
        size = min(batch_size, n - start)
        images = sample_batch(
            trained.network, trained.process, size, seed=batch_seed(seed, start // batch_size),
            progress=progress and len(starts) == 1, **sampler_options,
        )
        out[start : start + size] = to_uint8(images).cpu().numpy()
        if after_batch is not None:
            after_batch(out, start + size)
    return out


def save_samples(path: str | Path, images: np.ndarray, meta: dict[str, Any], **extra: np.ndarray) -> Path:
    """Write the project's samples npz: ``images`` uint8 [N, 28, 28], ``meta`` (a JSON string), and any
    ``extra`` uint8 [N, 28, 28] arrays (the restore mode adds ``degraded`` and ``targets``)."""
    path = Path(path)
    for name, array in {"images": images, **extra}.items():
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[1:] != (28, 28):
            raise ValueError(f"{name} must be uint8 [N, 28, 28], got {array.dtype} {array.shape}")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=images, meta=np.array(json.dumps(meta)), **extra)
    write_atomic(path, [buffer.getvalue()])  # a run killed mid-write must not leave a torn cache entry
    return path


def restore_test_images(
    trained: TrainedModel, n: int, *, t_start: int | None = None, algorithm: str = "alg2", seed: int = 0,
    root: str | None = None,
) -> dict[str, Any]:
    """Conditional restoration (cold diffusion only): the first ``n`` test images degraded to ``t_start``
    (default T) with a seeded state, then restored. Returns uint8 ``targets``, ``degraded``, ``images``
    (restored), the start step, and the mean absolute pixel error (in [-1, 1] units) before and after."""
    if not isinstance(trained.process, ColdDiffusion):
        raise UserError("restore needs a cold-diffusion checkpoint (method: cold); DDPM checkpoints only sample")
    test_images, _ = mnist_tensors("test", root)
    if not 1 <= n <= test_images.shape[0]:
        raise UserError(f"--n must be between 1 and {test_images.shape[0]}, got {n}")
    t_start = trained.process.T if t_start is None else t_start
    targets = to_model_range(test_images[:n]).to(trained.process.device)
    degraded, result = cold_restore(trained.network, trained.process, targets, t_start, algorithm=algorithm, seed=seed)
    return {
        "targets": to_uint8(targets).cpu().numpy(), "degraded": to_uint8(degraded).cpu().numpy(),
        "images": to_uint8(result.images).cpu().numpy(), "t_start": t_start,
        "l1_restored": (result.images - targets).abs().mean().item(),
        "l1_degraded": (degraded.clamp(-1, 1) - targets).abs().mean().item(),
    }
